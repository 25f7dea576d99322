"""The order flow's paths on Step Functions' own engine (moto's ASL interpreter, as the local stack
runs it), with scripted functions: which states a goal passes and which functions are asked.

Only the flow is under test here; the functions' behaviour has its own tests. A scripted function
answers as the real one does on the path at hand, and raises the real error classes, whose names are
the Lambda error types the definition's Retry and Catch match.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cartpilot.commerce.errors import MerchantEscalation
from cartpilot.goals.handoff import HandOffNotRecorded
from cartpilot_local.lambda_runtime import InProcessLambdaRuntime
from cartpilot_local.stack import FUNCTIONS, substitute_definition
from infra.settings import PROJECT_ROOT

ASL_FILE = PROJECT_ROOT / "statemachines" / "order_flow.asl.json"
REGION = "us-east-1"
STEPS = [
    {"id": "s1", "action": "checkout.create"},
    {"id": "s2", "action": "fulfillment.select"},
    {"id": "s3", "action": "payment.complete"},
]
Handler = Callable[[dict[str, Any]], Any]


@dataclass
class ScriptedFunctions:
    """Each function's answer on the path under test; every invocation is kept."""

    answers: dict[str, Handler] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def handler(self, name: str) -> Callable[[dict[str, Any], Any], Any]:
        def run(event: dict[str, Any], context: Any) -> Any:
            self.calls.append((name, event))
            answer = self.answers.get(name)
            if answer is None:
                raise AssertionError(f"the flow was not expected to call {name}")
            return answer(event)

        return run

    def called(self, name: str) -> list[dict[str, Any]]:
        return [event for function, event in self.calls if function == name]


CONFIRM = {"id": "confirm", "action": "orders.confirm"}


def _answer(event: dict[str, Any], output: dict[str, Any]) -> dict[str, Any]:
    """A connector's answer: the outputs so far plus its own, and the plan's next step."""
    assert event["answer"] == "next"
    index = [step["id"] for step in STEPS].index(event["step"]["id"])
    following = STEPS[index + 1] if index + 1 < len(STEPS) else CONFIRM
    return {"outputs": {**event["outputs"], event["step"]["id"]: output}, "next": following}


def _outputs_so_far(event: dict[str, Any]) -> dict[str, Any]:
    return _answer(event, {"checkoutId": "cs-1", "status": "incomplete"})


def _notify(undo_until: str | None) -> Handler:
    def answer(event: dict[str, Any]) -> dict[str, Any]:
        if event["kind"] == "receipt":
            return {"orderId": "ord-1", "undoUntil": undo_until}
        if event["kind"] == "undo_window":
            return {"undoUntil": undo_until}  # the token is parked; nobody asks to undo
        if event["kind"] == "undo_closed":
            return {"status": "COMPLETED", "final": True}
        if event["kind"] == "handed_off":
            return {"status": "HANDED_OFF", "continueUrl": "https://shop.example/checkout-sessions/cs-1"}
        return {"status": event.get("status")}

    return answer


def happy_path(functions: ScriptedFunctions, *, undo_until: str | None) -> None:
    functions.answers.update(
        {
            "planner": lambda event: {
                "planId": "p-1",
                "planHash": "sha256:1",
                "steps": STEPS,
                "next": STEPS[0],
            },
            "catalog": lambda event: {
                "planId": "p-1",
                "checkedAt": "2026-11-25T08:00:00Z",
                "items": [],
                "sessionChecked": True,
                "refusal": None,
                "shippingOffered": None,
                "shippingOptions": [],
            },
            "validator": lambda event: {"route": "auto", "tier": "AUTO", "planHash": "sha256:1"},
            "checkout": _outputs_so_far,
            "fulfillment": _outputs_so_far,
            "payment": lambda event: _answer(
                event, {"checkoutId": "cs-1", "orderId": "ord-1", "status": "confirmed"}
            ),
            "orders": lambda event: {**event["outputs"], "confirm": {"orderId": "ord-1"}},
            "notify": _notify(undo_until),
        }
    )


