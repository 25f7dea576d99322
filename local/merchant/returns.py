"""The sandbox's returns (``com.cartpilot.order_return``): a buyer returns a shipped order whole.

UCP has no return route, so the sandbox offers one as a vendor extension of the order capability,
advertised in discovery beside ``com.cartpilot.order_cancel``. A return is ``requested`` when filed
(an order's ``return`` adjustment, ``pending``); when the goods arrive (``POST /_sandbox/returns/
{id}/receive``) it is ``received``, the order's charge is refunded once, and the order shows a
completed ``return`` and a completed ``refund`` adjustment, which its order event carries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from cartpilot_local.merchant.ledger import Ledger, OrderRecord, Refund, iso, new_id
from cartpilot_local.merchant.protocol import BusinessRefusal, JsonObject, Message

ReturnStatus = Literal["requested", "received"]
# What an order's fulfilment says once it has left the warehouse (fulfillment_event.json types).
_SHIPPED_EVENT_TYPES = frozenset({"shipped", "in_transit", "out_for_delivery", "delivered"})


@dataclass
class ReturnRecord:
    id: str
    order_id: str
    amount: int
    currency: str
    created_at: datetime
    status: ReturnStatus = "requested"
    received_at: datetime | None = None
    refund_ids: tuple[str, ...] = ()

    def to_json(self) -> JsonObject:
        return {
            "id": self.id,
            "order_id": self.order_id,
            "status": self.status,
            "refund": {"amount": self.amount, "currency": self.currency},
            "refund_ids": list(self.refund_ids),
            "created_at": iso(self.created_at),
            "received_at": iso(self.received_at) if self.received_at else None,
        }


def has_shipped(order: OrderRecord) -> bool:
    """Whether any of the order's fulfilment events says it has left the warehouse."""
    return any(event.get("type") in _SHIPPED_EVENT_TYPES for event in order.fulfillment_events)


def refuse_cancel_if_shipped(order: OrderRecord) -> None:
    """A merchant cancels what has not left; a shipped order comes back as a return."""
    if order.status != "canceled" and has_shipped(order):
        raise BusinessRefusal(
            Message.error(
                "order_fulfilled",
                f"order {order.id} has shipped and can no longer be canceled; return it instead",
                severity="unrecoverable",
            )
        )


def file_return(ledger: Ledger, order: OrderRecord, now: datetime) -> ReturnRecord:
    """Files the order's return, or gives the one already filed: an order is returned once."""
    existing = ledger.returns_for(order.id)
    if existing:
        return existing[0]
    if order.status == "canceled":
        raise BusinessRefusal(
            Message.error(
                "order_canceled", f"order {order.id} was canceled; there is nothing to return",
                severity="unrecoverable",
            )
        )  # fmt: skip
    if not has_shipped(order):
        raise BusinessRefusal(
            Message.error(
                "order_not_fulfilled", f"order {order.id} has not shipped yet; cancel it instead",
                severity="unrecoverable",
            )
        )  # fmt: skip
    filed = ReturnRecord(
        id=new_id("ret"), order_id=order.id, amount=order.total, currency=order.currency, created_at=now
    )
    ledger.returns[filed.id] = filed
    order.filed_return = filed
    return filed


def receive_return(ledger: Ledger, filed: ReturnRecord, now: datetime) -> list[Refund]:
    """The goods are back: refunds the order's charges, once. Receiving again refunds nothing more."""
    if filed.status == "received":
        return []
    order = ledger.orders[filed.order_id]
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
        for charge in ledger.charges
        if charge.order_id == order.id
    ]
    ledger.refunds.extend(refunds)
    filed.status = "received"
    filed.received_at = now
    filed.refund_ids = tuple(refund.id for refund in refunds)
    return refunds


def return_adjustments(order: OrderRecord, refunds: Sequence[Refund], *, signed: bool) -> list[JsonObject]:
    """The order's ``adjustments`` for its return: the return (pending until received) and, once
    received, its refund. ``signed``: 2026-04-08 (negative quantities and totals for money and goods
    going back); 2026-01-11 has positive quantities and an ``amount`` in minor units."""
    adjustments: list[JsonObject] = []
    sign = -1 if signed else 1
    for filed in [order.filed_return] if order.filed_return is not None else []:
        adjustments.append(
            {
                "id": filed.id,
                "type": "return",
                "occurred_at": iso(filed.received_at or filed.created_at),
                "status": "completed" if filed.status == "received" else "pending",
                "line_items": [{"id": line.id, "quantity": sign * line.quantity} for line in order.lines],
                "description": "Return received"
                if filed.status == "received"
                else "Return requested by the buyer",
            }
        )
        for refund in refunds:
            if refund.id not in filed.refund_ids:
                continue
            entry: JsonObject = {
                "id": refund.id,
                "type": "refund",
                "occurred_at": iso(refund.created_at),
                "status": "completed",
                "description": f"Refund for return {filed.id}",
            }
            if signed:
                entry["totals"] = [{"type": "total", "amount": -refund.amount}]
            else:
                entry["amount"] = refund.amount
            adjustments.append(entry)
    return adjustments
