"""The shapes the state machine passes to functions (see statemachines/order_flow.asl.json)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cartpilot.goals.model import PriceCheck


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore")


class GoalRef(_Event):
    goalId: str


class PlanRef(_Event):
    goalId: str
    planId: str
    planHash: str


class ValidationEvent(PlanRef):
    """CheckPolicies gets the plan reference and the catalog's price snapshot."""

    priceCheck: PriceCheck | None = None


class StepRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    action: str


class ConnectorEvent(_Event):
    """A connector step gets the goal, the plan reference, the step and the outputs so far."""

    goalId: str
    planId: str
    planHash: str
    step: StepRef
    outputs: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)


class ApprovalRequestEvent(_Event):
    goalId: str
    planId: str
    planHash: str
    taskToken: str


class OutcomeEvent(_Event):
    goalId: str
    kind: str
    taskToken: str | None = None
    status: str | None = None
    outputs: dict[str, Any] = Field(default_factory=dict)
    error: dict[str, Any] | None = None


class CompensationEvent(_Event):
    goalId: str
    planId: str | None = None
    outputs: dict[str, Any] = Field(default_factory=dict)
    error: dict[str, Any] | None = None
    finalStatus: str = "COMPENSATED"
    attempt: int = 0
    maxAttempts: int = 1
