"""Where the order flow goes after a step: the state machine's loop reads it, never computes it.

Each mutating connector answers with the outputs so far and the plan's next execution step;
after the last one the answer is ``CONFIRM_STEP``, which the flow routes to ``ConfirmOrder``.
The planner and the approver's answer open the loop with the plan's first step the same way.
The answer is never empty (a JSON null would leave the flow's Choice nothing to read).
"""

from __future__ import annotations

from typing import Any

from cartpilot.commerce.errors import PlanIntegrityError
from cartpilot.plans.model import Plan

CONFIRM_STEP: dict[str, str] = {"id": "confirm", "action": "orders.confirm"}
"""The step after the last mutating one: ConfirmOrder reads the order back."""


def first_step(plan: Plan) -> dict[str, str]:
    """The step the flow runs first once the plan may run (the confirmation when none mutates)."""
    steps = plan.execution_steps()
    return steps[0] if steps else dict(CONFIRM_STEP)


def step_after(plan: Plan, step_id: str) -> dict[str, str]:
    """The execution step that follows ``step_id`` in ``plan``, or the confirmation after the last."""
    steps = plan.execution_steps()
    for index, step in enumerate(steps):
        if step["id"] == step_id:
            return steps[index + 1] if index + 1 < len(steps) else dict(CONFIRM_STEP)
    raise PlanIntegrityError(f"step {step_id} is not one of the plan's execution steps")


def advanced(plan: Plan, step_id: str, outputs: dict[str, Any]) -> dict[str, Any]:
    """A connector's answer to the flow: the outputs so far and the step to run next."""
    return {"outputs": outputs, "next": step_after(plan, step_id)}
