"""The flow's step cursor: each connector names the step after its own, from the plan it loaded,
so the state machine routes on the answer and keeps no counter of its own."""

from __future__ import annotations

from typing import Any

import pytest

from cartpilot.brands.config import BrandConfig
from cartpilot.brands.users import UserDirectory
from cartpilot.commerce.errors import PlanIntegrityError
from cartpilot.execution.cursor import CONFIRM_STEP, first_step, step_after
from cartpilot.goals.events import StepRef
from cartpilot.planning.service import plan_goal
from cartpilot.plans.model import Plan
from tests.fakes.plan_signing import LocalPlanSigner
from tests.unit.stages import FixedPlanner, OrderFlow, received_goal_ledger


def test_the_cursor_walks_the_mutating_steps_then_confirms(seed_plan: Plan):
    steps = seed_plan.execution_steps()
    assert len(steps) >= 2
    assert first_step(seed_plan) == steps[0]
    walked = [first_step(seed_plan)]
    while walked[-1] != CONFIRM_STEP:
        walked.append(step_after(seed_plan, walked[-1]["id"]))
    assert walked == [*steps, CONFIRM_STEP]


def test_a_plan_with_nothing_to_run_goes_straight_to_confirmation(seed_plan: Plan):
    empty = seed_plan.model_copy(update={"steps": []})
    assert first_step(empty) == CONFIRM_STEP


def test_a_step_the_plan_does_not_run_has_no_successor(seed_plan: Plan):
    with pytest.raises(PlanIntegrityError):
        step_after(seed_plan, "s-not-in-the-plan")
    with pytest.raises(PlanIntegrityError):
        step_after(seed_plan, CONFIRM_STEP["id"])


def test_the_confirm_marker_cannot_be_altered_through_an_answer(seed_plan: Plan):
    last = seed_plan.execution_steps()[-1]["id"]
    step_after(seed_plan, last)["id"] = "tampered"
    assert step_after(seed_plan, last) == {"id": "confirm", "action": "orders.confirm"}


def test_connectors_run_the_whole_plan_by_following_their_own_answers(flow: OrderFlow):
    executor = flow.executor()
    outputs: dict[str, Any] = {}
    step = first_step(flow.plan)
    ran: list[str] = []
    while step != CONFIRM_STEP:
        answer = executor.advance(flow.event(step["id"], outputs))
        assert set(answer) == {"outputs", "next"}
        ran.append(step["id"])
        outputs, step = answer["outputs"], answer["next"]

    assert ran == [s["id"] for s in flow.plan.execution_steps()]
    assert sorted(outputs) == sorted(ran)
    assert len(flow.shop.orders) == 1 and len(flow.shop.charges) == 1


def test_a_redelivered_step_answers_the_same_next_step_and_changes_nothing(flow: OrderFlow):
    executor = flow.executor()
    first = executor.advance(flow.event("s1"))
    calls = list(flow.shop.calls)

    again = executor.advance(flow.event("s1", first["outputs"]))

    assert again == first and flow.shop.calls == calls
    assert first["next"] == flow.plan.execution_steps()[1]


def test_run_keeps_answering_the_outputs_alone(flow: OrderFlow):
    """Executions started under the earlier definition expect the outputs map as the whole answer."""
    outputs = flow.executor().run(flow.event("s1"))
    assert set(outputs) == {"s1"} and outputs["s1"]["checkoutId"]


def test_the_planners_answer_opens_the_loop_at_the_first_step(
    seed_plan: Plan, brand: BrandConfig, users: UserDirectory
):
    ledger = received_goal_ledger(seed_plan, brand)
    reference = plan_goal(
        seed_plan.goalId, ledger=ledger, planner=FixedPlanner(seed_plan), users=users, brand=brand,
        signer=LocalPlanSigner(),
    )  # fmt: skip
    assert reference.next == StepRef.model_validate(first_step(seed_plan))
    assert reference.model_dump(mode="json")["next"] == seed_plan.execution_steps()[0]
