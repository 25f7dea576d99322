"""The order flow's cost in state transitions, counted from the execution history as Step Functions
bills them: an auto-approved goal enters five states of the Standard order flow, and its step loop runs
as one Express execution (billed per request and duration, not per transition).

The step loop is one Choice and one Task per step: each connector answers with the plan's next step
(``cartpilot.execution.cursor``), so the flow keeps no cursor of its own to move. The order flow ends
with the receipt; the undo window is a deadline on the goal, not a waiting execution.
"""

from __future__ import annotations

import time
from typing import Any

import boto3

from cartpilot_local.execution_history import state_transitions
from cartpilot_local.stack import REGION
from tests.e2e.conftest import LOW_RISK_GOAL, Stack

# The ceiling is 15 billed transitions; the split flow bills five.
MOST_TRANSITIONS_ON_THE_AUTO_PATH = 15
STANDARD_TRANSITIONS_ON_THE_AUTO_PATH = [
    "PlanOrder",
    "CheckCurrentPrices",
    "CheckPolicies",
    "RouteVerdict",
    "RunOrderSteps",
]


def _wait_until_ended(sfn: Any, execution_arn: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while (status := sfn.describe_execution(executionArn=execution_arn)["status"]) == "RUNNING":
        assert time.monotonic() < deadline, "the flow did not end"
        time.sleep(0.1)
    return str(status)


def test_an_auto_approved_goal_bills_five_standard_transitions_and_one_express_run(stack: Stack):
    goal_id = stack.api.submit("user-1", LOW_RISK_GOAL).json()["goalId"]
    goal = stack.api.wait_for(goal_id)
    assert goal["status"] == "COMPLETED" and goal["verdict"]["route"] == "auto"
    assert goal["undoUntil"] is not None  # the window is open ...
    assert [step["action"] for step in goal["steps"]] == [
        "checkout.create",
        "fulfillment.select",
        "payment.complete",
    ]

    sfn = boto3.client("stepfunctions", region_name=REGION)
    (execution,) = stack.executions_named(goal_id)
    arn = execution["executionArn"]
    # ... and no execution waits in it: the order flow has ended with the receipt.
    assert _wait_until_ended(sfn, arn) == "SUCCEEDED"
    entered = state_transitions(sfn, arn)
    assert entered == STANDARD_TRANSITIONS_ON_THE_AUTO_PATH
    assert len(entered) <= MOST_TRANSITIONS_ON_THE_AUTO_PATH

    (steps,) = stack.step_executions(goal_id)
    assert (
        sfn.describe_state_machine(stateMachineArn=stack.local.steps_state_machine_arn)["type"] == "EXPRESS"
    )
    assert steps["status"] == "SUCCEEDED"
    assert state_transitions(sfn, steps["executionArn"]) == [
        "RouteNextStep", "RunCheckoutStep", "RouteNextStep", "RunFulfillmentStep", "RouteNextStep", "RunPaymentStep",
        "RouteNextStep", "ConfirmOrder", "SendReceipt",
    ]  # fmt: skip

    # One order, charged once, and the audit tells the same story.
    ledger = stack.ledger()
    assert len(ledger["orders"]) == 1 and len(ledger["charges"]) == 1 and ledger["refunds"] == []
    audit = stack.api.audit(goal_id)
    assert audit["verification"]["valid"] is True
    events = [record["event"] for record in audit["records"]]
    assert events.count("step.executed") == 3
    assert stack.api.goal(goal_id)["status"] == "COMPLETED"


def test_an_undo_inside_the_window_runs_its_own_short_flow(stack: Stack):
    goal_id = stack.api.submit("user-1", LOW_RISK_GOAL).json()["goalId"]
    assert stack.api.wait_for(goal_id)["status"] == "COMPLETED"
    sfn = boto3.client("stepfunctions", region_name=REGION)
    (execution,) = stack.executions_named(goal_id)
    assert _wait_until_ended(sfn, execution["executionArn"]) == "SUCCEEDED"

    first = stack.api.undo(goal_id)
    second = stack.api.undo(goal_id)
    assert (first.status_code, second.status_code) == (202, 202)
    assert stack.api.wait_for(goal_id, statuses={"UNDONE"})["status"] == "UNDONE"

    undo_runs = [
        run
        for run in sfn.list_executions(stateMachineArn=stack.local.undo_state_machine_arn)["executions"]
        if run["name"].startswith(goal_id)
    ]
    assert [run["name"] for run in undo_runs] == [f"{goal_id}-undo"]
    assert _wait_until_ended(sfn, undo_runs[0]["executionArn"]) == "SUCCEEDED"
    assert state_transitions(sfn, undo_runs[0]["executionArn"]) == ["UndoOrder", "OrderUndone"]
    ledger = stack.ledger()
    assert len(ledger["charges"]) == 1 and len(ledger["refunds"]) == 1
