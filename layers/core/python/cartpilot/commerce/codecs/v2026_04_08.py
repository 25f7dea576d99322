"""UCP 2026-04-08 on the wire.

What this version asks beyond what both share (codecs/wire.py):

- profiles are registries keyed by name: ``ucp.services`` lists transport bindings, ``ucp.capabilities``
  and ``ucp.payment_handlers`` map names to arrays of versioned entries, and capabilities intersect
  on a version both sides list (overview.md, "Intersection Algorithm");
- the business decides the checkout's currency; the platform's wish is a ``context`` hint
  (checkout.json: ``currency`` is ``ucp_request: omit``);
- completion sends ``payment.instruments[]``, the selected instrument with the handler's credential
  (checkout.json: ``payment`` is required at ``complete``);
- catalog search and lookup are capabilities of their own (catalog/rest.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from cartpilot.commerce.codecs import CapabilityOffer, ProfileDocument, wire
from cartpilot.commerce.codecs.wire import (
    CheckoutUpdate,
    JsonObject,
    MalformedAnswer,
    WireCheckout,
    as_list,
    as_mapping,
)
from cartpilot.commerce.ports import (
    Buyer,
    CartLine,
    Order,
    PaymentCredential,
    PaymentHandler,
    Product,
    ProductVariant,
    SearchQuery,
)
from cartpilot.kernel.money import CurrencyMismatch

VERSION: Final = "2026-04-08"
SHOPPING: Final = "dev.ucp.shopping"


def _extends(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(str(parent) for parent in as_list(value))


class Codec20260408:
    version: Final = VERSION
    orders_carry_currency: Final = True
    has_order_route: Final = True

    # --- discovery -------------------------------------------------------------------------------

    def read_profile(self, document: Mapping[str, Any]) -> ProfileDocument:
        ucp = document.get("ucp")
        if not isinstance(ucp, Mapping) or not isinstance(ucp.get("version"), str):
            raise MalformedAnswer("the profile has no ucp.version")
        if not isinstance(ucp.get("capabilities", {}), Mapping):
            raise MalformedAnswer("ucp.capabilities is not a registry keyed by name (2026-04-08)")
        endpoint = None
        bindings = [
            b for b in as_list(as_mapping(ucp.get("services")).get(SHOPPING)) if isinstance(b, Mapping)
        ]
        rest = [b for b in bindings if b.get("transport") == "rest" and isinstance(b.get("endpoint"), str)]
        # A business may bind several service versions; the one of this profile's version first.
        rest.sort(key=lambda binding: binding.get("version") != ucp["version"])
        if rest:
            endpoint = str(rest[0]["endpoint"])
        capabilities = tuple(
            CapabilityOffer(
                name=str(name),
                versions=tuple(str(e.get("version")) for e in entries if isinstance(e, Mapping)),
                extends=next((_extends(e.get("extends")) for e in entries if isinstance(e, Mapping)), ()),
                spec=next(
                    (str(e["spec"]) for e in entries if isinstance(e, Mapping) and e.get("spec")), None
                ),
            )
            for name, entries in as_mapping(ucp.get("capabilities")).items()
            if isinstance(entries, list)
        )
        handlers = tuple(
            PaymentHandler(
                name=str(name),
                id=str(entry["id"]),
                instrumentTypes=tuple(
                    str(instrument["type"])
                    for instrument in as_list(entry.get("available_instruments"))
                    if isinstance(instrument, Mapping) and instrument.get("type")
                ),
                config=dict(as_mapping(entry.get("config"))),
            )
            for name, entries in as_mapping(ucp.get("payment_handlers")).items()
            for entry in as_list(entries)
            if isinstance(entry, Mapping) and entry.get("id")
        )
        supported = {
            str(version): str(url)
            for version, url in as_mapping(ucp.get("supported_versions")).items()
            if isinstance(url, str)
        }
        return ProfileDocument(
            version=str(ucp["version"]),
            rest_endpoint=endpoint,
            capabilities=capabilities,
            payment_handlers=handlers,
            supported_versions=supported,
        )

    def offers(self, profile: ProfileDocument, ours: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
        """Both sides name it and list a version in common (ours empty: any version, for vendor
        extensions that version on their own); ``dev.ucp.*`` specs must live at ucp.dev."""
        active: dict[str, tuple[str, ...]] = {}
        for offer in profile.capabilities:
            if offer.name not in ours:
                continue
            if ours[offer.name] and not set(ours[offer.name]) & set(offer.versions):
                continue
            if offer.name.startswith("dev.ucp.") and not wire.spec_matches_namespace(offer.name, offer.spec):
                continue
            active[offer.name] = offer.extends
        return wire.prune_orphans(active)

    # --- checkout --------------------------------------------------------------------------------

    def create_checkout(
        self, lines: Sequence[CartLine], buyer: Buyer | None, currency: str, *, shipping: bool
    ) -> JsonObject:
        body: JsonObject = {"line_items": wire.new_line_items(lines)}
        if buyer is not None:
            body["buyer"] = wire.buyer_body(buyer)
        # The business determines currency; context.currency is the platform's preference.
        body["context"] = {"currency": currency}
        if shipping:
            # A shipping method from the start, so the merchant names it before a destination is set.
            body["fulfillment"] = {"methods": [{"type": "shipping"}]}
        return body

    def update_checkout(self, current: WireCheckout, update: CheckoutUpdate) -> JsonObject:
        body: JsonObject = {"line_items": [line.body() for line in update.lines]}
        if current.buyer:
            body["buyer"] = current.buyer  # a full replacement keeps what it does not change
        if current.context:
            body["context"] = current.context
        if update.method is not None:
            body["fulfillment"] = {"methods": [update.method.body(with_type=True)]}
        return body

    def complete_checkout(self, checkout: str, credential: PaymentCredential) -> JsonObject:
        instrument: JsonObject = {
            "id": wire.instrument_id(credential),
            "handler_id": credential.handler.id,
            "type": credential.instrumentType,
            "selected": True,
            "credential": {"type": "token", "token": credential.token.get_secret_value()},
        }
        display = {key: value for key, value in credential.display.items() if key in {"brand", "last_digits"}}
        if display:
            instrument["display"] = display
        return {"payment": {"instruments": [instrument]}}

    def read_checkout(self, body: Mapping[str, Any]) -> WireCheckout:
        return wire.read_checkout(body)

    def read_order(self, body: Mapping[str, Any], checkout_currency: str | None) -> Order:
        if wire.is_error_envelope(body):
            raise wire.read_refusal(None, body).rejected("the merchant refused", None)
        currency = body.get("currency") if isinstance(body.get("currency"), str) else checkout_currency
        if not currency:
            raise MalformedAnswer("the order names no currency")
        return wire.read_order(body, str(currency))

    # --- catalog ---------------------------------------------------------------------------------

    def search_request(self, query: SearchQuery) -> JsonObject:
        filters: JsonObject = {}
        if query.category:
            filters["categories"] = [query.category]
        if query.size:
            filters["size"] = query.size
        if query.color:
            filters["color"] = query.color
        if query.maxPrice is not None:
            if query.maxPrice.currency != query.currency:
                raise CurrencyMismatch(
                    f"a {query.currency} search cannot cap prices in {query.maxPrice.currency}"
                )
            # price_filter.json: denominated in context.currency.
            filters["price"] = {"max": query.maxPrice.amount_minor}
        body: JsonObject = {
            "query": query.text,
            "context": {"currency": query.currency},
            "pagination": {"limit": query.limit},
        }
        if filters:
            body["filters"] = filters
        return body

    def read_search(self, body: Mapping[str, Any]) -> list[Product]:
        try:
            return [_product(product) for product in as_list(body.get("products"))]
        except (KeyError, TypeError, ValueError) as error:
            raise MalformedAnswer(f"search result: {type(error).__name__} {error}") from error

    def lookup_request(self, item_ids: Sequence[str], currency: str) -> JsonObject:
        return {"ids": list(item_ids), "context": {"currency": currency}}

    def read_lookup(self, body: Mapping[str, Any], item_ids: Sequence[str]) -> list[ProductVariant]:
        """The variants for these ids, in the order asked; a product id stands for all its variants
        (catalog_lookup.json: each variant names the request ids it answers in ``inputs``)."""
        try:
            found: dict[str, list[ProductVariant]] = {}
            for product in as_list(body.get("products")):
                for raw in as_list(product.get("variants")):
                    variant = _variant(product, raw)
                    for source in as_list(raw.get("inputs")) or [{"id": variant.id}]:
                        found.setdefault(str(source["id"]), []).append(variant)
        except (KeyError, TypeError, ValueError) as error:
            raise MalformedAnswer(f"lookup result: {type(error).__name__} {error}") from error
        variants: list[ProductVariant] = []
        seen: set[str] = set()
        for item_id in item_ids:
            for variant in found.get(item_id, []):
                if variant.id not in seen:
                    seen.add(variant.id)
                    variants.append(variant)
        return variants


# --- catalog shapes (product.json, variant.json) -------------------------------------------------


def _option_value(variant: Mapping[str, Any], *names: str) -> str | None:
    for option in as_list(variant.get("options")):
        if str(option.get("name", "")).lower() in names:
            return str(option["label"])
    return None


def _category(product: Mapping[str, Any]) -> str:
    categories = as_list(product.get("categories"))
    if categories:
        return str(categories[0]["value"])
    return str(as_mapping(product.get("metadata")).get("category", "uncategorised"))


def _category_path(product: Mapping[str, Any]) -> tuple[str, ...]:
    """Every level of every category the product lists: a value may be a path ("Apparel > Shirts")
    or a taxonomy id ("1604"), per types/category.json, and a brand's restrictions read them all."""
    levels = [
        level.strip()
        for category in as_list(product.get("categories"))
        for level in str(as_mapping(category).get("value", "")).split(">")
        if level.strip()
    ]
    return tuple(dict.fromkeys(levels))


