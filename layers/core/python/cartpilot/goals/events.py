"""The shapes the state machine passes to functions, and what they hand back to it
(see statemachines/order_flow.asl.json: its ResultSelectors pick fields of these results)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cartpilot.goals.model import GoalStatus, PriceCheck


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)


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
    model_config = ConfigDict(extra="forbid", defer_build=True)

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
    # "next": answer ``{"outputs", "next"}`` (the flow's step cursor); "outputs": the outputs map
    # alone, the answer executions started under the earlier definition still expect.
    answer: Literal["outputs", "next"] = "outputs"


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


# ---- What functions hand back to the flow ------------------------------------------------


class PlanReference(BaseModel):
    """PlanOrder's answer: a small reference; the plan itself stays on the goal."""

    model_config = ConfigDict(defer_build=True)

    planId: str
    planHash: str
    steps: list[StepRef]
    # The step the flow runs first once the plan may run (``execution.cursor.first_step``).
    next: StepRef


class ApprovalRequested(BaseModel):
    model_config = ConfigDict(defer_build=True)

    approvalId: str


class CompensationResult(BaseModel):
    model_config = ConfigDict(defer_build=True)

    status: GoalStatus
    undone: list[str]
    left: list[str] = Field(default_factory=list)


class ReceiptSent(BaseModel):
    """SendReceipt's answer, the step loop's last; ``undoUntil`` is null where the merchant offers no
    way to cancel an order (no undo window)."""

    model_config = ConfigDict(defer_build=True)

    orderId: str
    undoUntil: str | None


class OutcomeRecorded(BaseModel):
    model_config = ConfigDict(defer_build=True)

    status: GoalStatus


class UndoWindowOpened(BaseModel):
    model_config = ConfigDict(defer_build=True)

    undoUntil: str | None


class UndoWindowClosed(BaseModel):
    model_config = ConfigDict(defer_build=True)

    status: GoalStatus
    final: bool
