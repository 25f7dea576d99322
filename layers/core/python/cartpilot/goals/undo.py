"""The undo window: after a completed order, the shopper may take it back until ``undoUntil``.

Only where the merchant offers a way to take an order back: UCP itself has neither a cancel nor a
return route. Undo cancels an order that has not shipped (the plan's ``merchant.undo`` is
``cancel``) and files a return for one that has (``merchant.returns``; orders/undo_action.py picks
by the order's state at undo time). The approval page and the receipt say which the merchant
offers before anyone relies on it; where it offers neither, no window opens and undo is refused.

The window is a deadline on the goal, not a waiting execution: the order flow ends with the receipt,
and an undo request inside the window starts the short undo flow (statemachines/undo_flow.asl.json).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict

from cartpilot.goals.events import UndoWindowClosed, UndoWindowOpened
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.model import GoalStatus
from cartpilot.goals.ports import TaskTokenGone, Workflow
from cartpilot.kernel.clock import utc_now, utc_now_iso
from cartpilot.kernel.errors import Refusal
from cartpilot.plans.model import Plan

# What the approver and the shopper read where the merchant offers no way to cancel an order.
NO_UNDO_NOTICE = "no undo: this merchant offers no way to cancel orders"
# What undo does, by what the merchant offers (cancel, return): shown before anyone approves.
_UNDO_ACTIONS = {
    (True, True): (
        "before it ships, the order is cancelled and the charge refunded in full; once it has shipped, "
        "a return is filed with the merchant and the charge is refunded when the merchant receives it"
    ),
    (True, False): (
        "before it ships, the order is cancelled and the charge refunded in full; this merchant takes "
        "no returns here, so once it has shipped it cannot be undone"
    ),
    (False, True): (
        "a return is filed with the merchant and the charge is refunded when the merchant receives it; "
        "this merchant offers no cancellation"
    ),
}


class UndoRefused(Refusal):
    """Refused by the undo window."""


class UndoAccepted(BaseModel):
    """What ``POST /goals/{id}/undo`` answers: asked for (the flow undoes it), or already done."""

    model_config = ConfigDict(defer_build=True)

    goalId: str
    status: GoalStatus
    undo: Literal["requested", "done"]


def offers_cancel(plan: Plan) -> bool:
    return plan.merchant.undo == "cancel"


def offers_return(plan: Plan) -> bool:
    return plan.merchant.returns


def offers_undo(plan: Plan) -> bool:
    return offers_cancel(plan) or offers_return(plan)


def undo_action(plan: Plan) -> str:
    """What undo does with the plan's order: cancel before shipment, return after, or nothing."""
    return _UNDO_ACTIONS.get((offers_cancel(plan), offers_return(plan)), NO_UNDO_NOTICE)


def undo_deadline(plan: Plan, window_seconds: int, now: datetime) -> str | None:
    """When the undo window of the plan's order closes; None where the merchant offers no undo."""
    if not offers_undo(plan):
        return None
    return (now + timedelta(seconds=window_seconds)).isoformat(timespec="seconds")


def undo_notice(plan: Plan) -> str | None:
    """What the receipt says about undo when there is none to offer."""
    return None if offers_undo(plan) else NO_UNDO_NOTICE


# The two below serve order flows started before the undo flow existed, which still wait in their
# undo window on a parked task token; new flows never call them.
def open_undo_window(goal_id: str, task_token: str, *, ledger: GoalLedger) -> UndoWindowOpened:
    """Parks the flow's task token on the goal (server side only) until undo or the window's end."""
    goal = ledger.store.require(goal_id)
    ledger.note(
        goal_id, actor="notify", event="undo.window-opened", detail={"undoUntil": goal.undoUntil},
        undoToken=task_token,
    )  # fmt: skip
    return UndoWindowOpened(undoUntil=goal.undoUntil)


def close_undo_window(goal_id: str, *, ledger: GoalLedger) -> UndoWindowClosed:
    ledger.note(
        goal_id, actor="flow", event="undo.window-closed", status=GoalStatus.COMPLETED, undoToken=None
    )
    return UndoWindowClosed(status=GoalStatus.COMPLETED, final=True)


def request_undo(goal_id: str, *, ledger: GoalLedger, workflow: Workflow, actor: str) -> UndoAccepted:
    """Starts the goal's undo flow (execution ``<goalId>-undo``) while its window is open. Idempotent:
    one claim per goal, and the execution's name would start nothing a second time anyway.

    An order flow started before undo had a flow of its own still waits in its undo window with a
    task token parked on the goal: that flow is resumed instead, so it ends as it would have."""
    goal = ledger.store.get(goal_id)
    if goal is None:
        raise UndoRefused(404, "GOAL_NOT_FOUND", f"no goal {goal_id}")
    if goal.status in (GoalStatus.UNDONE, GoalStatus.RETURNED):
        return UndoAccepted(goalId=goal_id, status=goal.status, undo="done")
    if goal.status is GoalStatus.RETURN_REQUESTED:
        # The return is filed; its refund follows when the merchant receives the goods.
        return UndoAccepted(goalId=goal_id, status=goal.status, undo="requested")
    if isinstance(goal.plan, Plan) and not offers_undo(goal.plan):
        raise UndoRefused(409, "UNDO_UNSUPPORTED", f"{NO_UNDO_NOTICE}; the merchant's return policy applies")
    if goal.status is not GoalStatus.COMPLETED:
        raise UndoRefused(409, "NOT_UNDOABLE", f"a goal that is {goal.status.value} cannot be undone")
    if goal.undoUntil is None or utc_now() >= datetime.fromisoformat(goal.undoUntil):
        raise UndoRefused(409, "UNDO_WINDOW_CLOSED", "the undo window has closed; the order is final")
    if not ledger.store.claim_undo(goal_id, utc_now_iso()):
        return UndoAccepted(goalId=goal_id, status=goal.status, undo="requested")
    token = ledger.store.undo_token(goal_id)
    try:
        if token is None:
            plan_id = goal.plan.planId if isinstance(goal.plan, Plan) else None
            workflow.start_undo(f"{goal_id}-undo", {"goalId": goal_id, "planId": plan_id})
        else:
            workflow.succeed(token, {"undo": "requested"})
    except TaskTokenGone as exc:
        # Nothing was resumed: the claim goes, so a repeated request is refused the same way.
        ledger.store.release_undo_claim(goal_id)
        raise UndoRefused(
            409, "UNDO_WINDOW_CLOSED", "the undo window has closed; the order is final"
        ) from exc
    except Exception:
        # Nothing was started or resumed: a later request may try again.
        ledger.store.release_undo_claim(goal_id)
        raise
    ledger.note(goal_id, actor=actor, event="undo.requested", status=GoalStatus.COMPLETED)
    return UndoAccepted(goalId=goal_id, status=goal.status, undo="requested")
