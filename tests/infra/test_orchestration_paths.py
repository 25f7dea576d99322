"""The order flow's paths on Step Functions' own engine (moto's ASL interpreter, as the local stack
runs it), with scripted functions: which states a goal passes, in the Standard order flow and in the
Express step loop it nests, and which functions are asked.

The three machines run as deployed: the order flow starts the step loop with
``startExecution.sync:2`` (``cartpilot_local.nested_executions`` gives moto's engine the service's
behaviour) and reads the child's failure back from ``States.TaskFailed``; the undo flow is its own
execution. Only the flows are under test here; the functions' behaviour has its own tests. A scripted
function answers as the real one does on the path at hand, and raises the real error classes, whose
names are the Lambda error types the definitions' Retry and Catch match.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import boto3
import pytest
from moto import mock_aws

from cartpilot.commerce.errors import MerchantEscalation, PlanNeedsReapproval
from cartpilot.goals.handoff import HandOffNotRecorded
from cartpilot.rollout.gate import RolloutHalted
from cartpilot_local.execution_history import state_transitions
from cartpilot_local.lambda_runtime import InProcessLambdaRuntime
from cartpilot_local.nested_executions import nested_executions
from cartpilot_local.stack import FUNCTIONS, substitute_definition
from infra.orchestration import ORDER_STEPS_VARIABLE
from infra.settings import PROJECT_ROOT

STATE_MACHINES_DIR = PROJECT_ROOT / "statemachines"
ASL_FILE = STATE_MACHINES_DIR / "order_flow.asl.json"
STEPS_FILE = STATE_MACHINES_DIR / "order_steps.asl.json"
UNDO_FILE = STATE_MACHINES_DIR / "undo_flow.asl.json"
REGION = "us-east-1"
DEADLINE_SECONDS = 60.0
STEPS = [
    {"id": "s1", "action": "checkout.create"},
    {"id": "s2", "action": "fulfillment.select"},
    {"id": "s3", "action": "payment.complete"},
]
CONFIRM = {"id": "confirm", "action": "orders.confirm"}
# What an auto-approved goal costs on the Standard flow (billed per transition): the issue's ceiling
# was 15 with the step loop and the undo window inside it.
AUTO_PATH = ["PlanOrder", "CheckCurrentPrices", "CheckPolicies", "RouteVerdict", "RunOrderSteps"]
STEP_LOOP = [
    "RouteNextStep", "RunCheckoutStep", "RouteNextStep", "RunFulfillmentStep", "RouteNextStep", "RunPaymentStep",
    "RouteNextStep", "ConfirmOrder", "SendReceipt",
]  # fmt: skip
Handler = Callable[[dict[str, Any]], Any]
# What goals/undo.py starts the undo flow with.
UNDO_INPUT = {"goalId": "g-1", "planId": "p-1"}


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
class Run:
    """One order-flow execution, ended: its status, output, the states it entered and its children's."""

    status: str
    output: dict[str, Any]
    entered: list[str]
    children: list[tuple[str, list[str]]]  # each step loop's status and states, in the order started

    @property
    def child_states(self) -> list[str]:
        return [state for _, entered in self.children for state in entered]


