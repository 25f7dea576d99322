"""Issue 11 row 8: a call outside a function's policy is caught on the local stack, as AWS would refuse it.

Dropping gift-wrap on the approval page makes the api function read the counters table (it
re-validates the reduced plan against the shopper's recent orders); on AWS its role could not, so the
decision was a 502 and the approval stuck, while the local stack, with no IAM, passed. The local stack
now checks every AWS call a handler makes against the function's policy from ``infra/permissions.py``
(the declaration the deployed roles are built from), and refuses an undeclared one with AWS's error.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from cartpilot_local.iam import PolicyEnforcement, acting_as
from cartpilot_local.resources import table_names
from tests.e2e.conftest import Stack

GIFT_WRAPPED_GOAL = "Buy me 2 pairs of running shoes, size 42, and gift-wrap them"
NOTHING_BOUGHT = {"orders": [], "charges": [], "refunds": []}
_shoppers = itertools.count(801)


def enforcement(stack: Stack) -> PolicyEnforcement:
    assert stack.local.iam is not None, "the local stack checks no call against any policy"
    return stack.local.iam


def _refused_since(iam: PolicyEnforcement, before: int) -> list[tuple[str, str, str]]:
    return [(r.function, r.action, r.resource) for r in iam.refusals[before:]]


def _forget_refusals(iam: PolicyEnforcement, before: int) -> None:
    """The refusals this test caused on purpose (the stack fixture fails a test that leaves any)."""
    del iam.refusals[before:]


def test_approving_without_the_gift_wrap_completes_with_the_api_declared_grants(stack: Stack):
    iam = enforcement(stack)
    before = len(iam.refusals)
    goal_id = stack.api.submit(f"shopper-{next(_shoppers):04d}", GIFT_WRAPPED_GOAL).json()["goalId"]
    link = stack.api.wait_for_approval_link(goal_id)
    waiting = stack.api.goal(goal_id)
    (wrap,) = [step for step in waiting["plan"]["steps"] if step.get("optional")]  # the gift-wrap

    fields = {"exp": link.exp, "kid": link.kid, "sig": link.sig, "decision": "approve", "drop": [wrap["id"]]}
    decided = stack.api.http.post(link.post_url, json=fields)

    assert decided.status_code == 200, decided.text
    done = stack.api.wait_for(goal_id)
    assert done["status"] == "COMPLETED"
    assert done["approval"]["dropped"] == [wrap["id"]]
    assert wrap["id"] not in [step["stepId"] for step in done["steps"]]
    ledger = stack.ledger()
    assert len(ledger["orders"]) == 1 and len(ledger["charges"]) == 1 and ledger["refunds"] == []
    assert ledger["charges"][0]["amount"] == done["plan"]["summary"]["total"]["amount_minor"]
    assert (
        done["plan"]["summary"]["total"]["amount_minor"] < waiting["plan"]["summary"]["total"]["amount_minor"]
    )
    events = stack.events(goal_id)
    assert events.index("approval.approved") < events.index("order.completed")
    assert stack.api.audit(goal_id)["verification"]["valid"] is True
    assert _refused_since(iam, before) == []


def test_a_role_without_the_grant_leaves_the_approval_waiting_as_on_aws(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
):
    """The deployment before the fix: the api's role without the counters table."""
    iam = enforcement(stack)
    without_counters = tuple(s for s in iam.policies["api"] if s.resource.value != "counters-table")
    monkeypatch.setattr(iam, "policies", {**iam.policies, "api": without_counters})
    before = len(iam.refusals)
    goal_id = stack.api.submit(f"shopper-{next(_shoppers):04d}", GIFT_WRAPPED_GOAL).json()["goalId"]
    link = stack.api.wait_for_approval_link(goal_id)
    (wrap,) = [s for s in stack.api.goal(goal_id)["plan"]["steps"] if s.get("optional")]

    fields = {"exp": link.exp, "kid": link.kid, "sig": link.sig, "decision": "approve", "drop": [wrap["id"]]}
    decided = stack.api.http.post(link.post_url, json=fields)

    assert decided.status_code >= 500
    counters = table_names(stack.local.brand)["counters"]
    assert ("api", "dynamodb:BatchGetItem", counters) in _refused_since(iam, before)
    assert stack.api.goal(goal_id)["status"] == "AWAITING_APPROVAL"
    assert stack.ledger() == NOTHING_BOUGHT
    assert "approval.approved" not in stack.events(goal_id)
    _forget_refusals(iam, before)
    # The honest way out, with the deployed grants back, so no execution outlives the test.
    monkeypatch.undo()
    assert stack.api.decide(link, "reject").status_code == 200
    assert stack.api.wait_for(goal_id)["status"] == "REJECTED"
    assert stack.ledger() == NOTHING_BOUGHT


@pytest.mark.parametrize(
    ("function", "call", "code"),
    [
        # No role may scan the goals table or rewrite an audit record, whatever its code tries.
        ("catalog", lambda t: t["goals"].scan(), "AccessDeniedException"),
        ("api", lambda t: t["goals"].delete_item(Key={"pk": "GOAL#x"}), "AccessDeniedException"),
        (
            "notify",
            lambda t: t["audit"].update_item(
                Key={"goalId": "g", "seq": 1},
                UpdateExpression="SET detail = :d",
                ExpressionAttributeValues={":d": "x"},
            ),
            "AccessDeniedException",
        ),
        ("planner", lambda t: t["idempotency"].get_item(Key={"id": "x"}), "AccessDeniedException"),
        (
            "catalog",
            lambda t: boto3.client("sns").publish(TopicArn=t["topic"], Message="x"),
            "AuthorizationError",
        ),
    ],
    ids=[
        "catalog-scans-goals",
        "api-deletes-a-goal",
        "notify-rewrites-audit",
        "planner-reads-idempotency",
        "catalog-publishes",
    ],
)
def test_a_call_outside_the_policy_is_refused_as_aws_refuses_it(
    stack: Stack, function: str, call: Callable[[dict[str, Any]], Any], code: str
):
    iam = enforcement(stack)
    before = len(iam.refusals)
    dynamodb = boto3.resource("dynamodb")
    targets = {kind: dynamodb.Table(name) for kind, name in table_names(stack.local.brand).items()}
    audit_before = dynamodb.Table(table_names(stack.local.brand)["audit"]).scan()["Count"]
    with acting_as(function), pytest.raises(ClientError) as refused:
        call({**targets, "topic": stack.local.topic_arn})
    error = refused.value.response["Error"]
    assert error["Code"] == code
    (refusal,) = _refused_since(iam, before)
    assert refusal[0] == function
    assert f"is not authorized to perform: {refusal[1]}" in error["Message"]
    _forget_refusals(iam, before)
    assert dynamodb.Table(table_names(stack.local.brand)["audit"]).scan()["Count"] == audit_before


def test_the_same_calls_are_allowed_to_the_role_that_declares_them(stack: Stack):
    iam = enforcement(stack)
    before = len(iam.refusals)
    goals = boto3.resource("dynamodb").Table(table_names(stack.local.brand)["goals"])
    with acting_as("catalog"):
        assert "Item" not in goals.get_item(Key={"pk": "GOAL#absent"})
    with acting_as("api"):
        assert "Item" not in goals.get_item(Key={"pk": "GOAL#absent"})
    assert _refused_since(iam, before) == []
