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


def _outputs_so_far(event: dict[str, Any]) -> dict[str, Any]:
    return {**event["outputs"], event["step"]["id"]: {"checkoutId": "cs-1", "status": "incomplete"}}


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
            "planner": lambda event: {"planId": "p-1", "planHash": "sha256:1", "steps": STEPS},
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
            "payment": lambda event: {
                **event["outputs"],
                "s3": {"checkoutId": "cs-1", "orderId": "ord-1", "status": "confirmed"},
            },
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
    assert entered[-5:] == ["SendReceipt", "IsUndoOffered", "OfferUndo", "CloseUndoWindow", "OrderCompleted"]
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
