"""The local stack's nested executions: a Standard parent starts an Express child with
``states:startExecution`` (request-response, ``.sync``, ``.sync:2``) in moto's engine and sees what
Step Functions gives it: the child's description with the service's names, and ``States.TaskFailed``
with the child's description as ``Cause`` when the child fails, times out or is stopped."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
    StateTaskServiceSfn,
)

from cartpilot_local import nested_executions as seam
from cartpilot_local.lambda_runtime import InProcessLambdaRuntime
from cartpilot_local.nested_executions import (
    execution_result,
    install_nested_executions,
    nested_executions,
    nested_executions_installed,
    start_execution_request,
    uninstall_nested_executions,
)

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/flow"
DEADLINE_SECONDS = 20.0

CHILD = {
    "StartAt": "Price",
    "States": {
        "Price": {"Type": "Pass", "Result": {"receipt": "r-1"}, "ResultPath": "$.priced", "Next": "Moved?"},
        "Moved?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.fail", "BooleanEquals": True, "Next": "Replan"}],
            "Default": "Done",
        },
        "Replan": {"Type": "Fail", "Error": "ReplanAfterPriceChange", "Cause": "the price moved"},
        "Done": {"Type": "Pass", "Parameters": {"receipt.$": "$.priced.receipt"}, "End": True},
    },
}


def parent_definition(child_arn: str, resource: str = "arn:aws:states:::states:startExecution.sync:2") -> str:
    """The order flow's shape: the child's receipt on success, its failure read back on a Catch."""
    return json.dumps(
        {
            "StartAt": "RunOrderSteps",
            "States": {
                "RunOrderSteps": {
                    "Type": "Task",
                    "Resource": resource,
                    "Parameters": {
                        "StateMachineArn": child_arn,
                        "Name.$": "States.Format('{}-steps-{}', $.goalId, States.UUID())",
                        "Input": {
                            "goalId.$": "$.goalId",
                            "fail.$": "$.fail",
                            "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$": "$$.Execution.Id",
                        },
                    },
                    "ResultPath": "$.steps",
                    "Catch": [
                        {
                            "ErrorEquals": ["States.TaskFailed"],
                            "ResultPath": "$.error",
                            "Next": "ReadStepsFailure",
                        }
                    ],
                    "End": True,
                },
                "ReadStepsFailure": {
                    "Type": "Pass",
                    "Parameters": {"child.$": "States.StringToJson($.error.Cause)"},
                    "ResultPath": "$.failure",
                    "End": True,
                },
            },
        }
    )


@pytest.fixture
def sfn() -> Iterator[Any]:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}), nested_executions():
        yield boto3.client("stepfunctions", region_name=REGION)


def machine(sfn: Any, name: str, definition: dict[str, Any] | str, kind: str = "STANDARD") -> str:
    text = definition if isinstance(definition, str) else json.dumps(definition)
    return str(
        sfn.create_state_machine(name=name, definition=text, roleArn=ROLE, type=kind)["stateMachineArn"]
    )


def finished(sfn: Any, execution_arn: str) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        description: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if description["status"] != "RUNNING":
            return description
        assert time.monotonic() < deadline, f"{execution_arn} still running"
        time.sleep(0.02)


def run(sfn: Any, parent_arn: str, goal_id: str, *, fail: bool = False) -> dict[str, Any]:
    arn = sfn.start_execution(
        stateMachineArn=parent_arn, name=goal_id, input=json.dumps({"goalId": goal_id, "fail": fail})
    )["executionArn"]
    return finished(sfn, arn)


def output(description: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(description["output"])
    return result


# --- results --------------------------------------------------------------------------------------


def test_sync2_returns_the_childs_description_with_its_output_parsed(sfn: Any):
    child = machine(sfn, "order-steps", CHILD, kind="EXPRESS")
    parent = machine(sfn, "order-flow", parent_definition(child))

    done = run(sfn, parent, "g-1")

    assert done["status"] == "SUCCEEDED"
    steps = output(done)["steps"]
    assert steps["Status"] == "SUCCEEDED"
    assert steps["Output"] == {"receipt": "r-1"}
    assert steps["Input"] == {
        "goalId": "g-1",
        "fail": False,
        "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID": done["executionArn"],
    }
    assert steps["StateMachineArn"] == child
    assert steps["Name"].startswith("g-1-steps-")
    assert steps["ExecutionArn"].endswith(f":execution:order-steps:{steps['Name']}")
    assert isinstance(steps["StartDate"], int) and steps["StopDate"] >= steps["StartDate"]
    assert steps["OutputDetails"] == {"Included": True}
    # The child is an Express execution whose history the local stack can read (for metering).
    history = sfn.get_execution_history(executionArn=steps["ExecutionArn"])["events"]
    assert [event["type"] for event in history][-1] == "ExecutionSucceeded"


def test_sync_keeps_input_and_output_as_json_text(sfn: Any):
    child = machine(sfn, "order-steps", CHILD, kind="EXPRESS")
    parent = machine(
        sfn, "order-flow", parent_definition(child, "arn:aws:states:::states:startExecution.sync")
    )

    steps = output(run(sfn, parent, "g-2"))["steps"]

    assert steps["Status"] == "SUCCEEDED"
    assert json.loads(steps["Output"]) == {"receipt": "r-1"}
    assert json.loads(steps["Input"])["goalId"] == "g-2"


def test_request_response_returns_the_started_execution(sfn: Any):
    child = machine(sfn, "order-steps", CHILD, kind="EXPRESS")
    parent = machine(sfn, "order-flow", parent_definition(child, "arn:aws:states:::states:startExecution"))

    steps = output(run(sfn, parent, "g-3"))["steps"]

    assert set(steps) == {"ExecutionArn", "StartDate"}
    assert finished(sfn, steps["ExecutionArn"])["status"] == "SUCCEEDED"


# --- failures -------------------------------------------------------------------------------------


def test_a_failed_child_fails_the_task_with_its_error_in_the_cause(sfn: Any):
    child = machine(sfn, "order-steps", CHILD, kind="EXPRESS")
    parent = machine(sfn, "order-flow", parent_definition(child))

    done = run(sfn, parent, "g-4", fail=True)

    assert done["status"] == "SUCCEEDED"  # the Catch took it
    result = output(done)
    assert result["error"]["Error"] == "States.TaskFailed"
    assert "steps" not in result
    failure = result["failure"]["child"]  # States.StringToJson read the Cause
    assert failure["Status"] == "FAILED"
    assert failure["Error"] == "ReplanAfterPriceChange"
    assert failure["Cause"] == "the price moved"
    assert failure["Input"]["goalId"] == "g-4"


def test_without_a_catch_the_parent_fails_with_states_task_failed(sfn: Any):
    child = machine(sfn, "order-steps", CHILD, kind="EXPRESS")
    definition = json.loads(parent_definition(child))
    del definition["States"]["RunOrderSteps"]["Catch"]
    parent = machine(sfn, "order-flow", json.dumps(definition))

    done = run(sfn, parent, "g-5", fail=True)

    assert done["status"] == "FAILED"
    assert done["error"] == "States.TaskFailed"
    assert json.loads(done["cause"])["Error"] == "ReplanAfterPriceChange"


def test_a_timed_out_child_fails_the_task_too(sfn: Any):
    slow = {
        "TimeoutSeconds": 1,
        "StartAt": "Wait",
        "States": {"Wait": {"Type": "Wait", "Seconds": 30, "End": True}},
    }
    child = machine(sfn, "order-steps", slow, kind="EXPRESS")
    parent = machine(sfn, "order-flow", parent_definition(child))

    result = output(run(sfn, parent, "g-6"))

    assert result["error"]["Error"] == "States.TaskFailed"
    assert result["failure"]["child"]["Status"] == "TIMED_OUT"


def test_a_stopped_child_fails_the_task_too(sfn: Any):
    slow = {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 30, "End": True}}}
    child = machine(sfn, "order-steps", slow, kind="EXPRESS")
    parent = machine(sfn, "order-flow", parent_definition(child))
    arn = sfn.start_execution(stateMachineArn=parent, name="g-7", input='{"goalId": "g-7", "fail": false}')[
        "executionArn"
    ]
    deadline = time.monotonic() + DEADLINE_SECONDS

    def waiting_child() -> str | None:
        """The child once it waits in its Wait state (a child that is still starting cannot be stopped
        in moto: its worker has no environment yet)."""
        for execution in sfn.list_executions(stateMachineArn=child)["executions"]:
            events = sfn.get_execution_history(executionArn=execution["executionArn"])["events"]
            if any(event["type"] == "WaitStateEntered" for event in events):
                return str(execution["executionArn"])
        return None

    while (waiting := waiting_child()) is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)

    sfn.stop_execution(executionArn=waiting, error="Stopped", cause="by the test")

    result = output(finished(sfn, arn))
    assert result["error"]["Error"] == "States.TaskFailed"
    assert result["failure"]["child"]["Status"] == "ABORTED"


# --- Lambda tasks and task tokens -----------------------------------------------------------------


def _lambda(name: str) -> str:
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return event\n")
    return str(
        boto3.client("lambda", region_name=REGION).create_function(
            FunctionName=name, Runtime="python3.13", Role=role, Handler="app.handler",
            Code={"ZipFile": package.getvalue()},
        )["FunctionArn"]
    )  # fmt: skip


def test_a_childs_lambda_task_runs_in_the_in_process_runtime_and_task_tokens_still_work(sfn: Any):
    runtime = InProcessLambdaRuntime()
    runtime.register("confirm-order", lambda: lambda event, context: {"receipt": f"r-{event['goalId']}"})
    tokens: list[str] = []
    runtime.register("open-window", lambda: lambda event, context: tokens.append(event["token"]))
    confirm = _lambda("confirm-order")
    window = _lambda("open-window")
    child = machine(
        sfn,
        "order-steps",
        {
            "StartAt": "ConfirmOrder",
            "States": {
                "ConfirmOrder": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": confirm, "Payload": {"goalId.$": "$.goalId"}},
                    "OutputPath": "$.Payload",
                    "End": True,
                }
            },
        },
        kind="EXPRESS",
    )
    definition = json.loads(parent_definition(child))
    del definition["States"]["RunOrderSteps"]["End"]
    definition["States"]["RunOrderSteps"]["Next"] = "WaitForShopper"
    definition["States"]["WaitForShopper"] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {"FunctionName": window, "Payload": {"token.$": "$$.Task.Token"}},
        "ResultPath": "$.shopper",
        "End": True,
    }
    parent = machine(sfn, "order-flow", json.dumps(definition))

    with runtime.installed():
        arn = sfn.start_execution(
            stateMachineArn=parent, name="g-8", input='{"goalId": "g-8", "fail": false}'
        )["executionArn"]
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not tokens:
            assert time.monotonic() < deadline, "the parent never reached its waiting task"
            time.sleep(0.02)
        sfn.send_task_success(taskToken=tokens[0], output='{"undo": false}')
        done = finished(sfn, arn)

    assert done["status"] == "SUCCEEDED"
    assert output(done)["steps"]["Output"] == {"receipt": "r-g-8"}
    assert output(done)["shopper"] == {"undo": False}
    assert [invocation.function_name for invocation in runtime.invocations] == [
        "confirm-order",
        "open-window",
    ]


# --- waiting for the child ------------------------------------------------------------------------


class _Env:
    """What the resolver reads of moto's environment: the submission on the stack, and whether the task runs."""

    def __init__(self, submission: dict[str, Any]) -> None:
        self.stack = [submission]

    def is_running(self) -> bool:
        return True


