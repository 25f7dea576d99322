"""What a client sees of a goal, and of its audit trail."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from cartpilot.audit.chain import AuditAnchor, AuditRecord, ChainVerification, verify_chain
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.model import (
    ApprovalSummary,
    GoalRecord,
    GoalStatus,
    MalformedPlan,
    Receipt,
    StepResult,
)
from cartpilot.goals.reasons import ReasonCode, ShopperReason, shopper_reason
from cartpilot.kernel.money import Money
from cartpilot.orders.tracking import Tracking
from cartpilot.plans.costs import PlanCostSummary, plan_cost_summary
from cartpilot.plans.model import Plan
from cartpilot.plans.verdicts import Verdict
from cartpilot.rollout.model import PlannedOnly

if TYPE_CHECKING:
    # Verifying signatures needs cryptography: loaded by the audit routes that verify, not by views.
    from cartpilot.audit.public_keys import PlanSignatureVerifier


class GoalView(BaseModel):
    """``GET /goals/{id}``: the goal without what only the backend may hold (task tokens, audit head)."""

    model_config = ConfigDict(defer_build=True)

    goalId: str
    userId: str
    status: GoalStatus
    goal: str
    plan: Plan | MalformedPlan | None
    planHash: str | None
    verdict: Verdict | None
    approval: ApprovalSummary | None
    steps: list[StepResult]
    receipt: Receipt | None
    undoUntil: str | None
    tracking: Tracking | None = Field(
        default=None, description="Where the shipment is, from the merchant's order events (or polling)"
    )
    continueUrl: str | None = Field(
        description="HANDED_OFF: where the shopper finishes the checkout on the merchant's site"
    )
    failure: str | None = Field(description="The words of `reason`, for clients that show one line")
    reason: ShopperReason | None = Field(
        description="Why the goal did not complete: a code from a closed set, with its words for the shopper"
    )
    createdAt: str
    updatedAt: str
    scheduleId: str | None = Field(
        default=None, description="The schedule this goal is an occurrence of (GET /schedules/{id})"
    )
    returnId: str | None = Field(
        default=None, description="RETURN_REQUESTED/RETURNED: the merchant's id of the return undo filed"
    )
    refund: Money | None = Field(default=None, description="RETURNED: what the merchant refunded")
    planSummary: PlanCostSummary | None = Field(
        default=None, description="The order's total beside the planner's model cost (none without a plan)"
    )
    plannedOnly: PlannedOnly | None = Field(
        default=None,
        description="PLANNED_ONLY: why the brand's rollout held the plan back, and the route and tier it earned",
    )


class AuditView(BaseModel):
    model_config = ConfigDict(defer_build=True)

    goalId: str
    records: list[AuditRecord]
    anchors: list[AuditAnchor] | None = Field(
        description="what the write-once store holds for each place of the chain, read after the records"
    )
    verification: ChainVerification


def goal_view(goal: GoalRecord) -> GoalView:
    reason = reason_of(goal)
    derived = {"failure", "reason", "planSummary"}
    fields = {name: getattr(goal, name) for name in GoalView.model_fields if name not in derived}
    costs = plan_cost_summary(goal.plan) if isinstance(goal.plan, Plan) else None
    return GoalView(**fields, reason=reason, failure=reason.message if reason else None, planSummary=costs)


def reason_of(goal: GoalRecord) -> ShopperReason | None:
    """The goal's reason from the closed set. A failure recorded without a code (before codes
    existed) is shown by the generic reason, never as the words it was stored with."""
    if goal.reasonCode is not None:
        return shopper_reason(goal.reasonCode)
    if goal.failure:
        return shopper_reason(ReasonCode.INTERNAL_ERROR)
    return None


# Seconds between re-reads of a chain that is still being appended to (about 1.5 s in all).
SETTLE_PAUSES = (0.05, 0.1, 0.2, 0.4, 0.75)


def audit_view(
    goal: GoalRecord,
    ledger: GoalLedger,
    verifier: PlanSignatureVerifier | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> AuditView:
    """The records in order, their anchors, and the server's verification: chain, head, anchors and
    (given the published keys) plan signatures. Clients can check all of it themselves
    (``cartpilot audit --verify``) with the published keys."""
    records = ledger.audit.records(goal.goalId)
    # Anchored before they are inserted, so every record read here already has its anchor.
    anchors = ledger.audit.anchors(goal.goalId)
    # An append between the two reads leaves an anchor past the last record for the milliseconds
    # its writer takes to insert it: read the records again before calling that a removal.
    for pause in SETTLE_PAUSES:
        if not anchors or max(a.seq for a in anchors) <= max((r.seq for r in records), default=0):
            break
        sleep(pause)
        # Records, then anchors again: records appended meanwhile come with theirs.
        records = ledger.audit.records(goal.goalId)
        anchors = ledger.audit.anchors(goal.goalId)
    verification = verify_chain(records, expected_head=goal.auditHead, verifier=verifier, anchors=anchors)
    return AuditView(goalId=goal.goalId, records=records, anchors=anchors, verification=verification)
