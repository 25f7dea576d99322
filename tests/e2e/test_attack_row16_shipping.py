"""Issue 11, row 16: the plan's shipping choice is held to what the merchant offers.

A plan is untrusted input (a model, or words it read, shaped it). Before, the validator checked only
that some merchant option had the plan's id and price: a plan claiming same-day delivery (or a window
the merchant does not offer) for its shipping option passed as low risk and was charged. Here a
planner whose output was tampered with claims such shipping; the validator refuses the plan before
anything is charged, saying why.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from cartpilot.plans.model import Plan
from cartpilot_local.iam import calling_function
from cartpilot_local.lambda_runtime import load_handler
from cartpilot_local.stack import FUNCTIONS_DIR
from tests.e2e.conftest import LOW_RISK_GOAL, Stack
from tests.e2e.test_approval_attacks import set_plan, stored_plan

NOTHING_BOUGHT = {"orders": [], "charges": [], "refunds": []}


def _same_day(shipping: dict[str, Any]) -> None:
    today = date.today().isoformat()
    shipping.update(title="Same-day courier", earliestDelivery=today, latestDelivery=today)


def _sooner_window(shipping: dict[str, Any]) -> None:
    # The merchant's own option, with a window it does not promise.
    shipping.update(earliestDelivery=date.today().isoformat(), latestDelivery=date.today().isoformat())


def _free(shipping: dict[str, Any]) -> None:
    shipping["price"] = {**shipping["price"], "amount_minor": 0}


def _tamper(stack: Stack, goal_id: str, change: Callable[[dict[str, Any]], None]) -> str:
    """Rewrites the stored plan's shipping choice, keeping its arithmetic and payment consistent."""
    document = json.loads(stored_plan(stack, goal_id)[0])
    summary = document["summary"]
    before = summary["shipping"]["price"]["amount_minor"]
    change(summary["shipping"])
    summary["total"]["amount_minor"] += summary["shipping"]["price"]["amount_minor"] - before
    for step in document["steps"]:
        if step["action"] == "payment.complete":
            step["args"]["amount"] = summary["total"]
            step["estimatedCost"] = summary["total"]
    plan = Plan.model_validate(document)
    set_plan(stack, goal_id, plan.model_dump_json(), plan.plan_hash())
    return plan.plan_hash()


def _misled_planner(stack: Stack, change: Callable[[dict[str, Any]], None]) -> Callable[[], Any]:
    """The planner as a model's output (or a prompt in a product page) could make it: its plan
    claims shipping the merchant did not offer, and the flow carries that plan's hash."""
    load = functools.partial(load_handler, FUNCTIONS_DIR / "planner" / "app.py")

    def load_misled() -> Callable[[dict[str, Any], Any], Any]:
        handler = load()

        def misled(event: dict[str, Any], context: Any) -> Any:
            reference: dict[str, Any] = handler(event, context)
            # The rewrite stands for what the model's output made the planner store; it is written
            # as the test, not under the planner's role (a plan is a write-once part the planner puts
            # only through its own code).
            outside = calling_function.set(None)
            try:
                return {**reference, "planHash": _tamper(stack, event["goalId"], change)}
            finally:
                calling_function.reset(outside)

        return misled

    return load_misled


@pytest.mark.parametrize("change", [_same_day, _sooner_window, _free], ids=["same-day", "window", "free"])
def test_a_plan_claiming_shipping_the_merchant_does_not_offer_is_denied(
    stack: Stack, change: Callable[[dict[str, Any]], None]
):
    stack.local.runtime.register("planner", _misled_planner(stack, change))
    try:
        goal_id = stack.api.submit("shopper-0501", LOW_RISK_GOAL).json()["goalId"]
        goal = stack.api.wait_for(goal_id)
    finally:
        stack.local.runtime.register(
            "planner", functools.partial(load_handler, FUNCTIONS_DIR / "planner" / "app.py")
        )

    assert goal["status"] == "DENIED"
    assert stack.ledger() == NOTHING_BOUGHT
    records = stack.api.audit(goal_id)["records"]
    (validated,) = [record for record in records if record["event"] == "plan.validated"]
    reasons = [r for r in validated["detail"]["reasons"] if r["policyId"] == "merchant.shipping"]
    assert reasons and all(reason["tier"] == "DENY" for reason in reasons)
    assert "step.executed" not in stack.events(goal_id)
    assert "limits.reserved" not in stack.events(goal_id)