class _Client:
    def __init__(self, running_polls: int) -> None:
        self.running_polls = running_polls

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        if self.running_polls:
            self.running_polls -= 1
            return {"executionArn": executionArn, "status": "RUNNING"}
        when = datetime(2026, 1, 1, tzinfo=UTC)
        return {"executionArn": executionArn, "status": "SUCCEEDED", "startDate": when, "stopDate": when,
                "input": "{}", "output": '{"receipt": "r"}'}  # fmt: skip


def test_the_wait_polls_the_running_child_every_few_milliseconds(monkeypatch: pytest.MonkeyPatch):
    """moto's engine sleeps half a second whenever the resolver answers "still running"; this one
    keeps looking at short intervals instead, so a goal's flow does not idle behind its child."""
    sleeps: list[float] = []
    monkeypatch.setattr(seam, "boto_client_for", lambda **_: _Client(running_polls=12))
    monkeypatch.setattr(seam.time, "sleep", sleeps.append)

    resolve = seam._wait_for_child(
        StateTaskServiceSfn(), _Env({"ExecutionArn": "arn:x"}), type("Part", (), {"region": REGION})(), None,
        parse_json=True,
    )  # fmt: skip
    result = resolve()

    assert result["Output"] == {"receipt": "r"}  # in the first call: never "still running"
    assert len(sleeps) == 12 and max(sleeps) <= 0.05


