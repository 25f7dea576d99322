"""Standing mandates on the running local stack: an occurrence runs on its own only within its mandate."""

from __future__ import annotations

import base64
import itertools
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cartpilot.audit.public_keys import PublishedKeys
from cartpilot.schedules.ap2 import mandate_from_claims, verify_open_mandate
from cartpilot.schedules.mandate import Mandate
from cartpilot_local import cli as local_cli
from tests.e2e.conftest import Stack

# 59.00 CNY with free shipping: below the brand's confirmation threshold, so the policies allow it.
SOCKS_GOAL = "Buy me a pair of running socks and ship them to my home address"
_shoppers = itertools.count(701)


def cny(minor: int) -> dict[str, Any]:
    return {"amount_minor": minor, "currency": "CNY"}


def schedule(stack: Stack, schedule: dict[str, Any], mandate: dict[str, Any]) -> str:
    body = {
        "userId": f"shopper-{next(_shoppers):04d}",
        "goal": SOCKS_GOAL,
        "schedule": schedule,
        "mandate": mandate,
    }
    response = stack.api.http.post("/goals", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
    assert response.status_code == 202, response.text
    schedule_id: str = response.json()["scheduleId"]
    return schedule_id


def occurrence_goal(stack: Stack, schedule_id: str, index: int, timeout: float = 30.0) -> str:
    """The goal id of the schedule's ``index``-th occurrence, once it has fired."""
    deadline = time.monotonic() + timeout
    while True:
        occurrences = stack.api.http.get(f"/schedules/{schedule_id}").json()["occurrences"]
        if len(occurrences) > index and occurrences[index].get("goalId"):
            goal_id: str = occurrences[index]["goalId"]
            return goal_id
        assert time.monotonic() < deadline, f"occurrence {index} of {schedule_id} did not fire"
        time.sleep(0.1)


def soon() -> str:
    return (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0).isoformat()


def test_an_occurrence_within_its_mandate_runs_on_its_own(stack: Stack):
    schedule_id = schedule(stack, {"at": soon()}, {"maxPerOccurrence": cny(10000), "maxTotal": cny(30000)})
    goal_id = occurrence_goal(stack, schedule_id, 0)
    goal = stack.api.wait_for(goal_id)
    assert goal["status"] == "COMPLETED"
    events = stack.events(goal_id)
    assert "mandate.checked" in events and "approval.requested" not in events
    checked = next(r for r in stack.api.audit(goal_id)["records"] if r["event"] == "mandate.checked")
    assert checked["detail"]["within"] is True and checked["detail"]["signature"]["kid"]


def test_an_occurrence_over_its_mandate_waits_for_a_fresh_approval(stack: Stack):
    schedule_id = schedule(stack, {"at": soon()}, {"maxPerOccurrence": cny(3000), "maxTotal": cny(30000)})
    goal_id = occurrence_goal(stack, schedule_id, 0)
    link = stack.api.wait_for_approval_link(goal_id)
    assert stack.api.goal(goal_id)["status"] == "AWAITING_APPROVAL"
    page = stack.api.http.get(link.post_url, params={"exp": link.exp, "kid": link.kid, "sig": link.sig})
    assert 'data-policy="mandate.per-occurrence"' in page.text
    # Nothing was bought while it waits: the order appears only once the shopper approves.
    before = len(stack.ledger()["orders"])
    assert stack.api.decide(link, "approve").status_code == 200
    assert stack.api.wait_for(goal_id)["status"] == "COMPLETED"
    assert len(stack.ledger()["orders"]) == before + 1


def test_the_occurrence_that_would_pass_the_budget_waits_for_approval(stack: Stack):
    # Daily, with room for one pair of socks (59.00) in the whole budget.
    start = soon()
    schedule_id = schedule(
        stack,
        {"rrule": "FREQ=DAILY;COUNT=2", "start": start},
        {"maxPerOccurrence": cny(10000), "maxTotal": cny(10000)},
    )
    first = occurrence_goal(stack, schedule_id, 0)
    assert stack.api.wait_for(first)["status"] == "COMPLETED"
    moved = stack.api.http.post("/_local/clock", json={"advanceSeconds": 86400})
    assert moved.status_code == 200, moved.text
    second = occurrence_goal(stack, schedule_id, 1)
    stack.api.wait_for_approval_link(second)
    goal = stack.api.goal(second)
    assert goal["status"] == "AWAITING_APPROVAL"
    checked = [r for r in stack.api.audit(second)["records"] if r["event"] == "mandate.checked"]
    assert [reason["policyId"] for reason in checked[-1]["detail"]["reasons"]] == ["mandate.budget"]


def test_the_exported_mandate_verifies_with_the_published_keys_and_says_what_was_signed(
    stack: Stack, capsys: pytest.CaptureFixture[str]
):
    limits = {
        "maxPerOccurrence": cny(10000),
        "maxTotal": cny(30000),
        "merchants": ["sandbox-merchant"],
        "categories": ["socks"],
        "description": "running socks every month",
    }
    # The schedules' clock, which other tests on this stack may have moved forward.
    start = (stack.local.schedule_clock.now() + timedelta(days=1)).replace(microsecond=0).isoformat()
    schedule_id = schedule(stack, {"rrule": "FREQ=MONTHLY;COUNT=3", "start": start}, limits)

    exported = stack.api.http.get(f"/schedules/{schedule_id}/mandate")

    assert exported.status_code == 200, exported.text
    body = exported.json()
    assert (body["format"], body["mediaType"], body["scheduleId"]) == (
        "sd-jwt",
        "application/sd-jwt",
        schedule_id,
    )
    published = PublishedKeys.model_validate(stack.api.audit_keys())
    keys = {key.kid: base64.b64decode(key.publicKey) for key in published.keys}
    claims = verify_open_mandate(body["token"], keys)
    assert mandate_from_claims(claims) == Mandate.model_validate(limits)
    assert claims["mandate_ref"]["schedule_id"] == schedule_id
    payment = claims["delegate_payload"][0]
    assert {"type": "payment.agent_recurrence", "frequency": "MONTHLY", "max_occurrences": 3} in payment[
        "constraints"
    ]
    # The hash the token binds to is the one signed at creation (the schedule's audit record).
    created = stack.api.http.get(f"/schedules/{schedule_id}/audit").json()["records"][0]
    assert claims["mandate_ref"]["mandate_hash"] == created["detail"]["mandateHash"]

    # The command line prints the same, verified on this machine.
    assert local_cli.main(["mandate", "export", schedule_id, "--api", stack.api.api_url, "--verify"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert mandate_from_claims(printed) == Mandate.model_validate(limits)

    # Another client sees no such schedule; a schedule without a mandate has none to export.
    partner = stack.api.http.get(
        f"/schedules/{schedule_id}/mandate", headers={"X-Local-Principal": "partner"}
    )
    assert partner.status_code == 404 and partner.json()["error"]["code"] == "SCHEDULE_NOT_FOUND"
    assert (
        local_cli.main(
            ["mandate", "export", schedule_id, "--api", stack.api.api_url, "--principal", "partner"]
        )
        == 1
    )
    created = stack.api.http.post(
        "/goals",
        json={"userId": "user-1", "goal": SOCKS_GOAL, "schedule": {"at": start}},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert created.status_code == 202, created.text
    plain = created.json()["scheduleId"]
    missing = stack.api.http.get(f"/schedules/{plain}/mandate")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "MANDATE_NOT_FOUND"
    for cancelled in (schedule_id, plain):
        assert stack.api.http.delete(f"/schedules/{cancelled}").status_code == 200