def _ended(sfn: Any, arn: str, deadline: float) -> dict[str, Any]:
    while (description := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{arn} did not end"
        time.sleep(0.02)  # a poll interval, with the status re-read after it
    return dict(description)


@dataclass
class Flow:
    functions: ScriptedFunctions
    state_machine_arn: str
    steps_arn: str
    undo_arn: str

    def start(self, goal_id: str = "g-1") -> str:
        sfn = boto3.client("stepfunctions", region_name=REGION)
        flow_input = {"goalId": goal_id, "settings": {"approvalTimeoutSeconds": 60}}
        return str(
            sfn.start_execution(
                stateMachineArn=self.state_machine_arn, name=goal_id, input=json.dumps(flow_input)
            )["executionArn"]
        )

    def children(self, goal_id: str) -> list[dict[str, Any]]:
        sfn = boto3.client("stepfunctions", region_name=REGION)
        executions = sfn.list_executions(stateMachineArn=self.steps_arn)["executions"]
        mine = [dict(e) for e in executions if str(e["name"]).startswith(f"{goal_id}-steps-")]
        return sorted(mine, key=lambda execution: execution["startDate"])

    def run(self, goal_id: str = "g-1") -> Run:
        """Runs one execution to its end, with every step loop it started."""
        return self.finish(self.start(goal_id), goal_id)

    def finish(self, arn: str, goal_id: str = "g-1") -> Run:
        sfn = boto3.client("stepfunctions", region_name=REGION)
        deadline = time.monotonic() + DEADLINE_SECONDS
        description = _ended(sfn, arn, deadline)
        children = []
        for child in self.children(goal_id):
            ended = _ended(sfn, child["executionArn"], deadline)
            children.append((str(ended["status"]), state_transitions(sfn, child["executionArn"])))
        return Run(
            status=str(description["status"]),
            output=json.loads(description.get("output") or "{}"),
            entered=state_transitions(sfn, arn),
            children=children,
        )

    def undo(self, goal_id: str = "g-1") -> Run:
        """What POST /goals/{id}/undo starts: the undo flow, named ``<goalId>-undo``."""
        sfn = boto3.client("stepfunctions", region_name=REGION)
        arn = sfn.start_execution(
            stateMachineArn=self.undo_arn,
            name=f"{goal_id}-undo",
            input=json.dumps(UNDO_INPUT | {"goalId": goal_id}),
        )["executionArn"]
        description = _ended(sfn, arn, time.monotonic() + DEADLINE_SECONDS)
        return Run(str(description["status"]), {}, state_transitions(sfn, arn), [])


FlowFactory = Callable[..., Flow]


@pytest.fixture
def flows() -> Iterator[FlowFactory]:
    """Builds the three machines as the stack does; ``steps_timeout`` shortens the step loop's own
    timeout (five minutes in the file) so that a test can watch one run out."""
    functions = ScriptedFunctions()
    runtime = InProcessLambdaRuntime(containers_per_function=1)
    with (
        mock_aws(config={"stepfunctions": {"execute_state_machine": True}}),
        runtime.installed(),
        nested_executions(),
    ):
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(RoleName="flow", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        lambdas = boto3.client("lambda", region_name=REGION)
        arns: dict[str, str] = {}
        for spec in FUNCTIONS:
            arn = lambdas.create_function(
                FunctionName=spec.name, Runtime="python3.13", Role=role, Handler="app.handler",
                Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18},
            )["FunctionArn"]  # fmt: skip
            runtime.register(spec.name, lambda name=spec.name: functions.handler(name))
            if spec.asl_variable:
                arns[spec.asl_variable] = arn
        sfn = boto3.client("stepfunctions", region_name=REGION)

        def create(name: str, definition: str, kind: Literal["STANDARD", "EXPRESS"]) -> str:
            return str(
                sfn.create_state_machine(name=name, definition=definition, roleArn=role, type=kind)[
                    "stateMachineArn"
                ]
            )

        def build(steps_timeout: int | None = None) -> Flow:
            steps_definition = json.loads(substitute_definition(STEPS_FILE.read_text(encoding="utf-8"), arns))
            if steps_timeout is not None:
                steps_definition["TimeoutSeconds"] = steps_timeout
            steps = create("order-steps", json.dumps(steps_definition), "EXPRESS")
            flow = substitute_definition(
                ASL_FILE.read_text(encoding="utf-8"), arns | {ORDER_STEPS_VARIABLE: steps}
            )
            undo = substitute_definition(UNDO_FILE.read_text(encoding="utf-8"), arns)
            return Flow(
                functions,
                create("order-flow", flow, "STANDARD"),
                steps,
                create("undo-flow", undo, "STANDARD"),
            )

        yield build


@pytest.fixture
def flow(flows: FlowFactory) -> Flow:
    return flows()


# --- the auto path: five Standard transitions, the step loop in one Express execution --------------


@pytest.mark.parametrize("undo_until", [None, "2026-11-25T08:00:01+00:00"])
def test_an_auto_approved_goal_enters_five_standard_states_and_runs_its_steps_in_one_child(
    flow: Flow, undo_until: str | None
) -> None:
    happy_path(flow.functions, undo_until=undo_until)

    run = flow.run()

    assert run.status == "SUCCEEDED"
    assert run.entered == AUTO_PATH and len(run.entered) <= 5
    # The whole step loop, receipt included, in one Express execution.
    assert run.children == [("SUCCEEDED", STEP_LOOP)]
    # The order flow ends with the receipt, whether or not the order can be undone: the undo window
    # is a deadline on the goal, and POST /goals/{id}/undo starts an execution of its own.
    assert [event["kind"] for event in flow.functions.called("notify")] == ["receipt"]
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
    # Each connector was handed the step the previous task named, with the outputs so far.
    handed = [
        (name, event)
        for name, event in flow.functions.calls
        if name in {"checkout", "fulfillment", "payment"}
    ]
    assert [event["step"] for _, event in handed] == STEPS
    assert [sorted(event["outputs"]) for _, event in handed] == [[], ["s1"], ["s1", "s2"]]
    # Every step knows the execution it ran in: the child's, which the parent started.
    (child,) = flow.children("g-1")
    assert {event["context"]["executionId"] for _, event in handed} == {child["executionArn"]}
    (confirm,) = flow.functions.called("orders")
    assert sorted(confirm["outputs"]) == ["s1", "s2", "s3"]


# --- routes that run no step ---------------------------------------------------------------------


def test_a_planned_only_goal_is_recorded_and_runs_nothing(flow: Flow) -> None:
    happy_path(flow.functions, undo_until=None)
    flow.functions.answers["validator"] = lambda event: {
        "route": "planned-only",
        "tier": "AUTO",
        "planHash": "sha256:1",
    }

    run = flow.run()

    assert run.status == "SUCCEEDED"
    assert run.entered[-3:] == ["RouteVerdict", "RecordPlannedOnly", "PlannedOnly"]
    assert run.children == []
    assert flow.functions.called("notify") == [{"goalId": "g-1", "kind": "outcome", "status": "PLANNED_ONLY"}]
    assert [
        name for name, _ in flow.functions.calls if name in {"checkout", "fulfillment", "payment", "orders"}
    ] == []


@pytest.mark.parametrize("route", ["deny", "something-new"])
def test_a_denied_or_unknown_route_is_recorded_denied(flow: Flow, route: str) -> None:
    happy_path(flow.functions, undo_until=None)
    flow.functions.answers["validator"] = lambda event: {
        "route": route,
        "tier": "DENY",
        "planHash": "sha256:1",
    }

    run = flow.run()

    assert run.status == "SUCCEEDED"
    assert run.entered[-3:] == ["RouteVerdict", "RecordDenied", "OrderDenied"]
    assert run.children == []
    assert [event["status"] for event in flow.functions.called("notify")] == ["DENIED"]
    assert flow.functions.called("checkout") == []


# --- approval ------------------------------------------------------------------------------------


def test_an_approved_plan_starts_the_step_loop_at_the_approvers_first_step_once(flow: Flow) -> None:
    happy_path(flow.functions, undo_until=None)
    flow.functions.answers["validator"] = lambda event: {
        "route": "approve",
        "tier": "CONFIRM",
        "planHash": "sha256:1",
    }
    # The approver drops the first step (a reduced plan): the loop starts where the answer says.
    approved = {"planId": "p-1", "planHash": "sha256:2", "steps": STEPS[1:], "next": STEPS[1]}

    def approve(event: dict[str, Any]) -> dict[str, Any]:
        boto3.client("stepfunctions", region_name=REGION).send_task_success(
            taskToken=event["taskToken"], output=json.dumps(approved)
        )
        return {"approvalId": "a-1"}

    flow.functions.answers["approval"] = approve

    run = flow.run()

    assert run.status == "SUCCEEDED"
    assert run.entered == [*AUTO_PATH[:4], "WaitForApproval", "RunOrderSteps"]
    ((status, steps),) = run.children
    assert status == "SUCCEEDED"
    assert steps[:3] == ["RouteNextStep", "RunFulfillmentStep", "RouteNextStep"]
    assert [event["planHash"] for event in flow.functions.called("fulfillment")] == ["sha256:2"]
    assert flow.functions.called("checkout") == []


def test_a_rejected_approval_is_recorded_and_starts_no_step_loop(flow: Flow) -> None:
    happy_path(flow.functions, undo_until=None)
    flow.functions.answers["validator"] = lambda event: {
        "route": "approve",
        "tier": "CONFIRM",
        "planHash": "h",
    }

    def reject(event: dict[str, Any]) -> dict[str, Any]:
        boto3.client("stepfunctions", region_name=REGION).send_task_failure(
            taskToken=event["taskToken"], error="ApprovalRejected", cause="The approver said no."
        )
        return {"approvalId": "a-1"}

    flow.functions.answers["approval"] = reject

    run = flow.run()

    assert run.status == "SUCCEEDED"
    assert run.entered[-3:] == ["WaitForApproval", "RecordRejected", "OrderRejected"]
    assert run.children == []
    assert flow.functions.called("checkout") == []


# --- failures inside the step loop: the child records them, the parent ends as the child did -------


@pytest.mark.parametrize("step", ["checkout", "fulfillment", "payment"])
def test_an_escalation_hands_the_checkout_over_and_undoes_nothing(flow: Flow, step: str) -> None:
    happy_path(flow.functions, undo_until=None)

    def escalate(event: dict[str, Any]) -> Any:
        raise MerchantEscalation(
            "the merchant needs the buyer", "https://shop.example/checkout-sessions/cs-1"
        )

    flow.functions.answers[step] = escalate

    run = flow.run()

    assert run.status == "SUCCEEDED"
    assert run.entered == AUTO_PATH
    ((status, steps),) = run.children
    assert status == "SUCCEEDED"
    assert steps[-2:] == ["HandOffToShopper", "OrderHandedOff"]
    (announce,) = flow.functions.called("notify")
    assert announce["kind"] == "handed_off" and announce["goalId"] == "g-1"
    assert announce["error"]["Error"] == "MerchantEscalation"
    # The session the shopper continues in is left as it is, and nothing later runs.
    assert flow.functions.called("compensator") == []
    assert flow.functions.called("orders") == []


def test_an_escalation_nobody_recorded_is_undone_like_any_failure(flow: Flow) -> None:
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

    run = flow.run()

    assert run.status == "FAILED"
    ((status, steps),) = run.children
    assert status == "FAILED"
    assert steps[-3:] == ["HandOffToShopper", "UndoExecutedSteps", "OrderCompensated"]
    # The parent ends as the child did, without undoing a second time.
    assert run.entered[-3:] == ["ReadStepsFailure", "RouteStepsFailure", "OrderCompensated"]
    (compensation,) = flow.functions.called("compensator")
    assert compensation["error"]["Error"] == "HandOffNotRecorded"
    assert compensation["finalStatus"] == "COMPENSATED"


def test_a_step_no_connector_serves_is_undone(flow: Flow) -> None:
    happy_path(flow.functions, undo_until=None)
    flow.functions.answers["fulfillment"] = lambda event: {
        "outputs": {**event["outputs"], "s2": {"checkoutId": "cs-1"}},
        "next": {"id": "s9", "action": "gift.wrap"},
    }
    flow.functions.answers["compensator"] = lambda event: {"status": "COMPENSATED"}

    run = flow.run()

    assert run.status == "FAILED"
    ((_, steps),) = run.children
    assert steps[-3:] == ["RejectUnknownAction", "UndoExecutedSteps", "OrderCompensated"]
    assert run.entered[-1] == "OrderCompensated" and "UndoExecutedSteps" not in run.entered
    (compensation,) = flow.functions.called("compensator")
    assert compensation["error"]["Error"] == "UnknownAction"
    assert sorted(compensation["outputs"]) == ["s1", "s2"]
    assert flow.functions.called("payment") == []


def test_a_halted_rollout_undoes_what_ran_with_the_error(flow: Flow) -> None:
    happy_path(flow.functions, undo_until=None)

    def halted(event: dict[str, Any]) -> Any:
        raise RolloutHalted("the brand's kill switch is on")

    flow.functions.answers["payment"] = halted
    flow.functions.answers["compensator"] = lambda event: {"status": "COMPENSATED"}

    run = flow.run()

    assert run.status == "FAILED"
    ((status, steps),) = run.children
    assert status == "FAILED"
    assert steps[-3:] == ["RunPaymentStep", "UndoExecutedSteps", "OrderCompensated"]
    assert run.entered == [*AUTO_PATH, "ReadStepsFailure", "RouteStepsFailure", "OrderCompensated"]
    (compensation,) = flow.functions.called("compensator")
    assert compensation["error"]["Error"] == "RolloutHalted"
    assert compensation["finalStatus"] == "COMPENSATED"
    assert sorted(compensation["outputs"]) == ["s1", "s2"]
    assert flow.functions.called("orders") == []


def test_a_compensation_that_cannot_finish_needs_attention(flow: Flow) -> None:
    happy_path(flow.functions, undo_until=None)

    def halted(event: dict[str, Any]) -> Any:
        raise RolloutHalted("the brand's kill switch is on")

    def broken(event: dict[str, Any]) -> Any:
        raise RuntimeError("the merchant refused the cancellation")

    flow.functions.answers["payment"] = halted
    flow.functions.answers["compensator"] = broken

    run = flow.run()

    assert run.status == "FAILED"
    ((_, steps),) = run.children
    assert steps[-2:] == ["RecordNeedsAttention", "NeedsAttention"]
    assert run.entered[-1] == "NeedsAttention" and "UndoExecutedSteps" not in run.entered
    assert [event["status"] for event in flow.functions.called("notify")] == ["NEEDS_ATTENTION"]


def test_a_price_drift_undoes_the_session_and_plans_again_from_a_fresh_cursor(flow: Flow) -> None:
    happy_path(flow.functions, undo_until=None)
    drifted: list[bool] = []

    def payment(event: dict[str, Any]) -> Any:
        if not drifted:
            drifted.append(True)
            raise PlanNeedsReapproval("a price moved")
        return _answer(event, {"checkoutId": "cs-2", "orderId": "ord-1", "status": "confirmed"})

    flow.functions.answers["payment"] = payment
    flow.functions.answers["compensator"] = lambda event: {"status": "PLANNING"}

    run = flow.run()

    assert run.status == "SUCCEEDED"
    assert run.entered == [
        *AUTO_PATH, "ReadStepsFailure", "RouteStepsFailure", "ReplanAfterPriceChange", *AUTO_PATH,
    ]  # fmt: skip
    # A fresh step loop for the new plan; the first ended asking for the replan.
    (first, second) = run.children
    assert first[0] == "FAILED" and first[1][-2:] == ["UndoBeforeReplanning", "ReplanAfterPriceChange"]
    assert second == ("SUCCEEDED", STEP_LOOP)
    (undo,) = flow.functions.called("compensator")
    assert undo["finalStatus"] == "PLANNING" and sorted(undo["outputs"]) == ["s1", "s2"]
    # The second pass starts with no outputs: nothing of the undone session is carried over.
    assert [sorted(event["outputs"]) for event in flow.functions.called("checkout")] == [[], []]
    assert len(flow.functions.called("planner")) == 2


# --- a step loop that could not finish: the parent undoes it --------------------------------------


def test_a_step_loop_that_times_out_is_undone_by_the_order_flow(flows: FlowFactory) -> None:
    flow = flows(steps_timeout=1)
    happy_path(flow.functions, undo_until=None)
    released = threading.Event()

    def stalled(event: dict[str, Any]) -> Any:
        released.wait(DEADLINE_SECONDS)  # a payment that hangs past the loop's timeout
        return _answer(event, {"checkoutId": "cs-1", "orderId": "ord-1", "status": "confirmed"})

    flow.functions.answers["payment"] = stalled
    flow.functions.answers["compensator"] = lambda event: {"status": "COMPENSATED"}

    try:
        run = flow.run()
    finally:
        released.set()

    assert run.status == "FAILED"
    ((status, steps),) = run.children
    assert status == "TIMED_OUT" and steps[-1] == "RunPaymentStep"
    assert run.entered == [
        *AUTO_PATH,
        "ReadStepsFailure",
        "RouteStepsFailure",
        "LetStepsSettle",
        "UndoExecutedSteps",
        "OrderCompensated",
    ]
    # The parent undoes from the goal's recorded steps (the child's outputs died with it), once a
    # step still in flight has had its function's timeout to end.
    (compensation,) = flow.functions.called("compensator")
    assert compensation["finalStatus"] == "COMPENSATED" and compensation["outputs"] == {}
    assert compensation["error"]["Error"] == "States.TaskFailed"
    assert json.loads(compensation["error"]["Cause"])["Status"] == "TIMED_OUT"
    assert flow.functions.called("orders") == []


@pytest.mark.parametrize("stop", [{"error": "Stopped", "cause": "by an operator"}, {}])
def test_a_step_loop_that_is_stopped_is_undone_by_the_order_flow(flow: Flow, stop: dict[str, str]) -> None:
    happy_path(flow.functions, undo_until=None)
    released = threading.Event()
    running = threading.Event()

    def stalled(event: dict[str, Any]) -> Any:
        running.set()
        released.wait(DEADLINE_SECONDS)
        return _outputs_so_far(event)

    flow.functions.answers["fulfillment"] = stalled
    flow.functions.answers["compensator"] = lambda event: {"status": "COMPENSATED"}

    arn = flow.start()
    try:
        assert running.wait(DEADLINE_SECONDS), "the step loop never reached the fulfillment step"
        (child,) = flow.children("g-1")
        boto3.client("stepfunctions", region_name=REGION).stop_execution(
            executionArn=child["executionArn"], **stop
        )
        released.set()  # the step in flight answers; the stopped loop runs nothing after it
        run = flow.finish(arn)
    finally:
        released.set()

    assert run.status == "FAILED"
    ((status, _),) = run.children
    assert status == "ABORTED"
    assert run.entered[-2:] == ["UndoExecutedSteps", "OrderCompensated"]
    (compensation,) = flow.functions.called("compensator")
    assert json.loads(compensation["error"]["Cause"])["Status"] == "ABORTED"


def test_a_step_loop_whose_outcome_could_not_be_recorded_leaves_it_to_the_order_flows_compensator(
    flow: Flow,
) -> None:
    """The child's undo fails and so does recording NEEDS_ATTENTION: the order flow's compensator
    (which writes the goal's status itself) takes over; when it fails too, the order flow records
    NEEDS_ATTENTION, and ends there even if that record fails."""
    happy_path(flow.functions, undo_until=None)

    def halted(event: dict[str, Any]) -> Any:
        raise RolloutHalted("the brand's kill switch is on")

    undone: list[dict[str, Any]] = []

    def compensator(event: dict[str, Any]) -> Any:
        undone.append(event)
        raise RuntimeError("the merchant refused the cancellation")

    def notify(event: dict[str, Any]) -> Any:
        raise RuntimeError("the status could not be recorded")

    flow.functions.answers["payment"] = halted
    flow.functions.answers["compensator"] = compensator
    flow.functions.answers["notify"] = notify

    run = flow.run()

    ((status, steps),) = run.children
    assert status == "FAILED" and steps[-2:] == ["RecordNeedsAttention", "NeedsAttentionNotRecorded"]
    assert run.entered[-5:] == [
        "RouteStepsFailure", "LetStepsSettle", "UndoExecutedSteps", "RecordNeedsAttention", "NeedsAttention",
    ]  # fmt: skip
    assert run.status == "FAILED"
    assert [event["finalStatus"] for event in undone] == ["COMPENSATED", "COMPENSATED"]


def test_a_receipt_that_cannot_be_sent_is_left_to_the_compensator_not_undone_by_the_flow(flow: Flow) -> None:
    """The order is placed and confirmed; only the notify function fails (the receipt, then the
    NEEDS_ATTENTION record). The order flow hands the goal to the compensator, which keeps a confirmed
    order and records NEEDS_ATTENTION (tests/unit/test_compensation.py)."""
    happy_path(flow.functions, undo_until=None)

    def notify(event: dict[str, Any]) -> Any:
        raise RuntimeError("SES throttled")

    flow.functions.answers["notify"] = notify
    flow.functions.answers["compensator"] = lambda event: {"status": "NEEDS_ATTENTION"}

    run = flow.run()

    ((status, steps),) = run.children
    assert status == "FAILED"
    assert steps[-3:] == ["SendReceipt", "RecordNeedsAttention", "NeedsAttentionNotRecorded"]
    assert run.entered[-3:] == ["LetStepsSettle", "UndoExecutedSteps", "OrderCompensated"]
    assert flow.functions.called("orders")
    (compensation,) = flow.functions.called("compensator")
    assert compensation["finalStatus"] == "COMPENSATED"


# --- undo: its own short execution ----------------------------------------------------------------


def test_an_undo_request_runs_the_undo_flow_once_and_ends_undone(flow: Flow) -> None:
    flow.functions.answers["compensator"] = lambda event: {"status": "UNDONE"}

    run = flow.undo()

    assert (run.status, run.entered) == ("SUCCEEDED", ["UndoOrder", "OrderUndone"])
    (undo,) = flow.functions.called("compensator")
    assert (undo["goalId"], undo["planId"], undo["finalStatus"]) == ("g-1", "p-1", "UNDONE")
    # A second request for the same goal cannot start a second undo: the execution name is the goal's.
    sfn = boto3.client("stepfunctions", region_name=REGION)
    with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
        sfn.start_execution(
            stateMachineArn=flow.undo_arn, name="g-1-undo", input=json.dumps({"goalId": "g-1"})
        )


def test_an_undo_that_cannot_finish_needs_attention(flow: Flow) -> None:
    def broken(event: dict[str, Any]) -> Any:
        raise RuntimeError("the merchant refused the cancellation")

    flow.functions.answers["compensator"] = broken
    flow.functions.answers["notify"] = _notify(None)

    run = flow.undo()

    assert run.status == "FAILED"
    assert run.entered == ["UndoOrder", "RecordNeedsAttention", "NeedsAttention"]
    assert [event["status"] for event in flow.functions.called("notify")] == ["NEEDS_ATTENTION"]
