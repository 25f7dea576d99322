"""Issue 13, row 4: scheduled and recurring goals on the local stack.

A schedule's occurrences fire through the in-process scheduler (every second, as the occurrences
function, under its own IAM policy). The schedules read their own clock, which a test moves forward
with ``POST /_local/clock``; a test that must know a sweep has run since invokes the occurrences
function itself (what EventBridge Scheduler does), so nothing waits on a timer.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import boto3
import httpx
import pytest

from tests.e2e.conftest import LOW_RISK_GOAL, Stack

DAY = 24 * 3600
MANDATE = {
    "maxPerOccurrence": {"amount_minor": 100_000, "currency": "CNY"},
    "maxTotal": {"amount_minor": 1_000_000, "currency": "CNY"},
}


def iso(moment: datetime) -> str:
    return moment.isoformat()


def schedule_now(stack: Stack) -> datetime:
    return stack.local.schedule_clock.now()


def create(
    stack: Stack,
    schedule: dict[str, Any],
    *,
    mandate: dict[str, Any] | None = None,
    principal: str = "assistant",
    user: str = "user-1",
    key: str | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {"userId": user, "goal": LOW_RISK_GOAL, "schedule": schedule}
    if mandate is not None:
        body["mandate"] = mandate
    return stack.api.http.post(
        "/goals",
        json=body,
        headers={"Idempotency-Key": key or f"k-{uuid.uuid4()}", "X-Local-Principal": principal},
    )


def schedule_of(stack: Stack, schedule_id: str, principal: str = "assistant") -> httpx.Response:
    return stack.api.http.get(f"/schedules/{schedule_id}", headers={"X-Local-Principal": principal})


def advance(stack: Stack, seconds: float) -> None:
    response = stack.api.http.post("/_local/clock", json={"advanceSeconds": seconds})
    assert response.status_code == 200, response.text


def sweep() -> dict[str, Any]:
    """Runs the occurrences function once, as EventBridge Scheduler invokes it; returns its report."""
    response = boto3.client("lambda").invoke(FunctionName="occurrences", Payload=b"{}")
    assert "FunctionError" not in response, response["Payload"].read()
    report: dict[str, Any] = json.loads(response["Payload"].read())
    return report


def wait_for_occurrences(stack: Stack, schedule_id: str, count: int, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view: dict[str, Any] = schedule_of(stack, schedule_id).json()
        if len([o for o in view["occurrences"] if o.get("goalId")]) >= count:
            return view
        if time.monotonic() > deadline:
            raise AssertionError(f"schedule {schedule_id} has {view['occurrences']} after {timeout:.0f}s")
        time.sleep(0.2)


def stored_rows() -> tuple[int, int]:
    """How many schedules and goals are stored."""
    dynamodb = boto3.resource("dynamodb")
    schedules = dynamodb.Table("cartpilot-sandbox-schedules").scan(Select="COUNT")["Count"]
    goals = [
        item
        for item in dynamodb.Table("cartpilot-sandbox-goals").scan()["Items"]
        if item["pk"].startswith("GOAL#")
    ]
    return schedules, len(goals)


def test_a_one_off_schedule_a_few_seconds_ahead_produces_a_completed_goal(stack: Stack):
    due = schedule_now(stack) + timedelta(seconds=3)

    response = create(stack, {"at": iso(due)})

    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "SCHEDULED" and accepted["scheduleId"].startswith("s-")
    schedule_id = accepted["scheduleId"]
    assert schedule_of(stack, schedule_id).json()["occurrences"] == []
    view = wait_for_occurrences(stack, schedule_id, 1)
    [occurrence] = view["occurrences"]
    goal = stack.api.wait_for(occurrence["goalId"])
    assert goal["status"] == "COMPLETED"
    assert goal["scheduleId"] == schedule_id
    assert view["status"] == "FINISHED" and view["nextAt"] is None
    ledger = stack.ledger()
    assert len(ledger["orders"]) == 1 and len(ledger["charges"]) == 1
    assert stack.events(goal["goalId"])[:1] == ["goal.received"]
    assert "scheduleId" in stack.api.audit(goal["goalId"])["records"][0]["detail"]


def test_a_monthly_recurrence_with_a_mandate_runs_its_occurrences_as_the_clock_advances(stack: Stack):
    start = schedule_now(stack) + timedelta(days=1)
    response = create(stack, {"rrule": "FREQ=MONTHLY;COUNT=2", "start": iso(start)}, mandate=MANDATE)
    assert response.status_code == 202, response.text
    schedule_id = response.json()["scheduleId"]
    view = schedule_of(stack, schedule_id).json()
    assert view["mandate"]["maxTotal"] == MANDATE["maxTotal"] and view["mandate"]["signatureKeyId"]
    assert view["nextAt"] is not None and view["occurrences"] == []

    advance(stack, DAY + 60)
    first = wait_for_occurrences(stack, schedule_id, 1)
    assert stack.api.wait_for(first["occurrences"][0]["goalId"])["status"] == "COMPLETED"
    assert first["status"] == "SCHEDULED" and first["nextAt"] > first["occurrences"][0]["at"]

    advance(stack, 32 * DAY)
    second = wait_for_occurrences(stack, schedule_id, 2)
    goal_ids = [o["goalId"] for o in second["occurrences"]]
    assert len(set(goal_ids)) == 2
    assert stack.api.wait_for(goal_ids[1])["status"] == "COMPLETED"
    assert [o["status"] for o in second["occurrences"]] == ["STARTED", "STARTED"]
    assert second["status"] == "FINISHED"
    assert len(stack.ledger()["orders"]) == 2
    events = [record["event"] for record in stack.api.audit(goal_ids[1])["records"]]
    assert "goal.received" in events


def test_a_cancelled_schedule_fires_nothing_after_cancel(stack: Stack):
    start = schedule_now(stack) + timedelta(days=1)
    schedule_id = create(stack, {"rrule": "FREQ=DAILY;COUNT=3", "start": iso(start)}, mandate=MANDATE).json()[
        "scheduleId"
    ]
    _, goals_before = stored_rows()

    cancelled = stack.api.http.delete(f"/schedules/{schedule_id}")
    again = stack.api.http.delete(f"/schedules/{schedule_id}")

    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
    assert again.status_code == 200 and again.json()["status"] == "CANCELLED"
    advance(stack, 4 * DAY)
    sweep()
    view = schedule_of(stack, schedule_id).json()
    assert view["status"] == "CANCELLED" and view["occurrences"] == [] and view["nextAt"] is None
    assert stored_rows()[1] == goals_before
    assert stack.ledger()["orders"] == []
    resumed = stack.api.http.post(f"/schedules/{schedule_id}/resume")
    assert resumed.status_code == 409 and resumed.json()["error"]["code"] == "SCHEDULE_NOT_ACTIVE"


def test_a_paused_schedule_skips_what_falls_while_paused_and_resumes_after(stack: Stack):
    start = schedule_now(stack) + timedelta(days=1)
    schedule_id = create(stack, {"rrule": "FREQ=DAILY;COUNT=3", "start": iso(start)}, mandate=MANDATE).json()[
        "scheduleId"
    ]

    paused = stack.api.http.post(f"/schedules/{schedule_id}/pause")
    assert paused.status_code == 200 and paused.json()["status"] == "PAUSED"
    assert stack.api.http.post(f"/schedules/{schedule_id}/pause").json()["status"] == "PAUSED"
    advance(stack, DAY + 60)
    sweep()
    assert schedule_of(stack, schedule_id).json()["occurrences"] == []
    assert stack.ledger()["orders"] == []

    resumed = stack.api.http.post(f"/schedules/{schedule_id}/resume")

    assert resumed.status_code == 200
    view = resumed.json()
    assert view["status"] == "SCHEDULED"
    assert [(o["status"], o.get("goalId")) for o in view["occurrences"]] == [("SKIPPED", None)]
    assert view["nextAt"] > view["occurrences"][0]["at"]
    advance(stack, DAY)
    fired = wait_for_occurrences(stack, schedule_id, 1)
    goal_id = fired["occurrences"][1]["goalId"]
    assert stack.api.wait_for(goal_id)["status"] == "COMPLETED"
    assert len(stack.ledger()["orders"]) == 1
    stack.api.http.delete(f"/schedules/{schedule_id}")


def test_another_clients_schedule_is_not_found(stack: Stack):
    start = schedule_now(stack) + timedelta(days=1)
    schedule_id = create(
        stack, {"rrule": "FREQ=WEEKLY;COUNT=2", "start": iso(start)}, mandate=MANDATE
    ).json()["scheduleId"]
    partner = {"X-Local-Principal": "partner"}
    answers = [
        stack.api.http.get(f"/schedules/{schedule_id}", headers=partner),
        stack.api.http.post(f"/schedules/{schedule_id}/pause", headers=partner),
        stack.api.http.post(f"/schedules/{schedule_id}/resume", headers=partner),
        stack.api.http.delete(f"/schedules/{schedule_id}", headers=partner),
        stack.api.http.get("/schedules/s-00000000000000000000000000", headers=partner),
    ]

    assert [answer.status_code for answer in answers] == [404] * 5
    assert {answer.json()["error"]["code"] for answer in answers} == {"SCHEDULE_NOT_FOUND"}
    assert schedule_of(stack, schedule_id).json()["status"] == "SCHEDULED"
    # The partner may act only for user-5: a schedule for user-1 is refused like a goal.
    refused = create(stack, {"at": iso(start)}, principal="partner")
    assert refused.status_code == 403
    stack.api.http.delete(f"/schedules/{schedule_id}")


def test_the_same_key_finds_the_same_schedule_and_another_body_is_refused(stack: Stack):
    at = iso(schedule_now(stack) + timedelta(days=2))
    first = create(stack, {"at": at}, key="schedule-replay")
    replay = create(stack, {"at": at}, key="schedule-replay")
    other = create(stack, {"at": iso(schedule_now(stack) + timedelta(days=3))}, key="schedule-replay")

    assert first.status_code == replay.status_code == 202
    assert replay.json()["scheduleId"] == first.json()["scheduleId"]
    assert other.status_code == 422
    stack.api.http.delete(f"/schedules/{first.json()['scheduleId']}")


@pytest.mark.parametrize(
    ("schedule", "mandate"),
    [
        pytest.param({"at": "2030-01-01T09:00:00"}, None, id="time-without-offset"),
        pytest.param({"at": "2020-01-01T09:00:00Z"}, None, id="in-the-past"),
        pytest.param({"at": "2099-01-01T09:00:00Z"}, None, id="beyond-five-years"),
        pytest.param({"rrule": "FREQ=HOURLY;COUNT=3", "start": "+1d"}, MANDATE, id="hourly"),
        pytest.param({"rrule": "FREQ=DAILY;BYHOUR=8,20;COUNT=4", "start": "+1d"}, MANDATE, id="twice-a-day"),
        pytest.param({"rrule": "FREQ=MONTHLY", "start": "+1d"}, MANDATE, id="unbounded"),
        pytest.param({"rrule": "FREQ=DAILY;COUNT=500", "start": "+1d"}, MANDATE, id="too-many"),
        pytest.param(
            {"rrule": "FREQ=MONTHLY;COUNT=2", "start": "+1d"}, None, id="recurrence-without-mandate"
        ),
        pytest.param(
            {"rrule": "FREQ=MONTHLY;COUNT=2\nDTSTART:20300101T000000Z", "start": "+1d"},
            MANDATE,
            id="two-lines",
        ),
        pytest.param({"at": "+1d", "rrule": "FREQ=DAILY;COUNT=2", "start": "+1d"}, None, id="both-forms"),
        pytest.param({"at": "+1d", "every": "day"}, None, id="unknown-field"),
        pytest.param(
            {"rrule": "FREQ=MONTHLY;COUNT=2", "start": "+1d"},
            {**MANDATE, "maxPerOccurrence": {"amount_minor": 2_000_000, "currency": "CNY"}},
            id="per-occurrence-above-total",
        ),
        pytest.param(
            {"rrule": "FREQ=MONTHLY;COUNT=2", "start": "+1d"},
            {**MANDATE, "merchants": ["not-our-merchant"]},
            id="unknown-merchant",
        ),
    ],
)
def test_a_bad_schedule_is_refused_and_stores_nothing(
    stack: Stack, schedule: dict[str, Any], mandate: dict[str, Any] | None
):
    tomorrow = iso(schedule_now(stack) + timedelta(days=1))
    schedule = {name: tomorrow if value == "+1d" else value for name, value in schedule.items()}
    before = stored_rows()

    response = create(stack, schedule, mandate=mandate)

    assert response.status_code in (400, 422), response.text
    assert set(response.json()["error"]) == {"code", "message"}
    assert stored_rows() == before


def test_a_mandate_without_a_schedule_is_refused(stack: Stack):
    before = stored_rows()
    response = stack.api.http.post(
        "/goals",
        json={"userId": "user-1", "goal": LOW_RISK_GOAL, "mandate": MANDATE},
        headers={"Idempotency-Key": f"k-{uuid.uuid4()}"},
    )
    assert response.status_code == 422
    assert stored_rows() == before


def test_the_local_clock_refuses_going_back(stack: Stack):
    for body in ({"advanceSeconds": -5}, {"advanceSeconds": "soon"}, {}, [1]):
        assert stack.api.http.post("/_local/clock", json=body).status_code == 400


def test_the_openapi_document_describes_schedules_and_mandates(stack: Stack):
    document = stack.api.http.get("/openapi.json").json()

    schemas = document["components"]["schemas"]
    body = schemas["GoalSubmission"]["properties"]
    assert {"userId", "goal", "context", "schedule", "mandate"} <= set(body)
    assert {"at", "rrule", "start", "until"} <= set(schemas["ScheduleSpec"]["properties"])
    assert {"maxPerOccurrence", "maxTotal"} <= set(schemas["Mandate"]["required"])
    for path in (
        "/schedules/{schedule_id}",
        "/schedules/{schedule_id}/pause",
        "/schedules/{schedule_id}/resume",
    ):
        assert path in document["paths"]
    assert "delete" in document["paths"]["/schedules/{schedule_id}"]
    answers = json.dumps(document["paths"]["/goals"]["post"]["responses"]["202"])
    assert "ScheduleAccepted" in answers and "GoalAccepted" in answers


def test_a_shoppers_schedules_list_this_clients_only_and_show_on_the_shoppers_page(stack: Stack):
    # user-5: the one shopper both the assistant and the partner may act for.
    later = schedule_now(stack) + timedelta(days=3)
    weekly = create(
        stack, {"rrule": "FREQ=WEEKLY;COUNT=4", "start": iso(later)}, mandate=MANDATE, user="user-5"
    ).json()["scheduleId"]
    once = create(stack, {"at": iso(later + timedelta(hours=1))}, user="user-5").json()["scheduleId"]
    partners = create(stack, {"at": iso(later)}, user="user-5", principal="partner").json()["scheduleId"]
    assert stack.api.http.delete(f"/schedules/{once}").status_code == 200

    def listed(user: str, principal: str = "assistant") -> httpx.Response:
        return stack.api.http.get(
            "/schedules", params={"userId": user}, headers={"X-Local-Principal": principal}
        )

    mine = listed("user-5")
    assert mine.status_code == 200, mine.text
    assert [(s["scheduleId"], s["status"]) for s in mine.json()["schedules"]] == [
        (once, "CANCELLED"),
        (weekly, "SCHEDULED"),
    ]
    assert mine.json()["schedules"][1]["mandate"]["signatureKeyId"]
    assert [s["scheduleId"] for s in listed("user-5", "partner").json()["schedules"]] == [partners]
    assert listed("user-2").json()["schedules"] == []
    # A user the client may not act for is refused, whether or not that user has schedules.
    refused = listed("user-1", "partner")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "USER_NOT_ALLOWED"
    assert stack.api.http.get("/schedules").status_code == 422
    assert listed("user 5; drop").status_code == 422

    # The shopper's page of any goal of theirs lists their schedules made through the same client.
    goal_id = stack.api.submit("user-5", LOW_RISK_GOAL).json()["goalId"]
    assert stack.api.wait_for(goal_id)["status"] == "COMPLETED"
    page = stack.api.http.get(stack.api.goal(goal_id)["viewUrl"])
    assert page.status_code == 200
    assert f'data-schedule-id="{weekly}"' in page.text and f'data-schedule-id="{once}"' in page.text
    assert f'data-schedule-id="{partners}"' not in page.text
    for schedule_id, principal in ((weekly, "assistant"), (partners, "partner")):
        stack.api.http.delete(f"/schedules/{schedule_id}", headers={"X-Local-Principal": principal})


def test_the_schedules_audit_trail_holds_the_mandates_signature_and_every_change(stack: Stack):
    start = schedule_now(stack) + timedelta(days=1)
    schedule_id = create(
        stack, {"rrule": "FREQ=MONTHLY;COUNT=3", "start": iso(start)}, mandate=MANDATE
    ).json()["scheduleId"]
    assert stack.api.http.post(f"/schedules/{schedule_id}/pause").status_code == 200

    audit = stack.api.http.get(f"/schedules/{schedule_id}/audit")

    assert audit.status_code == 200, audit.text
    trail = audit.json()
    assert trail["scheduleId"] == schedule_id
    assert [r["event"] for r in trail["records"]] == ["schedule.created", "schedule.paused"]
    created = trail["records"][0]["detail"]
    view = schedule_of(stack, schedule_id).json()
    assert created["signature"]["kid"] == view["mandate"]["signatureKeyId"]
    assert created["mandateHash"] and created["mandate"]["maxTotal"] == MANDATE["maxTotal"]
    assert trail["verification"]["valid"] is True and len(trail["anchors"]) == 2
    # The same client authorization as the schedule itself.
    answer = stack.api.http.get(f"/schedules/{schedule_id}/audit", headers={"X-Local-Principal": "partner"})
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "SCHEDULE_NOT_FOUND"
    assert stack.api.http.get("/schedules/s-00000000000000000000000000/audit").status_code == 404
    stack.api.http.delete(f"/schedules/{schedule_id}")
