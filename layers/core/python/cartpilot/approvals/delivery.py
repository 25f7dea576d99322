"""Getting a recorded decision to the flow that waits for it.

A decision is recorded first (a conditional write, so it happens once) and sent to the flow
second (``SendTaskSuccess``/``SendTaskFailure`` with the task token). The second call can fail
after the first succeeded, so the decision is recorded with ``delivery = PENDING`` and only a
send the flow took marks it ``DELIVERED`` (a conditional write again). An undelivered decision
is sent again by:

- the desk itself, a few times with backoff, right after recording it;
- the approver: opening the link again, or posting again, sends it (the page says the
  decision has not reached the order yet, and answers 202 until it has);
- the flow's approval timeout, the sweeper of last resort: when the wait times out the token
  is gone and nothing can be sent any more, so the outcome recorder closes the approval
  (``close_on_expiry``): the link and the goal say it expired before it reached the order.

Step Functions answers a token that was already used exactly as one that timed out, so
"the token is gone" is read together with the goal: only the flow taking this decision moves
the goal on from waiting for it, and only the flow's timeout path ends it EXPIRED. The request
that recorded the decision and hears "token gone" on its first send knows nobody sent it
before; any other sender, until the goal says which, leaves the decision undelivered and the
next look settles it; sending twice meanwhile is harmless. (A flow stopped by an operator leaves the goal waiting: its decision
stays undelivered, and says so, until someone ends the goal.)
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from enum import StrEnum

from cartpilot.approvals.model import Approval, ApprovalStatus
from cartpilot.approvals.ports import ApprovalStore
from cartpilot.execution.cursor import first_step
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.model import ApprovalSummary, GoalRecord, GoalStatus
from cartpilot.goals.ports import GoalStore, TaskTokenGone, Workflow, WorkflowUnavailable
from cartpilot.kernel.clock import utc_now_iso
from cartpilot.kernel.observability import logger
from cartpilot.plans.model import Plan

# Attempts inside one request, on top of botocore's own retries of each call: an approver waits
# on the page, and API Gateway gives a request 29 seconds.
DELIVERY_ATTEMPTS = 3
BACKOFF_SECONDS = 0.2
BACKOFF_CAP_SECONDS = 1.0

TOO_LATE = "the approval expired before it reached the order"


class Delivered(StrEnum):
    DELIVERED = "DELIVERED"
    UNDELIVERED = "UNDELIVERED"  # the engine did not take it; sent again on the next try
    # The flow stopped waiting before it got the decision (a state, not a secret).
    TOKEN_GONE = "TOKEN_GONE"  # noqa: S105


class DecisionCourier:
    def __init__(
        self,
        *,
        approvals: ApprovalStore,
        workflow: Workflow,
        goals: GoalStore,
        now_iso: Callable[[], str] = utc_now_iso,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = DELIVERY_ATTEMPTS,
    ) -> None:
        self._approvals = approvals
        self._workflow = workflow
        self._goals = goals
        self._now_iso = now_iso
        self._sleep = sleep
        self._attempts = attempts

    def deliver(self, decided: Approval, *, fresh: bool = False) -> Delivered:
        """Sends the recorded decision to the flow until it takes it, the attempts run out, or the
        token is gone. Sending twice is harmless: the flow takes one result per token.

        ``fresh``: this request has just recorded the decision, so nobody sent it before; a
        first send that hears "token gone" means the flow stopped waiting."""
        token = self._approvals.task_token(decided.approvalId)
        send = self._sender(decided)
        unambiguous = fresh
        for attempt in range(self._attempts):
            if attempt:
                # Full jitter: racing senders (a re-opened page, a repeated POST) spread out.
                self._sleep(random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_SECONDS * 2**attempt)))
            try:
                send(token)
            except TaskTokenGone:
                return self._after_token_gone(decided, unambiguous=unambiguous)
            except WorkflowUnavailable as exc:
                # A 5xx or a dropped connection may still have reached the engine.
                unambiguous = False
                logger.warning(
                    "approval decision not delivered",
                    extra={"approvalId": decided.approvalId, "attempt": attempt + 1, "reason": str(exc)},
                )
                continue
            self._approvals.mark_delivered(decided.approvalId, delivered_at=self._now_iso())
            return Delivered.DELIVERED
        return Delivered.UNDELIVERED

    def _sender(self, decided: Approval) -> Callable[[str], None]:
        if decided.status is ApprovalStatus.REJECTED:
            return lambda token: self._workflow.fail(
                token, error="ApprovalRejected", cause="The approver said no."
            )
        goal = self._goals.require(decided.goalId)
        approved_hash = decided.approvedPlanHash or decided.planHash
        # The goal holds the approved plan (a reduced one replaces the shown one before it is
        # sent); the flow resumes with exactly that plan or not at all.
        if isinstance(goal.plan, Plan) and goal.planHash == approved_hash == goal.plan.plan_hash():
            plan = goal.plan
            output = {
                "planId": plan.planId,
                "planHash": approved_hash,
                "steps": plan.execution_steps(),
                "next": first_step(plan),
            }
            return lambda token: self._workflow.succeed(token, output)
        return lambda token: self._workflow.fail(
            token, error="PlanChanged", cause="The plan changed while it was being approved."
        )

    def _after_token_gone(self, decided: Approval, *, unambiguous: bool) -> Delivered:
        current = self._approvals.get(decided.approvalId)
        if current is not None and not current.undelivered and current.status is decided.status:
            return Delivered.DELIVERED  # a concurrent sender got it there first
        goal = self._goals.require(decided.goalId)
        if _flow_took_it(goal, decided):
            self._approvals.mark_delivered(decided.approvalId, delivered_at=self._now_iso())
            return Delivered.DELIVERED
        if goal.status is GoalStatus.EXPIRED or unambiguous:
            return Delivered.TOKEN_GONE
        # Still waiting, as far as the goal says: either a send whose answer was lost (or a
        # concurrent sender) reached the flow and the goal has not moved yet, or the wait timed
        # out and the flow has not recorded it yet. The next look (or the timeout) settles it.
        return Delivered.UNDELIVERED


def _flow_took_it(goal: GoalRecord, decided: Approval) -> bool:
    """Only the flow resuming on this decision moves the goal on from waiting for it (an expiry
    ends it EXPIRED; a new approval, after a price moved, is another approval)."""
    waiting_for_it = goal.approval is not None and goal.approval.approvalId == decided.approvalId
    return not waiting_for_it or goal.status not in (GoalStatus.AWAITING_APPROVAL, GoalStatus.EXPIRED)


def goal_approval_summary(approval: Approval) -> ApprovalSummary:
    return ApprovalSummary(
        approvalId=approval.approvalId,
        status=approval.status.value,
        tier=approval.tier,
        dropped=[step.stepId for step in approval.dropped],
    )


def close_on_expiry(goal: GoalRecord, *, approvals: ApprovalStore, ledger: GoalLedger) -> None:
    """The flow's approval wait timed out: its link is dead. A decision recorded but never
    delivered did not reach the order; the goal and the audit say so instead of "approved"."""
    if goal.approval is None:
        return
    approval = approvals.get(goal.approval.approvalId)
    if approval is None or not approvals.mark_expired(approval.approvalId, decided_at=utc_now_iso()):
        return
    if not approval.undelivered:
        return
    expired = approval.model_copy(update={"status": ApprovalStatus.EXPIRED})
    ledger.store.update(goal.goalId, updated_at=utc_now_iso(), approval=goal_approval_summary(expired))
    ledger.note(
        goal.goalId,
        actor="flow",
        event="approval.too-late",
        plan_hash=approval.planHash,
        detail={"approvalId": approval.approvalId, "decision": approval.status.value, "reason": TOO_LATE},
    )
