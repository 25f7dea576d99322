"""Checkout sessions as the merchant keeps them, and the view of one that a response renders."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from cartpilot_local.merchant.ledger import OrderRecord
from cartpilot_local.merchant.protocol import JsonObject, Message
from cartpilot_local.merchant.shipping import ShippingQuote

SESSION_TTL = timedelta(hours=6)  # checkout.json: the default TTL is 6 hours from creation
METHOD_ID = "shipping_1"
GROUP_ID = "package_1"

SessionState = Literal["open", "completed", "canceled"]
CheckoutStatus = Literal["incomplete", "requires_escalation", "ready_for_complete", "completed", "canceled"]


@dataclass
class SessionLine:
    id: str
    item_id: str
    title: str
    unit_price: int
    quantity: int
    image_url: str | None
    restricted: bool

    @property
    def subtotal(self) -> int:
        return self.unit_price * self.quantity


@dataclass
class Destination:
    id: str  # assigned by the merchant; platforms adopt it
    postal: JsonObject


@dataclass(frozen=True)
class PaidInstrument:
    """What the order was paid with, safe to show: never the credential (overview.md)."""

    id: str
    handler_id: str
    brand: str
    last_digits: str


@dataclass
class CheckoutSession:
    id: str
    currency: str
    created_at: datetime
    lines: list[SessionLine] = field(default_factory=list)
    buyer: JsonObject | None = None
    # These goods ship, so the session has its shipping method from the start: 2026-01-11 update
    # requests must name a method by the id the merchant gave it (fulfillment_method.json).
    method_id: str | None = METHOD_ID
    destinations: list[Destination] = field(default_factory=list)
    selected_destination_id: str | None = None
    selected_option_id: str | None = None
    state: SessionState = "open"
    escalation: Message | None = None
    order_id: str | None = None
    paid_with: PaidInstrument | None = None
    line_counter: int = 0
    destination_counter: int = 0

    @property
    def subtotal(self) -> int:
        return sum(line.subtotal for line in self.lines)

    @property
    def destination(self) -> Destination | None:
        return next((d for d in self.destinations if d.id == self.selected_destination_id), None)

    @property
    def expires_at(self) -> datetime:
        return self.created_at + SESSION_TTL

    def new_line_id(self, taken: set[str]) -> str:
        while True:
            self.line_counter += 1
            candidate = f"li_{self.line_counter}"
            if candidate not in taken:
                return candidate

    def new_destination_id(self) -> str:
        self.destination_counter += 1
        return f"dest_{self.destination_counter}"


@dataclass(frozen=True)
class CheckoutView:
    """A session as one response shows it: its status, messages and the options on offer."""

    session: CheckoutSession
    status: CheckoutStatus
    messages: tuple[Message, ...]
    options: tuple[ShippingQuote, ...]  # empty until a deliverable destination is selected
    chosen: ShippingQuote | None
    order: OrderRecord | None
    continue_url: str | None

    @property
    def shipping(self) -> int | None:
        return None if self.chosen is None else self.chosen.amount

    @property
    def total(self) -> int:
        return self.session.subtotal + (self.shipping or 0)

    @property
    def line_ids(self) -> list[str]:
        return [line.id for line in self.session.lines]
