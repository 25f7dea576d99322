"""Undoing what ran, in reverse: cancel the order (refunding it) or the checkout session.

The merchant, not the flow's outputs, is the source of truth for what happened:
a payment whose reply was lost may still have created an order, so the session
is read back before deciding what to undo.
"""

from __future__ import annotations

from typing import Any

from cartpilot.clock import utc_now_iso
from cartpilot.commerce import Merchant
from cartpilot.connectors.errors import ConnectorError
from cartpilot.goals import GoalStatus
from cartpilot.idempotency import step_idempotency_key
from cartpilot.ledger import GoalLedger
from cartpilot.observability import metrics

_SETTLED_SESSION = {"canceled", "completed"}


def _executed_sessions(outputs: dict[str, Any]) -> list[str]:
    sessions: list[str] = []
    for step_id in sorted(outputs, key=lambda sid: int(sid[1:]) if sid[1:].isdigit() else 0, reverse=True):
        output = outputs[step_id]
        if isinstance(output, dict) and output.get("checkoutId") and output["checkoutId"] not in sessions:
            sessions.append(str(output["checkoutId"]))
    return sessions


def undo_executed_steps(
    goal_id: str,
    outputs: dict[str, Any],
    *,
    ledger: GoalLedger,
    merchant: Merchant,
    final_status: GoalStatus = GoalStatus.COMPENSATED,
    reason: str | None = None,
) -> dict[str, Any]:
    goal = ledger.store.require(goal_id)
    undone: list[str] = []
    left: list[str] = []
    sessions = _executed_sessions(outputs)
    for step in goal.steps:
        checkout_id = step.summary.get("checkoutId")
        if checkout_id and checkout_id not in sessions:
            sessions.append(str(checkout_id))
    for session_id in sessions:
        try:
            session = merchant.checkout.get(session_id)
            if session.orderId:
                order = merchant.orders.cancel(
                    session.orderId, step_idempotency_key(goal_id, session.orderId, "undo")
                )
                undone.append(f"order {order.id} {order.status}")
            elif session.status not in _SETTLED_SESSION:
                merchant.checkout.cancel(session_id, step_idempotency_key(goal_id, session_id, "undo"))
                undone.append(f"checkout {session_id} canceled")
        except ConnectorError as exc:
            left.append(f"checkout {session_id}: {type(exc).__name__}: {exc}")
    if left:
        ledger.transition(
            goal_id,
            GoalStatus.NEEDS_ATTENTION,
            actor="compensator",
            event="compensation.incomplete",
            detail={"undone": undone, "leftToFixByHand": left, "reason": reason},
            failure="compensation incomplete: " + "; ".join(left),
        )
        metrics.add_metric(name="NeedsAttention", unit="Count", value=1)
        return {"status": GoalStatus.NEEDS_ATTENTION.value, "undone": undone, "left": left}
    ledger.transition(
        goal_id,
        final_status,
        actor="compensator",
        event="compensation.completed",
        detail={"undone": undone, "reason": reason},
        failure=reason,
        undoneAt=utc_now_iso(),
    )
    metrics.add_metric(name="Compensations", unit="Count", value=1)
    return {"status": final_status.value, "undone": undone}