@dataclass
class Flow:
    functions: ScriptedFunctions
    state_machine_arn: str

    def run(self, goal_id: str = "g-1", timeout: float = 60.0) -> tuple[str, list[str]]:
        """Runs one execution to its end: its status and the states it entered, in order."""
        sfn = boto3.client("stepfunctions", region_name=REGION)
        flow_input = {"goalId": goal_id, "settings": {"approvalTimeoutSeconds": 60, "undoWindowSeconds": 1}}
        arn = sfn.start_execution(
            stateMachineArn=self.state_machine_arn, name=goal_id, input=json.dumps(flow_input)
        )["executionArn"]
        deadline = time.monotonic() + timeout
        while (status := sfn.describe_execution(executionArn=arn)["status"]) == "RUNNING":
            assert time.monotonic() < deadline, "the execution did not end"
            time.sleep(0.05)
        events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        entered = [
            event["stateEnteredEventDetails"]["name"]
            for event in events
            if "stateEnteredEventDetails" in event
        ]
        return status, entered


@pytest.fixture
def flow() -> Iterator[Flow]:
    functions = ScriptedFunctions()
    runtime = InProcessLambdaRuntime(containers_per_function=1)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}), runtime.installed():
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(RoleName="flow", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        lambdas = boto3.client("lambda", region_name=REGION)
        arns: dict[str, str] = {}
        for spec in FUNCTIONS:
            arn = lambdas.create_function(
                FunctionName=spec.name, Runtime="python3.13", Role=role, Handler="app.handler",
                Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18},
            )["FunctionArn"]  # fmt: skip
            runtime.register(spec.name, lambda name=spec.name: functions.handler(name))  # type: ignore[misc]
            if spec.asl_variable:
                arns[spec.asl_variable] = arn
        definition = substitute_definition(ASL_FILE.read_text(encoding="utf-8"), arns)
        machine = boto3.client("stepfunctions", region_name=REGION).create_state_machine(
            name="order-flow", definition=definition, roleArn=role, type="STANDARD"
        )["stateMachineArn"]
        yield Flow(functions, machine)


def test_an_order_from_a_merchant_without_cancel_ends_without_an_undo_window(flow: Flow):
    happy_path(flow.functions, undo_until=None)

    status, entered = flow.run()

    assert status == "SUCCEEDED"
    assert entered[-3:] == ["SendReceipt", "IsUndoOffered", "OrderCompleted"]
    # The price check's answer reaches the validator whole, the checkout's verdict on it included.
    (validation,) = flow.functions.called("validator")
    assert validation["priceCheck"] == {
        "planId": "p-1",
        "checkedAt": "2026-11-25T08:00:00Z",
        "items": [],
        "sessionChecked": True,
        "refusal": None,
        "shippingOffered": None,
        "shippingOptions": [],
    }
    assert "OfferUndo" not in entered
    assert [event["kind"] for event in flow.functions.called("notify")] == ["receipt"]


def test_an_order_that_can_be_undone_waits_out_its_window(flow: Flow):
    happy_path(flow.functions, undo_until="2026-11-25T08:00:01+00:00")

    status, entered = flow.run()

    assert status == "SUCCEEDED"
    assert entered[-4:] == ["SendReceipt", "IsUndoOffered", "OfferUndo", "CloseUndoWindow"]
    assert [event["kind"] for event in flow.functions.called("notify")] == [
        "receipt",
        "undo_window",
        "undo_closed",
    ]


@pytest.mark.parametrize("step", ["checkout", "fulfillment", "payment"])
def test_an_escalation_hands_the_checkout_over_and_undoes_nothing(flow: Flow, step: str):
    happy_path(flow.functions, undo_until=None)

    def escalate(event: dict[str, Any]) -> Any:
        raise MerchantEscalation(
            "the merchant needs the buyer", "https://shop.example/checkout-sessions/cs-1"
        )

    flow.functions.answers[step] = escalate

    status, entered = flow.run()

    assert status == "SUCCEEDED"
    assert entered[-2:] == ["HandOffToShopper", "OrderHandedOff"]
    (announce,) = flow.functions.called("notify")
    assert announce["kind"] == "handed_off" and announce["goalId"] == "g-1"
    assert announce["error"]["Error"] == "MerchantEscalation"
    # The session the shopper continues in is left as it is, and nothing later runs.
    assert flow.functions.called("compensator") == []
    assert flow.functions.called("orders") == []
    assert "UndoExecutedSteps" not in entered


