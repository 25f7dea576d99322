"""The tracking sweep: applies the order snapshots merchants pushed, and asks merchants that do not push.

The sweep reads a sparse index of the goals table (no scan) with two lists:

- ``pending``: orders whose merchant pushed an event the webhook accepted; its snapshot is applied
  here, where notices may be sent, so the webhook answers at once (order.md: "respond quickly ...
  process events asynchronously after responding");
- ``poll``: orders of merchants set to ``orderEvents: poll`` in brand.yaml, listed by the receipt
  until their shipment stops moving; each is read with Get Order and goes through the same steps as
  a pushed event (accepted under an id derived from its content, so a poll that finds nothing new
  records nothing), then applied. An order whose merchant's UCP version has no Get Order can never
  be read: it leaves the list, and its goal's audit says so once (orders/reach.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from cartpilot.brands.activity import OrderCounters
from cartpilot.commerce.errors import MerchantRejected
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.model import GoalStatus
from cartpilot.goals.ports import Notifier
from cartpilot.kernel.observability import logger
from cartpilot.orders.events import accept_order_event, apply_order_snapshot, snapshot_id
from cartpilot.orders.ports import OrderEventStore, OrderLink
from cartpilot.orders.reach import UNREACHABLE, lookup_unsupported

# Orders looked at per sweep: far below what a minute's run can do; the rest wait for the next one.
SWEEP_BATCH: Final = 50

# (merchant id, order id) -> the order entity, as the merchant's Get Order answers it.
FetchOrder = Callable[[str, str], Mapping[str, Any]]


@dataclass
class SweepReport:
    applied: int = 0
    polled: int = 0
    unchanged: int = 0
    failed: int = 0
    # Polled orders taken off the list because their merchant cannot be polled.
    unreachable: int = 0
    goals: list[str] = field(default_factory=list)


def sweep_orders(
    *,
    store: OrderEventStore,
    fetch_order: FetchOrder,
    ledger: GoalLedger,
    notifier: Notifier,
    counters: OrderCounters | None = None,
    limit: int = SWEEP_BATCH,
) -> SweepReport:
    """Applies every pending snapshot and reads every open polled order once; one order's failure is
    logged and left listed for the next sweep. ``counters`` give a returned order's daily-limit
    hold back."""
    report = SweepReport()
    for link, listing in store.open_orders(limit):
        try:
            if listing == "pending":
                changed = _apply_pending(
                    link, store=store, ledger=ledger, notifier=notifier, counters=counters
                )
            else:
                report.polled += 1
                changed = _poll(
                    link, store=store, fetch_order=fetch_order, ledger=ledger, notifier=notifier,
                    counters=counters,
                )  # fmt: skip
        except Exception as error:
            if lookup_unsupported(error) and _stop_polling(link, store=store, ledger=ledger, why=str(error)):
                report.unreachable += 1
                continue
            report.failed += 1
            logger.exception("an order could not be brought up to date", extra={"goalId": link.goalId})
            continue
        if changed:
            report.applied += 1
            report.goals.append(link.goalId)
        else:
            report.unchanged += 1
    return report


def _stop_polling(link: OrderLink, *, store: OrderEventStore, ledger: GoalLedger, why: str) -> bool:
    """Takes an order its merchant cannot answer Get Order for off the list, noted in the goal's audit
    (once: the order is not listed again). False when that could not be recorded (retried next sweep)."""
    try:
        ledger.note(
            link.goalId,
            actor="tracking",
            event="tracking.unreachable",
            detail={"merchantId": link.merchantId, "orderId": link.orderId, "why": UNREACHABLE},
        )
        store.close_polling(link.merchantId, link.orderId)
    except Exception:
        logger.exception("an order that cannot be polled stays listed", extra={"goalId": link.goalId})
        return False
    logger.warning("stopped polling an order", extra={"goalId": link.goalId, "reason": why})
    return True


def _apply_pending(
    link: OrderLink,
    *,
    store: OrderEventStore,
    ledger: GoalLedger,
    notifier: Notifier,
    counters: OrderCounters | None,
) -> bool:
    pending = store.pending_snapshot(link.merchantId, link.orderId)
    if pending is None:
        return False
    order_json, queued_at = pending
    apply_order_snapshot(
        link, json.loads(order_json), store=store, ledger=ledger, notifier=notifier, counters=counters
    )
    store.clear_pending(link.merchantId, link.orderId, queued_at)
    return True


def _poll(
    link: OrderLink,
    *,
    store: OrderEventStore,
    fetch_order: FetchOrder,
    ledger: GoalLedger,
    notifier: Notifier,
    counters: OrderCounters | None,
) -> bool:
    order = fetch_order(link.merchantId, link.orderId)
    if order.get("id") != link.orderId:
        raise MerchantRejected(
            f"asked for order {link.orderId}, the merchant answered another", code="order_mismatch"
        )
    if not accept_order_event(link, snapshot_id(order), order, source="poll", store=store, ledger=ledger):
        return False
    applied = apply_order_snapshot(
        link, order, store=store, ledger=ledger, notifier=notifier, counters=counters
    )
    goal = ledger.store.require(link.goalId)
    # Nothing more will move: the parcel's journey ended, and no return is waiting for its refund.
    if (
        applied.tracking is not None
        and applied.tracking.final
        and goal.status is not GoalStatus.RETURN_REQUESTED
    ):
        store.close_polling(link.merchantId, link.orderId)
    return True
