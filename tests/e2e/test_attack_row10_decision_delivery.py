"""Issue 11, row 10: a recorded decision always reaches the flow.

The decision is recorded before ``SendTaskSuccess``. When that call fails (throttled, a
network blip that outlives botocore's own retries), the decision must still reach the flow:
the desk retries it, and a re-opened link or a repeated POST sends it again; when the flow
has stopped waiting (the token is gone), the approver is told the approval expired before it
reached the order, and the goal ends EXPIRED with nothing bought.

The failures are injected into the api function's Step Functions client, which the handlers
running in this process share: a ``before-call`` hook answers ``SendTaskSuccess`` with a 503
without the request leaving, as a call that exhausted its retries does.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse

from cartpilot.adapters.aws import clients
from cartpilot_local.client import ApprovalLink
from cartpilot_local.resources import table_names
from cartpilot_local.stack import REGION
from cartpilot_local.task_timeouts import time_out_waiting_task
from tests.e2e.conftest import Stack

APPROVAL_GOAL = "Buy me 2 pairs of running shoes, size 42, and gift-wrap them"
NOTHING_BOUGHT = {"orders": [], "charges": [], "refunds": []}
NOT_YET_DELIVERED = "has not reached the order yet"
TOO_LATE = "the approval expired before it reached the order"

_shoppers = itertools.count(301)


@contextmanager
def send_task_success_failing(times: int | None = None) -> Iterator[list[str]]:
    """``SendTaskSuccess`` answers 503 ``times`` times (every time when None); yields the calls seen."""
    seen: list[str] = []

    def unavailable(**_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        seen.append("SendTaskSuccess")
        if times is not None and len(seen) > times:
            return None
        error = {"Code": "ServiceUnavailable", "Message": "Service Unavailable"}
        return (
            AWSResponse("https://states.us-east-1.amazonaws.com/", 503, {}, None),
            {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 503}},
        )

    events = clients.stepfunctions().meta.events
    events.register("before-call.sfn.SendTaskSuccess", unavailable, unique_id="row10-fault")
    try:
        yield seen
    finally:
        events.unregister("before-call.sfn.SendTaskSuccess", unique_id="row10-fault")


def waiting_goal(stack: Stack) -> tuple[str, ApprovalLink]:
    goal_id = stack.api.submit(f"shopper-{next(_shoppers):04d}", APPROVAL_GOAL).json()["goalId"]
    return goal_id, stack.api.wait_for_approval_link(goal_id)


def outcome_notices(stack: Stack, goal_id: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The goal's outcome notices, once there is one."""
    deadline = time.monotonic() + timeout
    while True:
        notices = [m for m in stack.api.outbox() if m.get("goalId") == goal_id and m["kind"] == "outcome"]
        if notices or time.monotonic() > deadline:
            return notices
        time.sleep(0.05)


def task_token(stack: Stack, approval_id: str) -> str:
    table = boto3.resource("dynamodb", region_name=REGION).Table(table_names(stack.local.brand)["goals"])
    item = table.get_item(Key={"pk": f"APPROVAL#{approval_id}"}, ConsistentRead=True)["Item"]
    return str(item["taskToken"])


def test_one_failed_send_task_success_is_retried_and_the_order_is_placed_once(stack: Stack):
    goal_id, link = waiting_goal(stack)

    with send_task_success_failing(times=1) as calls:
        approved = stack.api.decide(link, "approve")
    assert approved.status_code == 200, approved.text
    assert len(calls) == 2

    done = stack.api.wait_for(goal_id)
    assert done["status"] == "COMPLETED"
    ledger = stack.ledger()
    assert len(ledger["orders"]) == 1 and len(ledger["charges"]) == 1 and ledger["refunds"] == []
    assert stack.events(goal_id).count("approval.approved") == 1


