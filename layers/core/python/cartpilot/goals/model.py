"""Goals: what a shopper asked for, and where it stands."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import date
from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from cartpilot.commerce.errors import PlanIntegrityError
from cartpilot.commerce.ports import ProductVariant, Recipient, ShippingOption
from cartpilot.goals.reasons import ReasonCode
from cartpilot.kernel.money import Money
from cartpilot.orders.tracking import Tracking
from cartpilot.plans.model import Plan, ShippingChoice
from cartpilot.plans.verdicts import RiskTier, Verdict
from cartpilot.rollout.model import PlannedOnly


class GoalStatus(StrEnum):
    RECEIVED = "RECEIVED"
    PLANNING = "PLANNING"
    VALIDATING = "VALIDATING"
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    EXECUTING = "EXECUTING"
    COMPLETED = "COMPLETED"
    DENIED = "DENIED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    COMPENSATED = "COMPENSATED"
    UNDONE = "UNDONE"
    FAILED = "FAILED"
    NEEDS_ATTENTION = "NEEDS_ATTENTION"
    # The merchant asked for the shopper (checkout ``requires_escalation``): its continue URL is on the goal.
    HANDED_OFF = "HANDED_OFF"
    # Undo after shipment: a return is filed with the merchant; RETURNED once it confirms the refund.
    RETURN_REQUESTED = "RETURN_REQUESTED"
    RETURNED = "RETURNED"
    # The brand's rollout stage let the plan be checked but nothing mutating run (read-only,
    # pilot exclusion, kill switch): the goal records what would have happened.
    PLANNED_ONLY = "PLANNED_ONLY"


# A trillion major units: above any order a shopper's assistant places, far below storage limits.
MAX_BUDGET_MINOR = 10**14


class GoalContext(BaseModel):
    """Optional hints from the client; anything missing comes from the user's saved profile."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    recipient: Recipient | None = None
    paymentMethodId: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    budget: Money | None = None
    deliverBy: date | None = None
    merchantId: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9\-]{1,60}$",
        description="One of the brand's merchants (brand.yaml `merchants`); default: the first",
    )

    @field_validator("budget")
    @classmethod
    def _plausible_budget(cls, budget: Money | None) -> Money | None:
        # A budget past any real order (or negative) is a mistake or a probe; refusing it here
        # keeps it out of storage (DynamoDB numbers stop at 38 digits) and out of the planner.
        if budget is not None and not 0 < budget.amount_minor <= MAX_BUDGET_MINOR:
            raise ValueError(f"the budget must be above 0 and at most {MAX_BUDGET_MINOR} minor units")
        return budget


class GoalRequest(BaseModel):
    """The body of ``POST /goals``."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    userId: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    goal: str = Field(min_length=3, max_length=2000)
    context: GoalContext = GoalContext()

    def fingerprint(self) -> str:
        """A stable hash of the request body, to tell a replay from a different request."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def new_goal_id() -> str:
    """A random goal id (104 bits): nothing about the goal, its user or its key can be read from it or
    used to guess it. Replays find their goal through the submission claim (``goals.intake``)."""
    return f"g-{secrets.token_hex(13)}"


def submission_key(brand: str, client_id: str, idempotency_key: str) -> str:
    """What one submission is known by: the client's Idempotency-Key, in that client's own space."""
    digest = hashlib.sha256(f"{brand}\x1f{client_id}\x1f{idempotency_key}".encode()).hexdigest()
    return f"{client_id}#{digest}"