def test_an_escalation_nobody_recorded_is_undone_like_any_failure(flow: Flow):
    happy_path(flow.functions, undo_until=None)

    def escalate(event: dict[str, Any]) -> Any:
        raise MerchantEscalation(
            "the merchant needs the buyer", "https://shop.example/checkout-sessions/cs-1"
        )

    def not_recorded(event: dict[str, Any]) -> Any:
        raise HandOffNotRecorded("no continue URL was recorded")

    flow.functions.answers["payment"] = escalate
    flow.functions.answers["notify"] = lambda event: (
        not_recorded(event) if event["kind"] == "handed_off" else {"status": event.get("status")}
    )
    flow.functions.answers["compensator"] = lambda event: {"status": "COMPENSATED"}

    status, entered = flow.run()

    assert status == "FAILED"
    assert entered[-3:] == ["HandOffToShopper", "UndoExecutedSteps", "OrderCompensated"]
    (compensation,) = flow.functions.called("compensator")
    assert compensation["error"]["Error"] == "HandOffNotRecorded"
    assert compensation["finalStatus"] == "COMPENSATED"


# --- the step loop: one Choice and one Task per step ------------------------------------------------

AUTO_PATH = [
    "PlanOrder", "CheckCurrentPrices", "CheckPolicies",
    "RouteNextStep", "RunCheckoutStep", "RouteNextStep", "RunFulfillmentStep", "RouteNextStep", "RunPaymentStep",
    "RouteNextStep", "ConfirmOrder", "SendReceipt", "IsUndoOffered", "OfferUndo", "CloseUndoWindow",
]  # fmt: skip


def test_an_auto_approved_goal_enters_at_most_fifteen_states(flow: Flow):
    happy_path(flow.functions, undo_until="2026-11-25T08:00:01+00:00")

    status, entered = flow.run()

    assert status == "SUCCEEDED"
    assert entered == AUTO_PATH and len(entered) <= 15
    # Each connector was handed the step the previous task named, with the outputs so far.
    handed = [
        (name, event)
        for name, event in flow.functions.calls
        if name in {"checkout", "fulfillment", "payment"}
    ]
    assert [event["step"] for _, event in handed] == STEPS
    assert [sorted(event["outputs"]) for _, event in handed] == [[], ["s1"], ["s1", "s2"]]
    (confirm,) = flow.functions.called("orders")
    assert sorted(confirm["outputs"]) == ["s1", "s2", "s3"]


def test_a_planned_only_goal_is_recorded_and_runs_nothing(flow: Flow):
    happy_path(flow.functions, undo_until=None)
    flow.functions.answers["validator"] = lambda event: {
        "route": "planned-only",
        "tier": "AUTO",
        "planHash": "sha256:1",
    }

    status, entered = flow.run()

    assert status == "SUCCEEDED"
    assert entered[-3:] == ["RouteNextStep", "RecordPlannedOnly", "PlannedOnly"]
    assert flow.functions.called("notify") == [{"goalId": "g-1", "kind": "outcome", "status": "PLANNED_ONLY"}]
    assert [
        name for name, _ in flow.functions.calls if name in {"checkout", "fulfillment", "payment", "orders"}
    ] == []


@pytest.mark.parametrize("route", ["deny", "something-new"])
def test_a_denied_or_unknown_route_is_recorded_denied(flow: Flow, route: str):
    happy_path(flow.functions, undo_until=None)
    flow.functions.answers["validator"] = lambda event: {
        "route": route,
        "tier": "DENY",
        "planHash": "sha256:1",
    }

    status, entered = flow.run()

    assert status == "SUCCEEDED"
    assert entered[-3:] == ["RouteNextStep", "RecordDenied", "OrderDenied"]
    assert [event["status"] for event in flow.functions.called("notify")] == ["DENIED"]
    assert flow.functions.called("checkout") == []


