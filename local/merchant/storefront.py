"""Catalog search, lookup and product detail (2026-04-08 catalog/*.md), over the sandbox catalog.

Businesses determine the market, currency included (catalog/index.md "Context"): a context currency
the sandbox does not sell in is answered in its default currency, and price filters, denominated in
the context currency, are then not applied. Outcomes are HTTP 200 with messages (catalog/rest.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cartpilot_local.merchant.catalog import Catalog, CatalogProduct, Variant, render_product
from cartpilot_local.merchant.payloads import ContextIn, LookupIn, ProductIn, SearchIn
from cartpilot_local.merchant.protocol import (
    DEFAULT_CURRENCY,
    SUPPORTED_CURRENCIES,
    BusinessRefusal,
    JsonObject,
    Message,
    TransportError,
)

MAX_PAGE_SIZE = 50


@dataclass
class CatalogAnswer:
    products: list[JsonObject]
    messages: list[Message] = field(default_factory=list)
    pagination: JsonObject | None = None


def presentment_currency(context: ContextIn | None) -> tuple[str, bool]:
    """The currency prices are shown in, and whether it is the one the context asked for."""
    asked = (context.currency or "").strip().upper() if context else ""
    if asked in SUPPORTED_CURRENCIES:
        return asked, True
    return DEFAULT_CURRENCY, not asked


def search(catalog: Catalog, body: SearchIn, base_url: str) -> CatalogAnswer:
    currency, as_asked = presentment_currency(body.context)
    filters = body.filters
    categories = filters.get("categories") or []
    if not isinstance(categories, list):
        categories = [categories]
    price = filters.get("price") or {}
    if not isinstance(price, dict):
        raise TransportError(400, "invalid_request", "filters.price is an object")
    messages: list[Message] = []
    if price and not as_asked:
        messages.append(
            Message.info(
                "price_filter_ignored", f"prices are in {currency}; the price filter was not applied"
            )
        )
        price = {}
    limit = min(body.pagination.limit if body.pagination else 10, MAX_PAGE_SIZE)
    offset = _offset_from_cursor(body.pagination.cursor if body.pagination else None)
    page = catalog.search(
        body.query,
        currency=currency,
        categories=[str(c) for c in categories],
        size=_optional_str(filters.get("size")),
        color=_optional_str(filters.get("color") or filters.get("colour")),
        min_price=_optional_int(price.get("min")),
        max_price=_optional_int(price.get("max")),
        in_stock=bool(filters.get("in_stock") or filters.get("available")),
        offset=offset,
        limit=limit,
    )
    pagination: JsonObject = {"has_next_page": page.next_offset is not None, "total_count": page.total}
    if page.next_offset is not None:
        pagination["cursor"] = str(page.next_offset)
    products = [render_product(hit.product, hit.variants, currency, base_url) for hit in page.hits]
    return CatalogAnswer(products, messages, pagination)


def lookup(catalog: Catalog, body: LookupIn, base_url: str) -> CatalogAnswer:
    currency, _ = presentment_currency(body.context)
    found: dict[str, tuple[CatalogProduct, list[Variant], dict[str, list[JsonObject]]]] = {}
    messages: list[Message] = []
    for index, requested in enumerate(body.ids):
        product = catalog.product(requested)
        matched: list[tuple[Variant, str]] = []
        if product is not None:
            matched = [(v, "featured" if i == 0 else "product") for i, v in enumerate(product.variants)]
        elif (pair := catalog.variant(requested)) is not None:
            product = pair[0]
            matched = [(pair[1], "exact")]
        if product is None:
            messages.append(
                Message.info("not_found", f"no product or variant has id {requested}", path=f"$.ids[{index}]")
            )
            continue
        priced = [(v, how) for v, how in matched if v.price_in(currency) is not None]
        if not priced:
            messages.append(
                Message.info(
                    "currency_unavailable", f"{requested} is not sold in {currency}", path=f"$.ids[{index}]"
                )
            )
            continue
        _, variants, inputs = found.setdefault(product.id, (product, [], {}))
        for variant, how in priced:
            if variant.id not in inputs:
                variants.append(variant)
            inputs.setdefault(variant.id, []).append({"id": requested, "match": how})
    products = [
        render_product(product, variants, currency, base_url, inputs)
        for product, variants, inputs in found.values()
    ]
    return CatalogAnswer(products, messages)


def product_detail(catalog: Catalog, body: ProductIn, base_url: str) -> JsonObject:
    """One product with the variants matching the selected options (catalog/lookup.md get_product)."""
    currency, _ = presentment_currency(body.context)
    product = catalog.product(body.id)
    if product is None and (pair := catalog.variant(body.id)) is not None:
        product = pair[0]
    if product is None:
        raise BusinessRefusal(
            Message.error("not_found", f"Product not found: {body.id}", severity="unrecoverable"),
            not_found=True,
        )
    selected = [
        (str(choice.get("name", "")).lower(), str(choice.get("label", "")).lower())
        for choice in body.selected or []
        if isinstance(choice, dict)
    ]
    variants = [v for v in product.variants if v.price_in(currency) is not None and _matches(v, selected)]
    if not variants:
        raise BusinessRefusal(
            Message.error(
                "not_found",
                f"{product.id} has no variant sold in {currency} with that selection",
                severity="unrecoverable",
            ),
            not_found=True,
        )
    detail = render_product(product, variants, currency, base_url)
    if body.selected:
        detail["selected"] = [choice for choice in body.selected if isinstance(choice, dict)]
    return detail


def _matches(variant: Variant, selected: list[tuple[str, str]]) -> bool:
    labels = {"size": (variant.size or "").lower(), "color": (variant.color or "").lower()}
    return all(labels.get(name, label) == label for name, label in selected)


def _offset_from_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    if not cursor.isdigit():
        raise TransportError(400, "invalid_request", "unknown pagination cursor")
    return int(cursor)


def _optional_str(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def _optional_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TransportError(400, "invalid_request", "price filters are minor-unit integers")
    return value
