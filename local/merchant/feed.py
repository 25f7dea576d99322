"""The sandbox catalog as a Google Merchant Center product feed (tab-separated), for no-catalog runs.

One row per variant: ``id`` is the variant id (what a checkout line names), ``item_group_id`` the
product id. Prices follow the feed format's "129.00 CNY"; availability is in_stock or out_of_stock.
Variants not sold in the feed's currency are left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from cartpilot_local.merchant.catalog import Catalog, media_url

COLUMNS = (
    "id",
    "title",
    "description",
    "link",
    "price",
    "availability",
    "image_link",
    "product_type",
    "brand",
    "size",
    "color",
    "item_group_id",
)


def _cell(value: str | None) -> str:
    # The TSV feed format has no quoting: tabs and line breaks inside a value become spaces.
    return " ".join((value or "").split())


def feed_rows(catalog: Catalog, *, currency: str, base_url: str) -> Iterator[tuple[str, ...]]:
    endpoint = base_url.rstrip("/")
    for product in catalog.products:
        for variant in product.variants:
            price = variant.price_in(currency)
            if price is None:
                continue
            yield tuple(
                _cell(value)
                for value in (
                    variant.id,
                    product.variant_title(variant),
                    product.description,
                    f"{endpoint}/products/{product.id}",
                    f"{price // 100}.{price % 100:02d} {currency}",
                    "in_stock" if variant.in_stock else "out_of_stock",
                    media_url(endpoint, product.id),
                    product.category,
                    product.brand,
                    variant.size,
                    variant.color,
                    product.id,
                )
            )


def write_feed(path: Path, catalog: Catalog, *, currency: str, base_url: str) -> int:
    """Writes the feed to ``path``; returns the number of products (rows) written."""
    rows = list(feed_rows(catalog, currency=currency, base_url=base_url))
    lines = ["\t".join(COLUMNS), *("\t".join(row) for row in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(rows)