def test_an_approved_plan_runs_from_the_approvers_first_step_once(flow: Flow):
    happy_path(flow.functions, undo_until=None)
    flow.functions.answers["validator"] = lambda event: {
        "route": "approve",
        "tier": "CONFIRM",
        "planHash": "sha256:1",
    }
    # The approver drops the first step (a reduced plan): the flow starts where the answer says.
    approved = {"planId": "p-1", "planHash": "sha256:2", "steps": STEPS[1:], "next": STEPS[1]}

    def approve(event: dict[str, Any]) -> dict[str, Any]:
        boto3.client("stepfunctions", region_name=REGION).send_task_success(
            taskToken=event["taskToken"], output=json.dumps(approved)
        )
        return {"approvalId": "a-1"}

    flow.functions.answers["approval"] = approve

    status, entered = flow.run()

    assert status == "SUCCEEDED"
    assert entered.count("WaitForApproval") == 1
    assert entered[3:8] == [
        "RouteNextStep",
        "WaitForApproval",
        "RouteNextStep",
        "RunFulfillmentStep",
        "RouteNextStep",
    ]
    assert [event["planHash"] for event in flow.functions.called("fulfillment")] == ["sha256:2"]
    assert flow.functions.called("checkout") == []


def test_a_step_no_connector_serves_is_undone(flow: Flow):
    happy_path(flow.functions, undo_until=None)
    flow.functions.answers["fulfillment"] = lambda event: {
        "outputs": {**event["outputs"], "s2": {"checkoutId": "cs-1"}},
        "next": {"id": "s9", "action": "gift.wrap"},
    }
    flow.functions.answers["compensator"] = lambda event: {"status": "COMPENSATED"}

    status, entered = flow.run()

    assert status == "FAILED"
    assert entered[-3:] == ["RejectUnknownAction", "UndoExecutedSteps", "OrderCompensated"]
    (compensation,) = flow.functions.called("compensator")
    assert compensation["error"]["Error"] == "UnknownAction"
    assert sorted(compensation["outputs"]) == ["s1", "s2"]
    assert flow.functions.called("payment") == []


def test_a_halted_rollout_undoes_what_ran_with_the_error(flow: Flow):
    from cartpilot.rollout.gate import RolloutHalted

    happy_path(flow.functions, undo_until=None)

    def halted(event: dict[str, Any]) -> Any:
        raise RolloutHalted("the brand's kill switch is on")

    flow.functions.answers["payment"] = halted
    flow.functions.answers["compensator"] = lambda event: {"status": "COMPENSATED"}

    status, entered = flow.run()

    assert status == "FAILED"
    assert entered[-3:] == ["RunPaymentStep", "UndoExecutedSteps", "OrderCompensated"]
    (compensation,) = flow.functions.called("compensator")
    assert compensation["error"]["Error"] == "RolloutHalted"
    assert compensation["finalStatus"] == "COMPENSATED"
    assert sorted(compensation["outputs"]) == ["s1", "s2"]


def test_a_price_drift_undoes_the_session_and_plans_again_from_a_fresh_cursor(flow: Flow):
    from cartpilot.commerce.errors import PlanNeedsReapproval

    happy_path(flow.functions, undo_until=None)
    drifted: list[bool] = []

    def payment(event: dict[str, Any]) -> Any:
        if not drifted:
            drifted.append(True)
            raise PlanNeedsReapproval("a price moved")
        return _answer(event, {"checkoutId": "cs-2", "orderId": "ord-1", "status": "confirmed"})

    flow.functions.answers["payment"] = payment
    flow.functions.answers["compensator"] = lambda event: {"status": "PLANNING"}

    status, entered = flow.run()

    assert status == "SUCCEEDED"
    assert entered.count("PlanOrder") == 2 and "ReplanAfterPriceChange" in entered
    (undo,) = flow.functions.called("compensator")
    assert undo["finalStatus"] == "PLANNING" and sorted(undo["outputs"]) == ["s1", "s2"]
    # The second pass starts with no outputs: nothing of the undone session is carried over.
    assert [sorted(event["outputs"]) for event in flow.functions.called("checkout")] == [[], []]