# --- the request and the result, alone ------------------------------------------------------------


def test_parameters_take_boto3_names_and_the_input_is_json_text():
    assert start_execution_request({"StateMachineArn": "arn:sm", "Name": "n", "Input": {"a": 1}}) == {
        "stateMachineArn": "arn:sm",
        "name": "n",
        "input": '{"a":1}',
    }
    assert start_execution_request({"StateMachineArn": "arn:sm", "Input": '{"a": 1}'})["input"] == '{"a": 1}'
    assert start_execution_request({"StateMachineArn": "arn:sm"})["input"] == "{}"


def test_the_description_takes_the_services_names():
    when = datetime(2026, 1, 1, tzinfo=UTC)
    description = {"executionArn": "e", "status": "FAILED", "startDate": when, "stopDate": when,
                   "input": '{"a": 1}', "inputDetails": {"included": True}, "error": "E", "cause": "C"}  # fmt: skip
    assert execution_result(description, parse_json=True) == {
        "ExecutionArn": "e",
        "Status": "FAILED",
        "StartDate": int(when.timestamp() * 1000),
        "StopDate": int(when.timestamp() * 1000),
        "Input": {"a": 1},
        "InputDetails": {"Included": True},
        "Error": "E",
        "Cause": "C",
    }
    assert execution_result(description, parse_json=False)["Input"] == '{"a": 1}'


