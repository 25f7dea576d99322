"""Undoing what ran, in reverse: cancel the order (refunding it) or the checkout session.

The merchant, not the flow's outputs, is the source of truth for what happened:
a payment whose reply was lost may still have created an order, so every session
the goal touched is read back before deciding what to undo. Each undo call carries
its own idempotency key, so a retried compensation never refunds twice.

An order is cancelled only where the merchant advertises a way to (UCP has no cancel
route of its own): where it offers none (``UndoUnsupported``), nothing is tried again
and the order is left to a person, named in the goal's record. The shopper's undo of an
order that has shipped files a return instead (orders/undo_action.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cartpilot.brands.activity import OrderCounters
from cartpilot.commerce.errors import CompensationIncomplete, ConnectorError, UndoUnsupported
from cartpilot.commerce.ports import Merchant
from cartpilot.execution.keys import step_idempotency_key
from cartpilot.goals.events import CompensationResult
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.model import GoalRecord, GoalStatus
from cartpilot.goals.ports import Notifier
from cartpilot.goals.reasons import REASON_MESSAGES, ReasonCode
from cartpilot.kernel.clock import utc_now, utc_now_iso
from cartpilot.kernel.observability import metrics
from cartpilot.orders.undo_action import refused_as_shipped, undo_shipped_order
from cartpilot.plans.reservations import release_for_goal

_SETTLED_SESSION = {"canceled", "completed"}
_FINAL_EVENTS = {
    GoalStatus.COMPENSATED: "compensation.completed",
    GoalStatus.UNDONE: "order.undone",
}


def _sessions_touched(goal_steps: list[Any], outputs: dict[str, Any]) -> list[str]:
    """Checkout sessions from the flow's outputs and the goal's recorded steps, newest first."""
    sessions: list[str] = []
    ordered = sorted(outputs, key=lambda sid: int(sid[1:]) if sid[1:].isdigit() else -1, reverse=True)
    candidates = [outputs[step_id] for step_id in ordered] + [step.summary for step in reversed(goal_steps)]
    for output in candidates:
        if isinstance(output, dict) and output.get("checkoutId") and output["checkoutId"] not in sessions:
            sessions.append(str(output["checkoutId"]))
    return sessions


def _undo_session(goal_id: str, session_id: str, merchant: Merchant) -> str | None:
    session = merchant.checkout.get(session_id)
    if session.orderId:
        order = merchant.orders.cancel(
            session.orderId, step_idempotency_key(goal_id, session.orderId, "undo")
        )
        return f"order {order.id} {order.status} and refunded"
    if session.status not in _SETTLED_SESSION:
        merchant.checkout.cancel(session_id, step_idempotency_key(goal_id, session_id, "undo"))
        return f"checkout {session_id} canceled"
    return None


# Statuses past the order's confirmation: the receipt was sent (or the shopper has since undone it).
_PAST_CONFIRMATION = frozenset(
    {GoalStatus.COMPLETED, GoalStatus.UNDONE, GoalStatus.RETURN_REQUESTED, GoalStatus.RETURNED}
)


def _keep_confirmed_order(
    goal: GoalRecord, *, ledger: GoalLedger, reason: str | None
) -> CompensationResult | None:
    """A failure after the order was confirmed as planned (the receipt failed, or the step loop
    stopped after the confirmation) undoes nothing: the order is the one the plan bought, and only
    the shopper's undo takes it back. A goal whose receipt went out stays as it is; one whose receipt
    was not sent goes to a person. None when nothing was confirmed: compensation goes ahead."""
    receipt_sent = goal.status is not GoalStatus.COMPLETED or goal.receiptSentAt is not None
    if goal.status in _PAST_CONFIRMATION and receipt_sent:
        ledger.note(
            goal.goalId, actor="compensator", event="compensation.skipped",
            detail={"why": f"the goal is {goal.status.value}: its order stands", "reason": reason},
        )  # fmt: skip
        return CompensationResult(status=goal.status, undone=[])
    confirmed = goal.status is GoalStatus.COMPLETED or any(
        record.event == "order.confirmed" for record in ledger.audit.records(goal.goalId)
    )
    if not confirmed:
        return None
    left = ["the order was confirmed as planned and stands; its receipt was not sent"]
    ledger.transition(
        goal.goalId,
        GoalStatus.NEEDS_ATTENTION,
        actor="compensator",
        event="compensation.incomplete",
        detail={"undone": [], "leftToFixByHand": left, "reason": reason},
        failure=REASON_MESSAGES[ReasonCode.NEEDS_ATTENTION],
        reasonCode=ReasonCode.NEEDS_ATTENTION.value,
    )
    metrics.add_metric(name="NeedsAttention", unit="Count", value=1)
    return CompensationResult(status=GoalStatus.NEEDS_ATTENTION, undone=[], left=left)


def undo_executed_steps(
    goal_id: str,
    outputs: dict[str, Any],
    *,
    ledger: GoalLedger,
    merchants: Callable[[str], Merchant],
    final_status: GoalStatus = GoalStatus.COMPENSATED,
    reason: str | None = None,
    reason_code: ReasonCode | None = None,
    attempt: int = 0,
    max_attempts: int = 1,
    counters: OrderCounters | None = None,
    notifier: Notifier | None = None,
) -> CompensationResult:
    """Undoes everything the goal did at the merchant.

    ``final_status`` is COMPENSATED after a failure, UNDONE after the shopper's undo, or
    PLANNING when the goal is about to be planned again (nothing final is recorded then; the goal
    keeps its hold on the daily limits, which validating the new plan adjusts). A goal that ends
    COMPENSATED or UNDONE gives its hold back.
    While attempts remain, an incomplete undo raises ``CompensationIncomplete`` so the state
    machine retries; on the last attempt the goal ends NEEDS_ATTENTION with what is left.
    The shopper's undo (UNDONE) of an order that has shipped files a return instead (``notifier``
    tells the shopper); the goal is RETURN_REQUESTED then.
    """
    goal = ledger.store.require(goal_id)
    if final_status is GoalStatus.COMPENSATED:
        kept = _keep_confirmed_order(goal, ledger=ledger, reason=reason)
        if kept is not None:
            return kept
    # ``reason`` is the error's own words (audit only); the shopper sees a reason from the set.
    shown = reason_code or (ReasonCode.ORDER_UNDONE if final_status is GoalStatus.COMPENSATED else None)
    merchant = merchants(goal.current_plan().merchant.id)
    undoing = final_status is GoalStatus.UNDONE
    if undoing:
        returned = undo_shipped_order(goal_id, ledger=ledger, merchant=merchant, notifier=notifier)
        if returned is not None:
            return returned
    undone: list[str] = []
    left: list[str] = []
    cannot_cancel = False
    refused_shipped = False
    for session_id in _sessions_touched(goal.steps, outputs):
        try:
            result = _undo_session(goal_id, session_id, merchant)
        except UndoUnsupported as exc:
            # Retrying cannot help: the merchant offers no cancel. A person takes it from here.
            cannot_cancel = True
            left.append(f"checkout {session_id}: the order stands, {exc}")
            continue
        except ConnectorError as exc:
            refused_shipped = refused_shipped or (undoing and refused_as_shipped(exc))
            left.append(f"checkout {session_id}: {type(exc).__name__}: {exc}")
            continue
        if result:
            undone.append(result)
    if refused_shipped:
        # It shipped between the look and the cancel: return it, or hand it to a person now.
        returned = undo_shipped_order(
            goal_id, ledger=ledger, merchant=merchant, notifier=notifier, refused_shipped=True
        )
        if returned is not None:
            return returned
    if left and not cannot_cancel and attempt + 1 < max_attempts:
        ledger.note(
            goal_id,
            actor="compensator",
            event="compensation.retrying",
            detail={"attempt": attempt + 1, "undone": undone, "left": left},
        )
        raise CompensationIncomplete("; ".join(left))
    if left:
        ledger.transition(
            goal_id,
            GoalStatus.NEEDS_ATTENTION,
            actor="compensator",
            event="compensation.incomplete",
            detail={"undone": undone, "leftToFixByHand": left, "reason": reason},
            failure=REASON_MESSAGES[ReasonCode.NEEDS_ATTENTION],
            reasonCode=ReasonCode.NEEDS_ATTENTION.value,
        )
        metrics.add_metric(name="NeedsAttention", unit="Count", value=1)
        return CompensationResult(status=GoalStatus.NEEDS_ATTENTION, undone=undone, left=left)
    if final_status is GoalStatus.PLANNING:
        ledger.note(
            goal_id,
            actor="compensator",
            event="compensation.before-replanning",
            detail={"undone": undone, "reason": reason},
        )
        metrics.add_metric(name="PriceDriftReplans", unit="Count", value=1)
        return CompensationResult(status=GoalStatus.PLANNING, undone=undone)
    ledger.transition(
        goal_id,
        final_status,
        actor="compensator",
        event=_FINAL_EVENTS.get(final_status, "compensation.completed"),
        detail={"undone": undone, "reason": reason},
        failure=REASON_MESSAGES[shown] if shown else None,
        reasonCode=shown,
        undoneAt=utc_now_iso(),
    )
    if counters is not None:
        release_for_goal(
            goal_id, counters=counters, ledger=ledger, actor="compensator",
            why=f"goal {final_status.value.lower()}", at=utc_now(),
        )  # fmt: skip
    metrics.add_metric(name="Compensations", unit="Count", value=1)
    return CompensationResult(status=final_status, undone=undone)
