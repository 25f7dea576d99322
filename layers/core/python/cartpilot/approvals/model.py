"""Approvals: a pending question to a human, decided exactly once.

The task token that resumes the order flow is stored only with the approval, server
side, looked up by approval id; it never appears in a link, a page or a log.
"""

from __future__ import annotations

import hmac
import uuid
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cartpilot.kernel.money import Money
from cartpilot.plans.verdicts import Finding, RiskTier


class ApprovalStatus(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"


class Delivery(StrEnum):
    """Whether a recorded decision has reached the flow waiting for it.

    A decision is recorded first and sent to the flow second; the two are separate calls, and the
    second can fail. ``PENDING`` is written with the decision and becomes ``DELIVERED`` once the
    flow has taken it, so a decision that was recorded and never sent is known and sent again."""

    PENDING = "PENDING"
    DELIVERED = "DELIVERED"


class DroppedStep(BaseModel):
    """An optional step the approver left out, and what it would have bought."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    stepId: str
    items: list[str] = []
    cost: Money


class Approval(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)

    approvalId: str
    goalId: str
    planId: str
    planHash: str
    tier: RiskTier
    approver: str
    total: Money
    expiresAt: int = Field(description="Epoch seconds after which the link no longer works")
    status: ApprovalStatus = ApprovalStatus.PENDING
    reasons: list[Finding] = []
    createdAt: str
    decidedAt: str | None = None
    decidedBy: str | None = None
    approvedPlanHash: str | None = Field(
        default=None,
        description="The plan approved: planHash, or the hash of the plan reduced by the approver",
    )
    dropped: list[DroppedStep] = []
    # None while pending, and for decisions recorded before delivery was tracked (they were sent).
    delivery: Delivery | None = None
    deliveredAt: str | None = None
    # Approving also needs a one-time code from the shopper (``approvals.step_up``).
    stepUp: bool = False

    @property
    def undelivered(self) -> bool:
        """A decision is recorded but the flow has not taken it yet."""
        return self.delivery is Delivery.PENDING and self.status in (
            ApprovalStatus.APPROVED,
            ApprovalStatus.REJECTED,
        )


# ``decidedBy`` of an approval closed because too many wrong one-time codes were entered
# (``approvals.step_up``); the goal's outcome tells the shopper so.
STEP_UP_LOCK = "step-up-lock"


class AlreadyDecided(RuntimeError):
    def __init__(self, approval: Approval) -> None:
        super().__init__(f"approval {approval.approvalId} is already {approval.status.value}")
        self.approval = approval


def new_approval_id() -> str:
    return f"a-{uuid.uuid4().hex}"


def confirmation_phrase(total: Money) -> str:
    """What a strong-tier approver types, e.g. ``CONFIRM BUY 2499.00 CNY``."""
    return f"CONFIRM BUY {total.format()}"


def phrase_matches(expected: str, typed: str | None) -> bool:
    """Forgiving of case and spacing (phones capitalise and double-space), strict on every digit."""
    normalised = " ".join((typed or "").split()).upper()
    return hmac.compare_digest(normalised.encode(), " ".join(expected.split()).upper().encode())


class DecisionRequest(BaseModel):
    """What the approval page's form posts: the link's parameters plus the decision."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    exp: str = Field(max_length=20)
    kid: str = Field(max_length=40)
    sig: str = Field(max_length=128)
    # send-code: decides nothing; sends the shopper a one-time code (step-up approvals only).
    decision: Literal["approve", "reject", "send-code"]
    phrase: str | None = Field(default=None, max_length=100)
    otp: str | None = Field(default=None, max_length=12)
