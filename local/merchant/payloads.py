"""What a platform asks for, once its version's wire shape is read: version-free request inputs.

The wire models are open (UCP objects allow additional properties, and platforms may send back
fields the business owns: ``ucp_request: omit`` means they are ignored). The codecs read a body with
these models and hand the business logic the dataclasses below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cartpilot_local.merchant.protocol import JsonObject

POSTAL_FIELDS = (
    "street_address",
    "extended_address",
    "address_locality",
    "address_region",
    "address_country",
    "postal_code",
    "first_name",
    "last_name",
    "phone_number",
)


# --- version-free inputs ---------------------------------------------------------------------


@dataclass(frozen=True)
class LineRequest:
    id: str | None
    item_id: str
    quantity: int


@dataclass(frozen=True)
class DestinationRequest:
    id: str | None
    postal: JsonObject


@dataclass(frozen=True)
class GroupRequest:
    id: str | None
    selected_option_id: str | None
    selects_option: bool  # the field was sent (null clears the choice)


@dataclass(frozen=True)
class MethodRequest:
    id: str | None
    type: str
    destinations: tuple[DestinationRequest, ...] | None
    selected_destination_id: str | None
    selects_destination: bool
    groups: tuple[GroupRequest, ...] | None


@dataclass(frozen=True)
class CheckoutRequest:
    lines: tuple[LineRequest, ...] | None  # None: not sent (update keeps the session's)
    buyer: JsonObject | None
    currency: str | None
    currency_required: bool  # 2026-01-11 names the currency; 2026-04-08 only hints it in context
    methods: tuple[MethodRequest, ...] | None  # None: fulfillment not sent


@dataclass(frozen=True)
class PaymentRequest:
    """The instrument a completion pays with."""

    instrument_id: str | None
    handler_id: str | None
    type: str | None
    credential_type: str | None
    token: str | None


# --- wire models -----------------------------------------------------------------------------


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ItemIn(_Open):
    id: str = Field(min_length=1, max_length=200)


class LineItemIn(_Open):
    id: str | None = Field(default=None, max_length=100)
    item: ItemIn
    quantity: int = Field(ge=1, le=99)


class PostalIn(_Open):
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

    def postal(self) -> JsonObject:
        return {name: value for name in POSTAL_FIELDS if (value := getattr(self, name)) is not None}


class GroupIn(_Open):
    id: str | None = None
    selected_option_id: str | None = None


class MethodIn(_Open):
    id: str | None = None
    type: Literal["shipping", "pickup"] = "shipping"
    line_item_ids: list[str] | None = None
    destinations: list[PostalIn] | None = Field(default=None, max_length=10)
    selected_destination_id: str | None = None
    groups: list[GroupIn] | None = Field(default=None, max_length=10)


class FulfillmentIn(_Open):
    methods: list[MethodIn] = Field(default_factory=list, max_length=5)


class ContextIn(_Open):
    currency: str | None = Field(default=None, max_length=10)


class CredentialIn(_Open):
    type: str | None = Field(default=None, max_length=60)
    token: str | None = Field(default=None, max_length=500)


class InstrumentIn(_Open):
    id: str | None = Field(default=None, max_length=200)
    handler_id: str | None = Field(default=None, max_length=200)
    type: str | None = Field(default=None, max_length=60)
    credential: CredentialIn | None = None
    selected: bool | None = None


class PaymentIn(_Open):
    instruments: list[InstrumentIn] = Field(default_factory=list, max_length=10)
    selected_instrument_id: str | None = None


class CheckoutIn(_Open):
    id: str | None = None
    line_items: list[LineItemIn] | None = Field(default=None, min_length=1, max_length=50)
    buyer: dict[str, Any] | None = None
    context: ContextIn | None = None
    currency: str | None = Field(default=None, max_length=10)
    fulfillment: FulfillmentIn | None = None
    payment: PaymentIn | None = None


class CompletionIn(_Open):
    """2026-04-08: the checkout's ``payment`` (plus optional signals)."""

    payment: PaymentIn | None = None


class PaymentDataIn(_Open):
    """2026-01-11: ``payment_data`` is one instrument, with optional ``risk_signals``."""

    payment_data: InstrumentIn | None = None
    risk_signals: dict[str, Any] | None = None


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


class ProductIn(_Open):
    id: str = Field(min_length=1, max_length=200)
    context: ContextIn | None = None
    selected: list[dict[str, Any]] | None = None


class TokenBindingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checkout_id: str = Field(min_length=1, max_length=200)


class TokenRequestIn(BaseModel):
    """``POST /psp/tokens``: a saved payment method to tokenise, optionally bound to one checkout."""

    model_config = ConfigDict(extra="forbid")

    payment_method_id: str = Field(min_length=1, max_length=100)
    binding: TokenBindingIn | None = None


def line_requests(items: list[LineItemIn]) -> tuple[LineRequest, ...]:
    return tuple(LineRequest(item.id, item.item.id, item.quantity) for item in items)


def method_requests(fulfillment: FulfillmentIn) -> tuple[MethodRequest, ...]:
    return tuple(
        MethodRequest(
            id=method.id,
            type=method.type,
            destinations=None
            if method.destinations is None
            else tuple(DestinationRequest(given.id, given.postal()) for given in method.destinations),
            selected_destination_id=method.selected_destination_id,
            selects_destination="selected_destination_id" in method.model_fields_set,
            groups=None
            if method.groups is None
            else tuple(
                GroupRequest(
                    group.id, group.selected_option_id, "selected_option_id" in group.model_fields_set
                )
                for group in method.groups
            ),
        )
        for method in fulfillment.methods
    )


def payment_request(instrument: InstrumentIn) -> PaymentRequest:
    credential = instrument.credential
    return PaymentRequest(
        instrument_id=instrument.id,
        handler_id=instrument.handler_id,
        type=instrument.type,
        credential_type=credential.type if credential else None,
        token=credential.token if credential else None,
    )
