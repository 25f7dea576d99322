"""The order flow's cost in state transitions, counted from the execution history as Step Functions
bills them: an auto-approved goal enters at most 15 states, undo window included.

The step loop is one Choice and one Task per step: each connector answers with the plan's next step
(``cartpilot.execution.cursor``), so the flow keeps no cursor of its own to move.
"""

from __future__ import annotations

import json
import time
from typing import Any

import boto3

from cartpilot_local.execution_history import state_transitions
from cartpilot_local.stack import REGION
from cartpilot_local.task_timeouts import time_out_waiting_task
from tests.e2e.conftest import LOW_RISK_GOAL, Stack

MOST_TRANSITIONS_ON_THE_AUTO_PATH = 15


def _wait_for_state(sfn: Any, execution_arn: str, state: str, timeout: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while state not in (entered := state_transitions(sfn, execution_arn)):
        assert time.monotonic() < deadline, f"the flow never entered {state}: {entered}"
        time.sleep(0.1)
    return entered


def _wait_until_ended(sfn: Any, execution_arn: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while (status := sfn.describe_execution(executionArn=execution_arn)["status"]) == "RUNNING":
        assert time.monotonic() < deadline, "the flow did not end"
        time.sleep(0.1)
    return str(status)


def _parked_token(sfn: Any, execution_arn: str) -> str:
    """The task token the undo window's task was started with (from its scheduled parameters)."""
    events = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    scheduled = [
        json.loads(event["taskScheduledEventDetails"]["parameters"])
        for event in events
        if event["type"] == "TaskScheduled"
    ]
    (token,) = [
        params["Payload"]["taskToken"] for params in scheduled if "taskToken" in params.get("Payload", {})
    ]
    return str(token)


def test_an_auto_approved_goal_enters_at_most_fifteen_states(stack: Stack):
    goal_id = stack.api.submit("user-1", LOW_RISK_GOAL).json()["goalId"]
    goal = stack.api.wait_for(goal_id)
    assert goal["status"] == "COMPLETED" and goal["verdict"]["route"] == "auto"
    assert [step["action"] for step in goal["steps"]] == [
        "checkout.create",
        "fulfillment.select",
        "payment.complete",
    ]

    sfn = boto3.client("stepfunctions", region_name=REGION)
    (execution,) = stack.executions_named(goal_id)
    arn = execution["executionArn"]
    _wait_for_state(sfn, arn, "OfferUndo")
    # The undo window (hours on the sandbox brand) ends now, as its timeout would.
    assert time_out_waiting_task(_parked_token(sfn, arn), REGION)
    assert _wait_until_ended(sfn, arn) == "SUCCEEDED"

    entered = state_transitions(sfn, arn)
    assert entered == [
        "PlanOrder", "CheckCurrentPrices", "CheckPolicies",
        "RouteNextStep", "RunCheckoutStep", "RouteNextStep", "RunFulfillmentStep", "RouteNextStep", "RunPaymentStep",
        "RouteNextStep", "ConfirmOrder", "SendReceipt", "IsUndoOffered", "OfferUndo", "CloseUndoWindow",
    ]  # fmt: skip
    assert len(entered) <= MOST_TRANSITIONS_ON_THE_AUTO_PATH

    # One order, charged once, and the audit tells the same story.
    ledger = stack.ledger()
    assert len(ledger["orders"]) == 1 and len(ledger["charges"]) == 1 and ledger["refunds"] == []
    audit = stack.api.audit(goal_id)
    assert audit["verification"]["valid"] is True
    events = [record["event"] for record in audit["records"]]
    assert events.count("step.executed") == 3
    assert stack.api.goal(goal_id)["status"] == "COMPLETED"
