"""UCP 2026-01-11 on the wire.

What this version asks beyond what both share (codecs/wire.py):

- a profile binds each service's transports by key (``services["dev.ucp.shopping"].rest.endpoint``),
  lists capabilities as named entries intersected by name alone, and puts payment handlers in a
  sibling ``payment.handlers`` (overview.md, "Business Profile"; discovery/profile_schema.json);
- a checkout request carries ``currency`` and a ``payment`` object (checkout.json: both required,
  neither omitted in requests), and an update carries the checkout's ``id``;
- updating a fulfillment method names it by ``id`` (fulfillment_method.json: ``id`` required and
  ``type`` omitted on update), so a checkout asks for its shipping method at creation;
- completion sends ``payment_data``, one card instrument with its brand and last digits, and
  ``risk_signals`` (the complete_checkout request body in services/shopping/openapi.json);
- orders carry no currency: it is the checkout's;
- there is no catalog capability.
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
from cartpilot.commerce.errors import MerchantRejected
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

VERSION: Final = "2026-01-11"
SHOPPING: Final = "dev.ucp.shopping"
_INSTRUMENT_SCHEMA_SUFFIX: Final = "_payment_instrument.json"


def _instrument_types(schemas: object) -> tuple[str, ...]:
    """``instrument_schemas`` name the instruments a handler takes: ``card_payment_instrument.json`` is a card."""
    kinds = []
    for url in as_list(schemas):
        name = str(url).rsplit("/", 1)[-1]
        if name.endswith(_INSTRUMENT_SCHEMA_SUFFIX):
            # gpay_card_payment_instrument.json is a card too: the type is the last word.
            kinds.append(name[: -len(_INSTRUMENT_SCHEMA_SUFFIX)].rsplit("_", 1)[-1])
    return tuple(kinds)


def _no_catalog() -> MerchantRejected:
    return MerchantRejected(
        "UCP 2026-01-11 has no catalog capability: plan from the brand's product feed for this merchant",
        code="catalog_unsupported",
    )


class Codec20260111:
    version: Final = VERSION
    orders_carry_currency: Final = False
    has_order_route: Final = False

    # --- discovery -------------------------------------------------------------------------------

    def read_profile(self, document: Mapping[str, Any]) -> ProfileDocument:
        ucp = document.get("ucp")
        if not isinstance(ucp, Mapping) or not isinstance(ucp.get("version"), str):
            raise MalformedAnswer("the profile has no ucp.version")
        if not isinstance(ucp.get("capabilities", []), list):
            raise MalformedAnswer("ucp.capabilities is not a list of named entries (2026-01-11)")
        rest = as_mapping(as_mapping(as_mapping(ucp.get("services")).get(SHOPPING)).get("rest"))
        endpoint = rest.get("endpoint") if isinstance(rest.get("endpoint"), str) else None
        capabilities = tuple(
            CapabilityOffer(
                name=str(entry["name"]),
                versions=(str(entry.get("version")),),
                extends=(str(entry["extends"]),) if isinstance(entry.get("extends"), str) else (),
                spec=str(entry["spec"]) if entry.get("spec") else None,
            )
            for entry in as_list(ucp.get("capabilities"))
            if isinstance(entry, Mapping) and entry.get("name")
        )
        handlers = tuple(
            PaymentHandler(
                name=str(entry["name"]),
                id=str(entry["id"]),
                instrumentTypes=_instrument_types(entry.get("instrument_schemas")),
                config=dict(as_mapping(entry.get("config"))),
            )
            for entry in as_list(as_mapping(document.get("payment")).get("handlers"))
            if isinstance(entry, Mapping) and entry.get("id") and entry.get("name")
        )
        return ProfileDocument(
            version=str(ucp["version"]),
            rest_endpoint=endpoint,
            capabilities=capabilities,
            payment_handlers=handlers,
        )

    def offers(self, profile: ProfileDocument, ours: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
        """overview.md (2026-01-11), "Intersection Algorithm": by name, then prune orphaned extensions."""
        active = {
            offer.name: offer.extends
            for offer in profile.capabilities
            if offer.name in ours
            and (not offer.name.startswith("dev.ucp.") or wire.spec_matches_namespace(offer.name, offer.spec))
        }
        return wire.prune_orphans(active)

    # --- checkout --------------------------------------------------------------------------------

    def create_checkout(
        self, lines: Sequence[CartLine], buyer: Buyer | None, currency: str, *, shipping: bool
    ) -> JsonObject:
        body: JsonObject = {"line_items": wire.new_line_items(lines), "currency": currency, "payment": {}}
        if buyer is not None:
            body["buyer"] = wire.buyer_body(buyer)
        if shipping:
            body["fulfillment"] = {"methods": [{"type": "shipping"}]}
        return body

    def update_checkout(self, current: WireCheckout, update: CheckoutUpdate) -> JsonObject:
        body: JsonObject = {
            "id": current.id,
            "line_items": [line.body() for line in update.lines],
            "currency": current.currency,
            "payment": {},
        }
        if current.buyer:
            body["buyer"] = current.buyer  # a full replacement keeps what it does not change
        if update.method is not None:
            # An unnamed method (the merchant made none at creation) can only be described by type.
            body["fulfillment"] = {"methods": [update.method.body(with_type=update.method.id is None)]}
        return body

    def complete_checkout(self, checkout: str, credential: PaymentCredential) -> JsonObject:
        return {
            "payment_data": {
                "id": wire.instrument_id(credential),
                "handler_id": credential.handler.id,
                "type": credential.instrumentType,
                # card_payment_instrument.json requires both; the tokenizer reports them.
                "brand": credential.display.get("brand", "unknown"),
                "last_digits": credential.display.get("last_digits", ""),
                "credential": {"type": "token", "token": credential.token.get_secret_value()},
            },
            # overview.md, "Risk Signals": free-form; an agent observes no device, only the session.
            "risk_signals": {"session_id": checkout, "channel": "agent"},
        }

    def read_checkout(self, body: Mapping[str, Any]) -> WireCheckout:
        return wire.read_checkout(body)

    def read_order(self, body: Mapping[str, Any], checkout_currency: str | None) -> Order:
        if wire.is_error_envelope(body):
            raise wire.read_refusal(None, body).rejected("the merchant refused", None)
        if not checkout_currency:
            raise MalformedAnswer("a 2026-01-11 order is priced in its checkout's currency, which is unknown")
        return wire.read_order(body, checkout_currency)

    # --- catalog ---------------------------------------------------------------------------------

    def search_request(self, query: SearchQuery) -> JsonObject:
        raise _no_catalog()

    def read_search(self, body: Mapping[str, Any]) -> list[Product]:
        raise _no_catalog()

    def lookup_request(self, item_ids: Sequence[str], currency: str) -> JsonObject:
        raise _no_catalog()

    def read_lookup(self, body: Mapping[str, Any], item_ids: Sequence[str]) -> list[ProductVariant]:
        raise _no_catalog()