class StepResult(BaseModel):
    """What one executed step did, as shown in ``GET /goals/{id}``."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    stepId: str
    action: str
    status: str
    summary: dict[str, Any] = {}
    at: str


class ReceiptLine(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    title: str
    quantity: int
    unitPrice: Money


class Receipt(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    orderId: str
    checkoutId: str
    total: Money
    items: list[ReceiptLine]
    recipient: str
    deliveryEstimate: str | None = None
    merchantStatus: str


def delivery_estimate(shipping: ShippingChoice) -> str | None:
    """The window the merchant promised, for people; None when it promised none."""
    earliest, latest = shipping.earliestDelivery, shipping.latestDelivery
    if latest is None:
        return None if earliest is None else f"from {earliest.isoformat()}, no latest date promised"
    if earliest is None or earliest == latest:
        return f"by {latest.isoformat()}"
    return f"{earliest.isoformat()} to {latest.isoformat()}"


class GoalAccepted(BaseModel):
    """What ``POST /goals`` answers."""

    model_config = ConfigDict(defer_build=True)

    goalId: str
    status: str
    links: dict[str, str]


class PriceCheck(BaseModel):
    """What the merchant charged for the plan's items when the catalog function looked.

    With ``sessionChecked`` the prices are the merchant's checkout's (a pricing session), and
    ``shippingOptions`` are the delivery options that session offers for the plan's lines and
    recipient (the validator holds the plan's shipping choice to them: option, price and window);
    ``shippingOffered`` is what snapshots taken before the options were kept say instead.
    ``refusal`` holds the merchant's words when the checkout would not take the plan's lines.
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)

    planId: str
    checkedAt: str
    items: list[ProductVariant] = []
    sessionChecked: bool = False
    refusal: str | None = Field(default=None, max_length=1000)
    shippingOffered: bool | None = None
    shippingOptions: list[ShippingOption] | None = None


class ApprovalSummary(BaseModel):
    """The goal's view of its pending or decided approval (the approval itself lives apart)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    approvalId: str
    status: str
    tier: RiskTier
    dropped: list[str] = []
    # Who decided: the shopper's user id, or ``staff:<id>`` for a staff member.
    decidedBy: str | None = None


class MalformedPlan(BaseModel):
    """A stored plan document that no longer fits the plan schema (edited in storage, or written
    by another release). Kept as it is, so validation can deny it by name and nothing can run it."""

    model_config = ConfigDict(defer_build=True)

    document: dict[str, Any]

    @model_serializer
    def _as_stored(self) -> dict[str, Any]:
        return self.document

    def schema_error(self) -> ValidationError:
        try:
            Plan.model_validate(self.document)
        except ValidationError as exc:
            return exc
        raise AssertionError("a malformed plan document validated")  # pragma: no cover


class GoalRecord(BaseModel):
    """A goal as stored: read and validated once, where storage hands it over."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    goalId: str
    userId: str
    # The API client that submitted it: the only one that may read, undo or audit it.
    clientId: str | None = None
    brand: str
    goal: str
    context: GoalContext
    status: GoalStatus
    requestHash: str
    createdAt: str
    updatedAt: str
    executionArn: str | None = None
    plan: Plan | MalformedPlan | None = None
    planHash: str | None = None
    approvedPlanHash: str | None = None
    verdict: Verdict | None = None
    approval: ApprovalSummary | None = None
    priceCheck: PriceCheck | None = None
    steps: list[StepResult] = []
    receipt: Receipt | None = None
    receiptSentAt: str | None = None
    undoUntil: str | None = None
    # Where the shipment is, from the merchant's order events (orders/tracking.py).
    tracking: Tracking | None = None
    # Undo after shipment (orders/returns.py): the merchant's return id, then what it refunded.
    returnId: str | None = None
    refund: Money | None = None
    # Where the shopper finishes a checkout the merchant handed over (HANDED_OFF).
    continueUrl: str | None = None
    # Why the goal did not complete, for the shopper: a code from the closed set and its words
    # (goals/reasons.py). The details stay in the audit trail.
    failure: str | None = None
    reasonCode: ReasonCode | None = None
    auditHead: str | None = None
    auditSeq: int | None = None
    # The schedule this goal is an occurrence of (schedules/firing.py); its mandate bounds the plan.
    scheduleId: str | None = None
    # Held back by the brand's rollout (PLANNED_ONLY): why, and what the checked plan would have done.
    plannedOnly: PlannedOnly | None = None

    @field_validator("plan", mode="wrap")
    @classmethod
    def _keep_malformed_plan(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if isinstance(value, dict) and "document" not in value:
            try:
                return Plan.model_validate(value)
            except ValidationError:
                return MalformedPlan(document=value)
        return handler(value)

    def current_plan(self) -> Plan:
        """The goal's plan, or PlanIntegrityError when there is none that fits the schema."""
        if self.plan is None:
            raise PlanIntegrityError("the goal has no plan")
        if isinstance(self.plan, MalformedPlan):
            raise PlanIntegrityError("the goal's stored plan does not fit the plan schema")
        return self.plan
