"""Returns: an undo after shipment files a return with the merchant; its refund ends the goal.

A goal whose return was filed is ``RETURN_REQUESTED`` with the merchant's return id. The merchant
confirms the refund in the order entity it sends (UCP ``adjustments``: a ``refund`` or ``return``
adjustment with status ``completed``); ``settle_return`` moves the goal to ``RETURNED`` once, with
the refunded amount. CartPilot refunds nothing itself: the merchant holds the money, so a repeated
or replayed event can at most repeat a notice, and the claim below keeps even that to one.
"""

from __future__ import annotations

from typing import Any

from cartpilot.brands.activity import OrderCounters
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.model import GoalRecord, GoalStatus
from cartpilot.goals.ports import Notifier
from cartpilot.kernel.clock import utc_now, utc_now_iso
from cartpilot.kernel.money import MINOR_UNIT_EXPONENTS, Money
from cartpilot.kernel.observability import logger
from cartpilot.plans.reservations import release_for_goal

# Adjustment types (an open string in UCP) that mean money went back for returned goods.
_REFUND_TYPES = frozenset({"refund", "return"})


def completed_refund(order: dict[str, Any], currency: str) -> Money | None:
    """The money the order's completed refund/return adjustments gave back; None when there is none.

    Both UCP versions are read: 2026-01-11 has ``amount`` (minor units), 2026-04-08 has signed
    ``totals`` (negative for money returned to the buyer; the ``total`` entry when there is one).
    """
    adjustments = order.get("adjustments")
    if not isinstance(adjustments, list):
        return None
    refunded = 0
    found = False
    seen: set[str] = set()
    for adjustment in adjustments:
        if not isinstance(adjustment, dict):
            continue
        if adjustment.get("status") != "completed" or adjustment.get("type") not in _REFUND_TYPES:
            continue
        adjustment_id = adjustment.get("id")
        # An adjustment log may repeat an entry; each id counts once.
        if not isinstance(adjustment_id, str) or adjustment_id in seen:
            continue
        amount = _adjustment_amount(adjustment)
        if amount is None:
            continue
        seen.add(adjustment_id)
        found = True
        refunded += amount
    if not found or currency not in MINOR_UNIT_EXPONENTS:
        return None
    return Money(amount_minor=refunded, currency=currency)


def _adjustment_amount(adjustment: dict[str, Any]) -> int | None:
    amount = adjustment.get("amount")
    if isinstance(amount, int) and not isinstance(amount, bool):
        return abs(amount)
    totals = adjustment.get("totals")
    if not isinstance(totals, list):
        return None
    entries = [t for t in totals if isinstance(t, dict) and _is_int(t.get("amount"))]
    chosen = [t for t in entries if t.get("type") == "total"] or entries
    if not chosen:
        return None
    return abs(sum(int(t["amount"]) for t in chosen))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _order_currency(goal: GoalRecord, order: dict[str, Any]) -> str | None:
    # 2026-04-08 orders carry their currency; 2026-01-11 ones do not, and the receipt's applies.
    currency = order.get("currency")
    if isinstance(currency, str):
        return currency
    return goal.receipt.total.currency if goal.receipt else None


def settle_return(
    goal_id: str,
    order: dict[str, Any],
    *,
    ledger: GoalLedger,
    notifier: Notifier,
    counters: OrderCounters | None = None,
) -> bool:
    """Moves a ``RETURN_REQUESTED`` goal to ``RETURNED`` when ``order`` (the full UCP order entity,
    verified and deduplicated by the caller) shows its refund completed. True when it moved the goal.

    The returned order gives the shopper's daily-limit hold back, as an undo does (``counters``):
    before the goal moves, so a failed release fails the event and its retry releases (a release
    already made changes nothing).

    Idempotent: an event for an order that is not the goal's, one without a completed refund, or
    one for a goal already settled changes nothing; a claim on the goal decides, under a
    conditional write, which of two racing events records the refund and tells the shopper.
    """
    goal = ledger.store.get(goal_id)
    if goal is None or goal.status is not GoalStatus.RETURN_REQUESTED:
        return False
    if goal.receipt is None or order.get("id") != goal.receipt.orderId:
        return False
    currency = _order_currency(goal, order)
    refund = completed_refund(order, currency) if currency else None
    if refund is None:
        return False
    if not ledger.store.claim_return_settlement(goal_id, utc_now_iso()):
        return False
    try:
        if counters is not None:
            release_for_goal(
                goal_id,
                counters=counters,
                ledger=ledger,
                actor="merchant",
                why="order returned",
                at=utc_now(),
            )
        ledger.transition(
            goal_id,
            GoalStatus.RETURNED,
            actor="merchant",
            event="goal.returned",
            plan_hash=goal.planHash,
            detail={
                "orderId": goal.receipt.orderId,
                "returnId": goal.returnId,
                "refund": refund.model_dump(mode="json"),
            },
            refund=refund,
        )
    except Exception:
        # Nothing was recorded: the claim goes, so the merchant's retry of the event settles it.
        ledger.store.release_return_settlement(goal_id)
        raise
    _tell_shopper(notifier, goal, refund)
    return True


def _tell_shopper(notifier: Notifier, goal: GoalRecord, refund: Money) -> None:
    order_id = goal.receipt.orderId if goal.receipt else ""
    try:
        notifier.send(
            kind="returned",
            goal_id=goal.goalId,
            user_id=goal.userId,
            subject=f"Return received: {refund.format()} refunded",
            body={"orderId": order_id, "returnId": goal.returnId, "refund": refund.format()},
        )
    except Exception:
        # The refund is recorded; a lost notice must not make the merchant's event fail and repeat.
        logger.exception("could not send the return notice", extra={"goalId": goal.goalId})