def test_a_decision_that_did_not_reach_the_flow_is_sent_again_when_the_link_is_used_again(stack: Stack):
    goal_id, link = waiting_goal(stack)

    with send_task_success_failing():
        approved = stack.api.decide(link, "approve")
        assert approved.status_code == 202, approved.text
        assert NOT_YET_DELIVERED in approved.text
        # While Step Functions keeps failing, a repeated POST records nothing new and says so.
        again = stack.api.decide(link, "approve")
        assert again.status_code == 202 and NOT_YET_DELIVERED in again.text
    assert stack.api.goal(goal_id)["status"] == "AWAITING_APPROVAL"
    assert stack.ledger() == NOTHING_BOUGHT

    # The approver opens the link again (or a mail client re-renders it): the decision goes through.
    reopened = stack.api.open_link(link)
    assert reopened.status_code == 200 and NOT_YET_DELIVERED not in reopened.text
    assert "This order was approved" in reopened.text

    done = stack.api.wait_for(goal_id)
    assert done["status"] == "COMPLETED"
    ledger = stack.ledger()
    assert len(ledger["orders"]) == 1 and len(ledger["charges"]) == 1 and ledger["refunds"] == []
    events = stack.events(goal_id)
    assert events.count("approval.approved") == 1 and "approval.too-late" not in events

    # Sending twice is harmless: a repeated POST only shows the decision, the order stays one.
    replayed = stack.api.decide(link, "approve")
    assert replayed.status_code == 200 and "A decision was already recorded" in replayed.text
    assert len(stack.ledger()["orders"]) == 1


def test_a_decision_whose_flow_stopped_waiting_is_shown_as_expired_and_buys_nothing(stack: Stack):
    goal_id, link = waiting_goal(stack)

    with send_task_success_failing():
        approved = stack.api.decide(link, "approve")
        assert approved.status_code == 202, approved.text
        # The flow's wait times out before the decision gets through (the redelivery sweep's sends
        # fail too): the token is gone.
        assert time_out_waiting_task(task_token(stack, link.approval_id), REGION)

    assert stack.api.wait_for(goal_id)["status"] == "EXPIRED"
    # The shopper's notice is the flow's last act on the way out, after it closed the approval.
    assert [notice["status"] for notice in outcome_notices(stack, goal_id)] == ["EXPIRED"]
    expired = stack.api.goal(goal_id)
    assert expired["status"] == "EXPIRED" and expired["approval"]["status"] == "EXPIRED"
    for response in (stack.api.open_link(link), stack.api.decide(link, "approve")):
        assert response.status_code == 410
        assert TOO_LATE in response.text
    assert stack.ledger() == NOTHING_BOUGHT
    events = stack.events(goal_id)
    assert events.count("approval.approved") == 1
    assert "goal.expired" in events and "execution.started" not in events


def test_a_decision_nobody_comes_back_for_is_redelivered_without_anyone(stack: Stack):
    goal_id, link = waiting_goal(stack)

    with send_task_success_failing() as calls:
        approved = stack.api.decide(link, "approve")
        assert approved.status_code == 202, approved.text
        assert NOT_YET_DELIVERED in approved.text
    # Every send of the request failed; the approver closes the page and never comes back.
    assert len(calls) >= 3
    assert stack.api.goal(goal_id)["status"] == "AWAITING_APPROVAL"

    # The fault clears: the redelivery sweep sends the recorded decision on its own.
    done = stack.api.wait_for(goal_id, timeout=45)
    assert done["status"] == "COMPLETED"
    ledger = stack.ledger()
    assert len(ledger["orders"]) == 1 and len(ledger["charges"]) == 1 and ledger["refunds"] == []
    events = stack.events(goal_id)
    assert events.count("approval.approved") == 1
    assert events.count("approval.redelivered") == 1 and "approval.too-late" not in events
    # Noted once the flow took it, so the flow may have started executing before the note.
    assert events.index("approval.approved") < events.index("approval.redelivered")
