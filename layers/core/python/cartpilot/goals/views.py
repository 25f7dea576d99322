"""What a client sees of a goal, and of its audit trail."""

from __future__ import annotations

from pydantic import BaseModel, Field

from cartpilot.audit.chain import AuditRecord, ChainVerification, verify_chain
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.model import (
    ApprovalSummary,
    GoalRecord,
    GoalStatus,
    MalformedPlan,
    Receipt,
    StepResult,
)
from cartpilot.kernel.keyring import KeyRing
from cartpilot.plans.model import Plan
from cartpilot.plans.verdicts import Verdict


class GoalView(BaseModel):
    """``GET /goals/{id}``: the goal without what only the backend may hold (task tokens, audit head)."""

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
    continueUrl: str | None = Field(
        description="HANDED_OFF: where the shopper finishes the checkout on the merchant's site"
    )
    failure: str | None
    createdAt: str
    updatedAt: str


class AuditView(BaseModel):
    goalId: str
    records: list[AuditRecord]
    verification: ChainVerification


def goal_view(goal: GoalRecord) -> GoalView:
    return GoalView(
        **{name: getattr(goal, name) for name in GoalView.model_fields},
    )


def audit_view(goal: GoalRecord, ledger: GoalLedger, keyring: KeyRing | None = None) -> AuditView:
    """The records in order and the verification: chain, head, and (given the key ring) plan signatures."""
    records = ledger.audit.records(goal.goalId)
    verification = verify_chain(records, expected_head=goal.auditHead, keyring=keyring)
    return AuditView(goalId=goal.goalId, records=records, verification=verification)
