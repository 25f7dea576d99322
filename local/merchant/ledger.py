"""What the sandbox merchant has sold, charged and refunded: the evidence tests count."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from cartpilot_local.merchant.protocol import JsonObject
from cartpilot_local.merchant.shipping import ShippingQuote

if TYPE_CHECKING:
    from cartpilot_local.merchant.returns import ReturnRecord


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class OrderLine:
    id: str
    item_id: str
    title: str
    unit_price: int
    quantity: int
    image_url: str | None


@dataclass
class OrderRecord:
    id: str
    label: str
    checkout_id: str
    currency: str
    lines: list[OrderLine]
    subtotal: int
    shipping: int
    shipping_quote: ShippingQuote
    destination: JsonObject
    created_at: datetime
    status: str = "open"  # open | canceled
    canceled_at: datetime | None = None
    # fulfillment_event.json entries, oldest first: the shipment's append-only log (webhooks.py).
    fulfillment_events: list[JsonObject] = field(default_factory=list)
    # The platform profile (UCP-Agent) the order was placed by: where its order events go.
    platform_profile: str | None = None
    # The buyer's return of the shipped order, once filed (one per order).
    filed_return: ReturnRecord | None = None

    @property
    def total(self) -> int:
        return self.subtotal + self.shipping

    def to_json(self) -> JsonObject:
        return {
            "id": self.id,
            "label": self.label,
            "checkout_id": self.checkout_id,
            "status": self.status,
            "currency": self.currency,
            "total": self.total,
            "created_at": iso(self.created_at),
            "canceled_at": iso(self.canceled_at) if self.canceled_at else None,
        }


@dataclass(frozen=True)
class Charge:
    id: str
    order_id: str
    checkout_id: str
    amount: int
    currency: str
    payment_method_id: str
    created_at: datetime

    def to_json(self) -> JsonObject:
        return {
            "id": self.id,
            "order_id": self.order_id,
            "checkout_id": self.checkout_id,
            "amount": self.amount,
            "currency": self.currency,
            "payment_method_id": self.payment_method_id,
            "created_at": iso(self.created_at),
        }


@dataclass(frozen=True)
class Refund:
    id: str
    charge_id: str
    order_id: str
    checkout_id: str
    amount: int
    currency: str
    created_at: datetime

    def to_json(self) -> JsonObject:
        return {
            "id": self.id,
            "charge_id": self.charge_id,
            "order_id": self.order_id,
            "checkout_id": self.checkout_id,
            "amount": self.amount,
            "currency": self.currency,
            "created_at": iso(self.created_at),
        }


@dataclass
class Ledger:
    """Append-only records; callers hold the merchant's lock."""

    orders: dict[str, OrderRecord] = field(default_factory=dict)
    charges: list[Charge] = field(default_factory=list)
    refunds: list[Refund] = field(default_factory=list)
    # Returns of shipped orders (cartpilot_local.merchant.returns), by return id.
    returns: dict[str, ReturnRecord] = field(default_factory=dict)

    def place_order(self, order: OrderRecord, payment_method_id: str) -> Charge:
        """Records the order and its one charge, for the order's total."""
        self.orders[order.id] = order
        charge = Charge(
            id=new_id("ch"),
            order_id=order.id,
            checkout_id=order.checkout_id,
            amount=order.total,
            currency=order.currency,
            payment_method_id=payment_method_id,
            created_at=order.created_at,
        )
        self.charges.append(charge)
        return charge

    def cancel_order(self, order: OrderRecord, now: datetime) -> list[Refund]:
        """Cancels and refunds every charge once; cancelling again refunds nothing more."""
        if order.status == "canceled":
            return []
        order.status = "canceled"
        order.canceled_at = now
        refunds = [
            Refund(
                id=new_id("re"),
                charge_id=charge.id,
                order_id=order.id,
                checkout_id=order.checkout_id,
                amount=charge.amount,
                currency=charge.currency,
                created_at=now,
            )
            for charge in self.charges
            if charge.order_id == order.id
        ]
        self.refunds.extend(refunds)
        return refunds

    def refunds_for(self, order_id: str) -> list[Refund]:
        return [refund for refund in self.refunds if refund.order_id == order_id]

    def returns_for(self, order_id: str) -> list[ReturnRecord]:
        order = self.orders.get(order_id)
        return [order.filed_return] if order is not None and order.filed_return is not None else []

    def to_json(self) -> JsonObject:
        ledger: JsonObject = {
            "orders": [order.to_json() for order in self.orders.values()],
            "charges": [charge.to_json() for charge in self.charges],
            "refunds": [refund.to_json() for refund in self.refunds],
        }
        # Listed once there are any, so a ledger without returns keeps its documented shape.
        if self.returns:
            ledger["returns"] = [filed.to_json() for filed in self.returns.values()]
        return ledger
