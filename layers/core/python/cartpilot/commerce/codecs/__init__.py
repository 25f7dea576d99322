"""One wire codec per UCP version, behind the version-free commerce ports.

A codec turns the domain's requests into that version's request bodies and the merchant's answers
into domain objects; the adapters in ``commerce/ucp.py`` never look at a field name. ``codec_for``
picks the codec for the version discovery negotiated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cartpilot.commerce.codecs.wire import CheckoutUpdate, JsonObject, WireCheckout
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


@dataclass(frozen=True)
class CapabilityOffer:
    """One capability (or extension) a profile declares, with every version it lists."""

    name: str
    versions: tuple[str, ...] = ()
    extends: tuple[str, ...] = ()
    spec: str | None = None


@dataclass(frozen=True)
class ProfileDocument:
    """A business profile of one version, read: where its REST service is, what it offers, how it is paid."""

    version: str
    rest_endpoint: str | None
    capabilities: tuple[CapabilityOffer, ...] = ()
    payment_handlers: tuple[PaymentHandler, ...] = ()
    supported_versions: Mapping[str, str] = field(default_factory=dict)


class WireCodec(Protocol):
    """Request bodies out, domain objects in, for one UCP version."""

    @property
    def version(self) -> str: ...

    @property
    def orders_carry_currency(self) -> bool:
        """2026-01-11 orders have no ``currency``: the adapter takes the checkout's."""
        ...

    @property
    def has_order_route(self) -> bool:
        """2026-01-11 defines no ``GET /orders/{id}``: orders are read from the completed checkout."""
        ...

    def read_profile(self, document: Mapping[str, Any]) -> ProfileDocument: ...

    def offers(self, profile: ProfileDocument, ours: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
        """The capabilities both sides support, by this version's intersection algorithm (overview.md)."""
        ...

    def create_checkout(
        self, lines: Sequence[CartLine], buyer: Buyer | None, currency: str, *, shipping: bool
    ) -> JsonObject: ...

    def update_checkout(self, current: WireCheckout, update: CheckoutUpdate) -> JsonObject: ...

    def complete_checkout(self, checkout: str, credential: PaymentCredential) -> JsonObject: ...

    def read_checkout(self, body: Mapping[str, Any]) -> WireCheckout: ...

    def read_order(self, body: Mapping[str, Any], checkout_currency: str | None) -> Order: ...

    def search_request(self, query: SearchQuery) -> JsonObject: ...

    def read_search(self, body: Mapping[str, Any]) -> list[Product]: ...

    def lookup_request(self, item_ids: Sequence[str], currency: str) -> JsonObject: ...

    def read_lookup(self, body: Mapping[str, Any], item_ids: Sequence[str]) -> list[ProductVariant]: ...


def codec_for(version: str) -> WireCodec:
    """The codec of a negotiated version; discovery only negotiates versions listed here."""
    from cartpilot.commerce.codecs.v2026_01_11 import Codec20260111
    from cartpilot.commerce.codecs.v2026_04_08 import Codec20260408

    codecs: dict[str, WireCodec] = {"2026-04-08": Codec20260408(), "2026-01-11": Codec20260111()}
    try:
        return codecs[version]
    except KeyError:
        raise ValueError(f"CartPilot has no codec for UCP {version}") from None


__all__ = ["CapabilityOffer", "ProfileDocument", "WireCodec", "codec_for"]
