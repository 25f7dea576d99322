"""POST /goals: one goal and one execution per Idempotency-Key; bad input changes nothing."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.conftest import LOW_RISK_GOAL, Stack


def _goal_count(stack: Stack) -> int:
    import boto3

    table = boto3.resource("dynamodb").Table(f"cartpilot-{stack.local.brand}-goals")
    return sum(1 for item in table.scan()["Items"] if item["pk"].startswith("GOAL#"))


def test_same_key_same_body_is_one_goal_and_one_execution(stack: Stack):
    key = f"k-{uuid.uuid4()}"
    first = stack.api.submit("user-1", LOW_RISK_GOAL, key=key)
    second = stack.api.submit("user-1", LOW_RISK_GOAL, key=key)
    assert first.status_code == second.status_code == 202
    assert first.json()["goalId"] == second.json()["goalId"]
    goal_id = first.json()["goalId"]
    assert len(stack.executions_named(goal_id)) == 1
    stack.api.wait_for(goal_id)
    assert len(stack.ledger()["charges"]) == 1


def test_same_key_different_body_is_refused(stack: Stack):
    key = f"k-{uuid.uuid4()}"
    first = stack.api.submit("user-1", LOW_RISK_GOAL, key=key)
    before = _goal_count(stack)
    other = stack.api.submit("user-1", "Buy me two pairs of running socks", key=key)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert _goal_count(stack) == before
    stack.api.wait_for(first.json()["goalId"])


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({}, {"userId": "user-1", "goal": LOW_RISK_GOAL}, 400),
        ({"Idempotency-Key": "k"}, "{not json", 422),
        ({"Idempotency-Key": "k"}, {"goal": LOW_RISK_GOAL}, 422),
        ({"Idempotency-Key": "k"}, {"userId": "user-1", "goal": LOW_RISK_GOAL, "admin": True}, 422),
        ({"Idempotency-Key": "k"}, {"userId": "user-1", "goal": LOW_RISK_GOAL, "context": {"tip": 5}}, 422),
        ({"Idempotency-Key": "k"}, {"userId": "user-1", "goal": LOW_RISK_GOAL,
                                    "context": {"budget": {"amount_minor": 1.5, "currency": "CNY"}}}, 422),
        ({"Idempotency-Key": "k"}, {"userId": "nobody", "goal": LOW_RISK_GOAL}, 422),
        ({"Idempotency-Key": "k"}, {"userId": "user-1", "goal": ""}, 422),
    ],
)  # fmt: skip
def test_bad_requests_get_a_clear_error_and_change_nothing(stack: Stack, headers, body, status):
    before = _goal_count(stack)
    if isinstance(body, str):
        response = stack.api.http.post(
            "/goals", content=body, headers={**headers, "Content-Type": "application/json"}
        )
    else:
        response = stack.api.http.post("/goals", json=body, headers=headers)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] and error["message"]
    assert _goal_count(stack) == before


def test_unknown_goal_is_404(stack: Stack):
    response = stack.api.http.get("/goals/g-does-not-exist")
    assert response.status_code == 404 and response.json()["error"]["code"] == "GOAL_NOT_FOUND"


def test_openapi_document_describes_the_api(stack: Stack):
    document = stack.api.http.get("/openapi.json").json()
    assert {"/goals", "/goals/{goal_id}", "/goals/{goal_id}/audit", "/approvals/{approval_id}"} <= set(
        document["paths"]
    )
    # The body of POST /goals: the goal, and optionally its schedule and mandate (tests/e2e/test_schedules.py).
    assert "GoalSubmission" in document["components"]["schemas"]