# --- install and uninstall ------------------------------------------------------------------------


def test_uninstall_restores_motos_behaviour_and_installing_twice_is_harmless():
    assert not nested_executions_installed()
    originals = {name: StateTaskServiceSfn.__dict__[name] for name in seam._REPLACEMENTS}
    with nested_executions():
        assert install_nested_executions() is False  # already installed: nothing changes
        with nested_executions():  # an inner install leaves the outer one in place on exit
            pass
        assert nested_executions_installed()
        assert StateTaskServiceSfn.__dict__["_eval_service_task"] is seam._eval_service_task
    assert not nested_executions_installed()
    assert {name: StateTaskServiceSfn.__dict__[name] for name in seam._REPLACEMENTS} == originals
    uninstall_nested_executions()  # not installed: nothing to do
    assert {name: StateTaskServiceSfn.__dict__[name] for name in seam._REPLACEMENTS} == originals


def test_without_the_seam_moto_cannot_start_the_child():
    """What the seam is for: moto hands ``StateMachineArn`` to boto3 as is."""
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name=REGION)
        child = machine(sfn, "order-steps", CHILD, kind="EXPRESS")
        parent = json.loads(parent_definition(child))
        del parent["States"]["RunOrderSteps"]["Catch"]
        done = run(sfn, machine(sfn, "order-flow", json.dumps(parent)), "g-9")
    assert done["status"] == "FAILED"
    assert done["error"] == "States.Runtime"
