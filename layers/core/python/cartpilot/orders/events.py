"""Recording what a merchant reports about an order, once per event, whether pushed or polled.

An event is the full order entity (order.md: a current-state snapshot, never a delta). Two steps:

1. ``accept_order_event``: claim the event id with a conditional write (a duplicate is absorbed and
   changes nothing), note the event in the goal's audit trail (masked, as every record) and queue the
   snapshot. A failure gives the claim back, so the merchant's retry records it.
2. ``apply_order_snapshot`` (the tracking sweep): recompute the goal's tracking from the snapshot,
   tell the shopper once per shipment transition, and hand the order to the returns logic.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from cartpilot.brands.activity import OrderCounters
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.ports import Notifier
from cartpilot.kernel.clock import utc_now_iso
from cartpilot.kernel.observability import logger
from cartpilot.orders.ports import OrderEventStore, OrderLink
from cartpilot.orders.returns import settle_return
from cartpilot.orders.tracking import Tracking, derive_tracking, notices_reached

EventSource = Literal["webhook", "poll"]
_SUBJECTS: Final = {
    "shipped": "Your order {order} is on its way",
    "delivered": "Your order {order} was delivered",
}


@dataclass(frozen=True)
class Applied:
    """What applying one order snapshot to its goal did."""

    goalId: str
    tracking: Tracking | None = None
    notified: tuple[str, ...] = ()
    returned: bool = False


def snapshot_id(order: Mapping[str, Any]) -> str:
    """An event id for a polled snapshot: the same order state always gets the same id, so a poll
    that finds nothing new records nothing (``ucp`` metadata is left out: it says nothing of the order)."""
    content = {name: value for name, value in order.items() if name != "ucp"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "poll-" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _summary(order: Mapping[str, Any], tracking: Tracking | None) -> dict[str, Any]:
    """What the audit keeps of the event: no addresses, names or free text beyond the shipment's."""
    adjustments = order.get("adjustments")
    return {
        "orderId": order.get("id"),
        "tracking": None
        if tracking is None
        else {
            "status": tracking.status,
            "carrier": tracking.carrier,
            "trackingNumber": tracking.trackingNumber,
            "events": len(tracking.events),
        },
        "adjustments": sorted(
            {str(a.get("type")) for a in adjustments if isinstance(a, Mapping) and a.get("type")}
        )
        if isinstance(adjustments, list)
        else [],
    }


def accept_order_event(
    link: OrderLink,
    event_id: str,
    order: Mapping[str, Any],
    *,
    source: EventSource,
    store: OrderEventStore,
    ledger: GoalLedger,
) -> bool:
    """Records one verified event of the order ``link`` names: its claim, an audit record, and the
    snapshot queued for the tracking sweep. False (and nothing changed) for an event id already
    recorded. Quick and without notices, so a webhook is answered at once (order.md: "respond quickly
    ... process events asynchronously")."""
    if not store.claim_event(link.merchantId, event_id, link.goalId, utc_now_iso()):
        return False
    try:
        goal = ledger.store.require(link.goalId)
        ledger.note(
            link.goalId,
            actor=f"merchant:{link.merchantId}",
            event="order.event",
            plan_hash=goal.planHash,
            detail={"source": source, "eventId": event_id, **_summary(order, derive_tracking(order))},
        )
        if source == "webhook":
            canonical = json.dumps(order, separators=(",", ":"), ensure_ascii=False, default=str)
            store.queue_snapshot(link, event_id, canonical, utc_now_iso())
    except BaseException:
        store.release_event(link.merchantId, event_id)
        raise
    return True


def _newer(tracking: Tracking, before: Tracking | None) -> bool:
    """Whether ``tracking`` may replace ``before``: a snapshot that arrives late (an older event
    delivered after a newer one) must not move the shipment back."""
    if before is None:
        return True
    if tracking == before:
        return False
    latest = tracking.events[-1].at if tracking.events else ""
    shown = before.events[-1].at if before.events else ""
    return _instant(latest) >= _instant(shown) and len(tracking.events) >= len(before.events)


def _instant(at: str) -> datetime:
    try:
        return datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def apply_order_snapshot(
    link: OrderLink,
    order: Mapping[str, Any],
    *,
    store: OrderEventStore,
    ledger: GoalLedger,
    notifier: Notifier,
    counters: OrderCounters | None = None,
) -> Applied:
    """Brings the goal up to date with ``order``: its tracking, the shopper's notices (each once,
    under a claim), and a return the merchant refunded (its daily-limit hold given back through
    ``counters``). Safe to repeat with the same snapshot."""
    goal = ledger.store.require(link.goalId)
    tracking = derive_tracking(order)
    newer = tracking is not None and _newer(tracking, goal.tracking)
    if newer:
        ledger.store.update(link.goalId, updated_at=utc_now_iso(), tracking=tracking)
    shown = tracking if newer else goal.tracking
    # Every notice the shipment has reached, each claimed once: a notice that failed to go out is
    # sent with the next snapshot of the order.
    notified = (
        tuple(
            _tell_shopper(link, goal.userId, kind, shown, store, notifier) for kind in notices_reached(shown)
        )
        if shown is not None
        else ()
    )
    returned = settle_return(link.goalId, dict(order), ledger=ledger, notifier=notifier, counters=counters)
    return Applied(
        goalId=link.goalId,
        tracking=shown,
        notified=tuple(kind for kind in notified if kind),
        returned=returned,
    )


def _tell_shopper(
    link: OrderLink, user_id: str, kind: str, tracking: Tracking, store: OrderEventStore, notifier: Notifier
) -> str:
    """Sends the ``kind`` notice unless it went out already; returns the kind sent, or ''."""
    if not store.claim_notice(link.goalId, kind, utc_now_iso()):
        return ""
    try:
        notifier.send(
            kind=kind,
            goal_id=link.goalId,
            user_id=user_id,
            subject=_SUBJECTS[kind].format(order=link.orderId),
            body={
                "orderId": link.orderId,
                "status": tracking.status,
                "carrier": tracking.carrier,
                "trackingNumber": tracking.trackingNumber,
                "trackingUrl": tracking.trackingUrl,
            },
        )
    except Exception:
        # The event is recorded; the notice is retried with the next event or poll of this order.
        store.release_notice(link.goalId, kind)
        logger.exception("could not send the shipment notice", extra={"goalId": link.goalId, "kind": kind})
        return ""
    return kind
