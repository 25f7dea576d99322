"""Issue 11, row 3: an API client acts only for the users the brand lets it, and sees only its own goals.

The sandbox brand has two clients: ``assistant`` (every sandbox user) and ``partner`` (only user-5).
On the local stack the gateway takes the caller from ``X-Local-Principal``, as API Gateway passes on
the IAM principal that signed the request. Each attack asserts the goal's status, the merchant's
ledger and the audit trail.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import httpx

from tests.e2e.audit_trail import wait_for_quiet_trail
from tests.e2e.conftest import LOW_RISK_GOAL, Stack

PRINCIPAL = "X-Local-Principal"


def as_client(stack: Stack, principal: str) -> httpx.Client:
    return httpx.Client(base_url=stack.local.api_url, timeout=30, headers={PRINCIPAL: principal})


def submit(client: httpx.Client, user_id: str, key: str | None = None) -> httpx.Response:
    return client.post(
        "/goals",
        json={"userId": user_id, "goal": LOW_RISK_GOAL},
        headers={"Idempotency-Key": key or f"k-{uuid.uuid4()}"},
    )


def goal_items(stack: Stack) -> list[dict[str, Any]]:
    import boto3

    table = boto3.resource("dynamodb").Table(f"cartpilot-{stack.local.brand}-goals")
    return [item for item in table.scan()["Items"] if item["pk"].startswith("GOAL#")]


def test_another_client_cannot_read_undo_or_audit_a_goal(stack: Stack):
    with as_client(stack, "assistant") as assistant, as_client(stack, "partner") as partner:
        goal_id = submit(assistant, "user-1").json()["goalId"]
        done = stack.api.wait_for(goal_id)
        assert done["status"] == "COMPLETED"
        # The flow still writes as the undo window opens: compare the trail only once it is quiet.
        wait_for_quiet_trail(stack, goal_id)
        audit_before = stack.api.audit(goal_id)["records"]
        unknown = partner.get("/goals/g-does-not-exist")
        assert unknown.status_code == 404

        answers = [
            partner.get(f"/goals/{goal_id}"),
            partner.get(f"/goals/{goal_id}/audit"),
            partner.post(f"/goals/{goal_id}/undo"),
        ]

        # Exactly what an unknown goal gets: nothing tells the partner the goal exists.
        assert [answer.status_code for answer in answers] == [404, 404, 404]
        for answer in answers:
            assert answer.json() == {"error": {"code": "GOAL_NOT_FOUND", "message": f"no goal {goal_id}"}}
        after = stack.api.goal(goal_id)
        assert after["status"] == "COMPLETED"
        assert stack.api.audit(goal_id)["records"] == audit_before
        ledger = stack.ledger()
        assert len(ledger["orders"]) == 1 and len(ledger["charges"]) == 1 and ledger["refunds"] == []
        # The owner still can.
        assert assistant.get(f"/goals/{goal_id}").status_code == 200


def test_a_client_cannot_submit_for_a_user_it_may_not_act_for(stack: Stack):
    before = len(goal_items(stack))
    with as_client(stack, "partner") as partner:
        refused = submit(partner, "user-1")
        unknown_user = submit(partner, "user-nobody")

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "USER_NOT_ALLOWED"
    # The same answer whether or not the user exists: the partner learns nothing about other users.
    assert unknown_user.status_code == 403
    assert len(goal_items(stack)) == before
    assert stack.ledger() == {"orders": [], "charges": [], "refunds": []}


def test_a_client_acts_for_the_users_it_may(stack: Stack):
    with as_client(stack, "partner") as partner:
        accepted = submit(partner, "user-5")
        assert accepted.status_code == 202
        goal_id = accepted.json()["goalId"]
        status = _wait(partner, goal_id)
        assert status["status"] == "COMPLETED" and status["userId"] == "user-5"
        audit = partner.get(f"/goals/{goal_id}/audit").json()
    assert audit["verification"]["valid"] is True, audit["verification"]
    received = audit["records"][0]
    assert received["event"] == "goal.received" and received["detail"]["client"] == "partner"
    ledger = stack.ledger()
    assert len(ledger["orders"]) == 1 and len(ledger["charges"]) == 1
    # The assistant, which may act for user-5 too, still cannot see the partner's goal.
    assert stack.api.http.get(f"/goals/{goal_id}").status_code == 404


def _wait(client: httpx.Client, goal_id: str) -> dict[str, Any]:
    import time

    from cartpilot.goals.lifecycle import SETTLED_STATUSES

    settled = {status.value for status in SETTLED_STATUSES}
    deadline = time.monotonic() + 60
    while True:
        goal: dict[str, Any] = client.get(f"/goals/{goal_id}").json()
        if goal.get("status") in settled or time.monotonic() > deadline:
            return goal
        time.sleep(0.05)


def test_one_key_from_two_clients_is_two_goals_and_a_replay_is_one(stack: Stack):
    key = f"k-{uuid.uuid4()}"
    with as_client(stack, "assistant") as assistant, as_client(stack, "partner") as partner:
        first = submit(assistant, "user-5", key)
        replay = submit(assistant, "user-5", key)
        other = submit(partner, "user-5", key)
        assert first.status_code == replay.status_code == other.status_code == 202
        mine, theirs = first.json()["goalId"], other.json()["goalId"]
        assert replay.json()["goalId"] == mine
        assert mine != theirs
        assert len(stack.executions_named(mine)) == 1 and len(stack.executions_named(theirs)) == 1
        assert _wait(assistant, mine)["status"] == "COMPLETED"
        assert _wait(partner, theirs)["status"] == "COMPLETED"
    assert len(stack.ledger()["charges"]) == 2


def test_goal_ids_cannot_be_computed_from_the_key(stack: Stack):
    key = f"k-{uuid.uuid4()}"
    goal_id = stack.api.submit("user-1", LOW_RISK_GOAL, key=key).json()["goalId"]
    derived = hashlib.sha256(f"{stack.local.brand}\x1fuser-1\x1f{key}".encode()).hexdigest()
    assert goal_id != f"g-{derived[:26]}"
    assert goal_id.startswith("g-") and len(goal_id) == 28
    stack.api.wait_for(goal_id)
