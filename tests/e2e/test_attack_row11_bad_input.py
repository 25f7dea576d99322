"""Issue 11, row 11: bad input is a 4xx with the usual error body, refused before any work.

Deeply nested JSON, integers past Python's digit limit, an expiry of Unicode digits or thousands of
them, and bodies that are not UTF-8 once crashed the api function (502/500). Each is now refused
with a client error and leaves the goal, its audit, the merchant and the flow as they were.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import httpx

from cartpilot_local.client import ApprovalLink
from tests.e2e.conftest import Stack

APPROVAL_GOAL = "Buy me 2 pairs of running shoes, size 42, and gift-wrap them"
NOTHING_BOUGHT = {"orders": [], "charges": [], "refunds": []}
DEEP = "[" * 1000 + "]" * 1000
HUGE_INT = "9" * 4301

_shoppers = itertools.count(301)


def _json_error(response: httpx.Response) -> dict[str, Any]:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"code", "message"} and error["message"]
    return error


def _html_error(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("text/html")
    assert "data-code=" in response.text


def _flow_state(stack: Stack) -> tuple[int, set[str], dict[str, Any]]:
    """What a refused submission must leave alone: the executions, the outbox and the merchant.
    The outbox by the goals it speaks of: earlier tests' goals may still be sent a due notice."""
    import boto3

    executions = boto3.client("stepfunctions").list_executions(
        stateMachineArn=stack.local.state_machine_arn, maxResults=1000
    )["executions"]
    told = {str(message.get("goalId")) for message in stack.api.outbox()}
    return len(executions), told, stack.ledger()


def test_bad_goal_submissions_are_4xx_and_start_nothing(stack: Stack) -> None:
    user = f"shopper-{next(_shoppers):04d}"
    key = str(uuid.uuid4())
    goal = "Buy me a pair of running socks and ship them to my home address"
    before = _flow_state(stack)
    headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
    bodies = [
        # JSON nested 1,000 deep inside the context.
        f'{{"userId": "{user}", "goal": "{goal}", "context": {{"recipient": {DEEP}}}}}'.encode(),
        # An integer past Python's int max str digits (4,300).
        f'{{"userId": "{user}", "goal": "{goal}", "context": {{"budget": {{"amount_minor": {HUGE_INT}, "currency": "CNY"}}}}}}'.encode(),
        # A budget no store can hold (DynamoDB numbers have 38 digits).
        f'{{"userId": "{user}", "goal": "{goal}", "context": {{"budget": {{"amount_minor": {"9" * 40}, "currency": "CNY"}}}}}}'.encode(),
        # Not UTF-8.
        f'{{"userId": "{user}", "goal": "'.encode() + b"\xff\xfe socks" + b'"}',
    ]
    for body in bodies:
        _json_error(stack.api.http.post("/goals", content=body, headers=headers))
    assert _flow_state(stack) == before

    # The key was never used: the same key with a good body starts the goal.
    accepted = stack.api.submit(user, goal, key=key)
    assert accepted.status_code == 202
    assert stack.api.wait_for(accepted.json()["goalId"])["status"] == "COMPLETED"


def _waiting_goal(stack: Stack) -> tuple[str, ApprovalLink]:
    goal_id = stack.api.submit(f"shopper-{next(_shoppers):04d}", APPROVAL_GOAL).json()["goalId"]
    return goal_id, stack.api.wait_for_approval_link(goal_id)


def test_bad_approval_requests_are_4xx_pages_and_decide_nothing(stack: Stack) -> None:
    goal_id, link = _waiting_goal(stack)
    before = stack.api.goal(goal_id), stack.api.audit(goal_id)["records"]
    params = {"kid": link.kid, "sig": link.sig}

    for exp in ("²", "١٢٣", "9" * 5000):
        _html_error(stack.api.http.get(link.post_url, params={**params, "exp": exp}))
        _html_error(stack.api.http.post(link.post_url, data={**params, "exp": exp, "decision": "approve"}))
    json_bodies = [
        f'{{"exp": "{link.exp}", "kid": "{link.kid}", "sig": "{link.sig}", "decision": "approve", "x": {DEEP}}}',
        f'{{"exp": {HUGE_INT}, "kid": "{link.kid}", "sig": "{link.sig}", "decision": "approve"}}',
        DEEP,
    ]
    for body in json_bodies:
        response = stack.api.http.post(
            link.post_url, content=body.encode(), headers={"Content-Type": "application/json"}
        )
        _html_error(response)
    form = f"exp={link.exp}&kid={link.kid}&sig={link.sig}&decision=approve&phrase=".encode() + b"\xff\xfe"
    _html_error(
        stack.api.http.post(
            link.post_url, content=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
    )

    assert (stack.api.goal(goal_id), stack.api.audit(goal_id)["records"]) == before
    assert stack.ledger() == NOTHING_BOUGHT
    assert stack.api.decide(link, "reject").status_code == 200
    assert stack.api.wait_for(goal_id)["status"] == "REJECTED"
    assert stack.ledger() == NOTHING_BOUGHT
    decisions = [
        event
        for event in stack.events(goal_id)
        if event.startswith("approval.") and event != "approval.requested"
    ]
    assert decisions == ["approval.rejected"]


def test_other_content_types_and_unknown_routes_get_the_usual_error_body(stack: Stack) -> None:
    before = _flow_state(stack)
    body = b'{"userId": "user-1", "goal": "Buy me a pair of running socks"}'
    for content_type in ("text/plain", "application/xml", "application/octet-stream"):
        response = stack.api.http.post(
            "/goals",
            content=body,
            headers={"Idempotency-Key": str(uuid.uuid4()), "Content-Type": content_type},
        )
        assert response.status_code == 415
        assert _json_error(response)["code"] == "UNSUPPORTED_MEDIA_TYPE"
    for path in ("/goals/a/b/c", "/no-such-route", "/goals/%E2%80%AE/x"):
        response = stack.api.http.get(path)
        assert response.status_code == 404
        assert _json_error(response)["code"] == "NOT_FOUND"
    page = stack.api.http.get("/approvals/a-1/extra/parts")
    assert page.status_code == 404
    _html_error(page)
    assert _flow_state(stack) == before
