"""What the shopper reads of a goal's audit trail and status: fixed sentences, never the records' details.

The audit keeps everything (masked); the shopper sees only the events that change something for
them, each in words from a closed set, so nothing a merchant, a planner or a person typed reaches
the page through the timeline.
"""

from __future__ import annotations

from dataclasses import dataclass

from cartpilot.audit.chain import AuditRecord
from cartpilot.goals.model import GoalStatus

STATUS_WORDS: dict[GoalStatus, str] = {
    GoalStatus.RECEIVED: "We received your request.",
    GoalStatus.PLANNING: "We are finding the right items for you.",
    GoalStatus.VALIDATING: "We are checking the order against the shop's rules.",
    GoalStatus.AWAITING_APPROVAL: "The order is waiting for approval.",
    GoalStatus.EXECUTING: "We are placing the order.",
    GoalStatus.COMPLETED: "Your order is placed.",
    GoalStatus.DENIED: "We could not place this order: it breaks the shop's rules.",
    GoalStatus.REJECTED: "The order was not approved: nothing was bought.",
    GoalStatus.EXPIRED: "Nobody approved the order in time: nothing was bought.",
    GoalStatus.COMPENSATED: "The order could not be completed: everything was undone and refunded.",
    GoalStatus.UNDONE: "The order was cancelled and refunded.",
    GoalStatus.FAILED: "We could not place this order.",
    GoalStatus.NEEDS_ATTENTION: "Something went wrong: our team is looking at this order.",
    GoalStatus.HANDED_OFF: "The shop needs you to finish this order on its site.",
    GoalStatus.RETURN_REQUESTED: "A return is filed with the shop: you are refunded when it receives the items.",
    GoalStatus.RETURNED: "The shop received the return: your refund is on its way.",
}

# Audit event -> what it means to the shopper. Events not listed (limits, price checks, retries,
# internal redeliveries) stay in the audit only.
EVENT_WORDS: dict[str, str] = {
    "goal.received": "Request received",
    "plan.created": "Plan ready",
    "approval.requested": "Approval requested",
    "approval.approved": "Approved",
    "approval.rejected": "Not approved",
    "plan.reduced": "Optional items left out",
    "execution.started": "Placing the order",
    "order.confirmed": "Order confirmed by the shop",
    "order.completed": "Order placed",
    "undo.requested": "Undo requested",
    "order.undone": "Order cancelled and refunded",
    "compensation.completed": "Order undone and refunded",
    "goal.denied": "Refused by the shop's rules",
    "goal.rejected": "Not approved",
    "goal.expired": "Approval expired",
    "goal.failed": "Could not be placed",
    "goal.needs_attention": "Passed to our team",
    "goal.handed-off": "Handed to the shop to finish",
    "return.requested": "Return filed",
    "goal.returned": "Return received and refunded",
    "approval.code-sent": "Verification code sent",
    "approval.locked": "Approval locked after too many wrong codes",
}

# A merchant's order event (``order.event``) shows by the shipment status it recorded, from a closed set.
SHIPMENT_WORDS: dict[str, str] = {
    "shipped": "Shipped",
    "in_transit": "In transit",
    "out_for_delivery": "Out for delivery",
    "failed_attempt": "Delivery attempt failed",
    "delivered": "Delivered",
    "undeliverable": "Could not be delivered",
    "returned_to_sender": "Returned to the shop",
}


@dataclass(frozen=True)
class TimelineEntry:
    at: str
    text: str


def shopper_timeline(records: list[AuditRecord]) -> list[TimelineEntry]:
    """The shopper-relevant records in order; a record repeated by a retried write shows once."""
    entries: list[TimelineEntry] = []
    for record in sorted(records, key=lambda r: r.seq):
        text = _words(record)
        if text is None or (entries and entries[-1].text == text):
            continue
        entries.append(TimelineEntry(at=_minute(record.at), text=text))
    return entries


def _words(record: AuditRecord) -> str | None:
    if record.event == "order.event":
        tracking = record.detail.get("tracking")
        status = tracking.get("status") if isinstance(tracking, dict) else None
        return SHIPMENT_WORDS.get(status) if isinstance(status, str) else None
    return EVENT_WORDS.get(record.event)


def _minute(at: str) -> str:
    """``2026-01-30T10:41:07.123Z`` -> ``2026-01-30 10:41 UTC``: what a person needs."""
    return f"{at[:10]} {at[11:16]} UTC" if len(at) >= 16 and at[10] == "T" else at
