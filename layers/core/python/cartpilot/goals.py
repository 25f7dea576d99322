"""Goals: what a shopper asked for, and where it stands."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cartpilot.commerce import Recipient
from cartpilot.money import Money


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


# Statuses a goal never leaves; COMPLETED can still become UNDONE inside the undo window.
FINAL_STATUSES = frozenset(
    {
        GoalStatus.DENIED,
        GoalStatus.REJECTED,
        GoalStatus.EXPIRED,
        GoalStatus.COMPENSATED,
        GoalStatus.UNDONE,
        GoalStatus.FAILED,
        GoalStatus.NEEDS_ATTENTION,
    }
)
SETTLED_STATUSES = FINAL_STATUSES | {GoalStatus.COMPLETED}


class GoalContext(BaseModel):
    """Optional hints from the client; anything missing comes from the user's saved profile."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recipient: Recipient | None = None
    paymentMethodId: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    budget: Money | None = None
    deliverBy: date | None = None


class GoalRequest(BaseModel):
    """The body of ``POST /goals``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    userId: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    goal: str = Field(min_length=3, max_length=2000)
    context: GoalContext = GoalContext()

    def fingerprint(self) -> str:
        """A stable hash of the request body, to tell a replay from a different request."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def goal_id_for(brand: str, user_id: str, idempotency_key: str) -> str:
    """Derives the goal id from the client's key, so a replay can never mint a second goal."""
    digest = hashlib.sha256(f"{brand}\x1f{user_id}\x1f{idempotency_key}".encode()).hexdigest()
    return f"g-{digest[:26]}"


class StepResult(BaseModel):
    """What one executed step did, as shown in ``GET /goals/{id}``."""

    model_config = ConfigDict(extra="forbid")

    stepId: str
    action: str
    status: str
    summary: dict[str, Any] = {}
    at: str


class Receipt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    orderId: str
    checkoutId: str
    total: Money
    items: list[dict[str, Any]]
    recipient: str
    deliveryEstimate: str | None = None
    merchantStatus: str
