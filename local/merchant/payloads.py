"""Request bodies the sandbox accepts, after UCP's schemas.

UCP objects allow additional properties, and clients may send back fields the business owns
(ids, totals, status); those are accepted and ignored, as the spec's ``ucp_request: omit`` says.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ItemRef(_Open):
    id: str = Field(min_length=1, max_length=200)


class LineItemIn(_Open):
    id: str | None = Field(default=None, max_length=100)
    item: ItemRef
    quantity: int = Field(ge=1, le=99)


class BuyerIn(_Open):
    first_name: str | None = Field(default=None, max_length=120)
    last_name: str | None = Field(default=None, max_length=120)
    email: str | None = Field(default=None, max_length=254)
    phone_number: str | None = Field(default=None, max_length=32)


class ContextIn(_Open):
    currency: str | None = None
    address_country: str | None = None
    language: str | None = None


class PostalAddressIn(_Open):
    id: str | None = Field(default=None, max_length=100)
    street_address: str | None = Field(default=None, max_length=200)
    extended_address: str | None = Field(default=None, max_length=200)
    address_locality: str | None = Field(default=None, max_length=100)
    address_region: str | None = Field(default=None, max_length=100)
    address_country: str | None = Field(default=None, max_length=60)
    postal_code: str | None = Field(default=None, max_length=20)
    first_name: str | None = Field(default=None, max_length=120)
    last_name: str | None = Field(default=None, max_length=120)
    phone_number: str | None = Field(default=None, max_length=32)

    def postal_fields(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, exclude={"id"}, include=set(PostalAddressIn.model_fields))


class GroupIn(_Open):
    id: str | None = None
    selected_option_id: str | None = None


class MethodIn(_Open):
    id: str | None = None
    type: Literal["shipping", "pickup"] = "shipping"
    line_item_ids: list[str] | None = None
    destinations: list[PostalAddressIn] | None = None
    selected_destination_id: str | None = None
    groups: list[GroupIn] | None = None


class FulfillmentIn(_Open):
    methods: list[MethodIn] = Field(default_factory=list, max_length=5)


class CredentialIn(_Open):
    type: str
    token: str | None = Field(default=None, max_length=200)


class InstrumentIn(_Open):
    id: str | None = None
    handler_id: str | None = None
    type: str | None = None
    credential: CredentialIn | None = None
    selected: bool | None = None


class PaymentIn(_Open):
    instruments: list[InstrumentIn] = Field(default_factory=list, max_length=10)


class CheckoutCreateIn(_Open):
    line_items: list[LineItemIn] = Field(min_length=1, max_length=50)
    buyer: BuyerIn | None = None
    context: ContextIn | None = None
    # Not a UCP request field (the business decides currency); accepted as a hint like context.currency.
    currency: str | None = None
    fulfillment: FulfillmentIn | None = None
    payment: PaymentIn | None = None


class CheckoutUpdateIn(CheckoutCreateIn):
    """PUT: every field given replaces the session's; a field left out leaves it unchanged."""


class CheckoutCompleteIn(_Open):
    payment: PaymentIn | None = None


class PaginationIn(_Open):
    cursor: str | None = None
    limit: int = Field(default=10, ge=1)


class SearchIn(_Open):
    query: str = Field(default="", max_length=500)
    context: ContextIn | None = None
    filters: dict[str, Any] = Field(default_factory=dict)
    pagination: PaginationIn | None = None


class LookupIn(_Open):
    ids: list[str] = Field(min_length=1, max_length=100)
    context: ContextIn | None = None
    filters: dict[str, Any] = Field(default_factory=dict)


class QuoteIn(_Open):
    """Body of ``POST /shipping/quote``, our read-only extension."""

    currency: str | None = None
    context: ContextIn | None = None
    line_items: list[LineItemIn] = Field(min_length=1, max_length=50)
    destination: PostalAddressIn