def _stock(variant: Mapping[str, Any]) -> int:
    stock = as_mapping(variant.get("metadata")).get("stock")
    if isinstance(stock, int) and not isinstance(stock, bool):
        return max(0, stock)
    # Without a count, availability is all a merchant tells: one we can buy, or none.
    return 1 if as_mapping(variant.get("availability")).get("available") else 0


def _media_url(entity: Mapping[str, Any]) -> str | None:
    for media in as_list(entity.get("media")):
        if media.get("type") == "image" and media.get("url"):
            return str(media["url"])
    return None


def _variant(product: Mapping[str, Any], variant: Mapping[str, Any]) -> ProductVariant:
    price = variant["price"]
    color = _option_value(variant, "color", "colour")
    return ProductVariant(
        id=str(variant["id"]),
        productId=str(product["id"]),
        title=f"{product['title']} ({variant['title']})",
        price=wire.money(price["amount"], str(price["currency"])),
        size=_option_value(variant, "size"),
        color=color.lower() if color else None,
        stock=_stock(variant),
        category=_category(product),
        categoryPath=_category_path(product),
        imageUrl=_media_url(variant) or _media_url(product),
    )


def _product(product: Mapping[str, Any]) -> Product:
    description = as_mapping(product.get("description"))
    return Product(
        id=str(product["id"]),
        title=str(product["title"]),
        description=str(description.get("plain") or description.get("markdown") or ""),
        category=_category(product),
        variants=[_variant(product, variant) for variant in as_list(product.get("variants"))],
    )
