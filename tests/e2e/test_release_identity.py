"""Issue 12, rows 4 and 5: every plan and audit record names the release that made it, trails from
before releases were named still verify, and staff (not shoppers) see what a plan cost to make."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from cartpilot import wiring
from cartpilot_local.stack import LocalStack
from tests.e2e.audit_trail import verify_with_cli
from tests.e2e.conftest import Stack

STAFF_GOAL = "Buy me a bottle of wine for me"
APPROVAL_GOAL = "Buy me 2 pairs of running shoes, size 42, and gift-wrap them"
PRINCIPAL = "X-Local-Principal"
PLANNER_COST = re.compile(r'data-testid="planner-cost">([^<]*)<')


def this_release() -> str:
    """The stack's release: computed from the checkout when the stack first wrote a record (as
    ``cartpilot release`` does; tests/unit/test_release.py), kept for the stack's life."""
    release = wiring.release_id()
    assert re.fullmatch(r"rel-[0-9a-f]{12}", release)
    return release


def wait_until_quiet(
    stack: Stack, goal_id: str, last_event: str, timeout: float = 60.0
) -> list[dict[str, Any]]:
    """The goal's records once ``last_event`` is among them (the flow's last write of this phase)."""
    deadline = time.monotonic() + timeout
    while True:
        records: list[dict[str, Any]] = stack.api.audit(goal_id)["records"]
        if any(record["event"] == last_event for record in records):
            return records
        assert time.monotonic() < deadline, f"{goal_id} never recorded {last_event}"
        time.sleep(0.05)


def test_plans_and_records_name_the_release_and_staff_see_the_model_cost(stack: Stack, capsys):
    release = this_release()
    goal_id = stack.api.submit("user-1", STAFF_GOAL).json()["goalId"]
    link = stack.api.wait_for_approval_link(goal_id, audience="staff")

    goal = stack.api.goal(goal_id)
    assert goal["plan"]["release"] == release
    # The plan summary: the order's total beside the planner's model cost (the rules planner: none).
    assert goal["planSummary"] == {
        "total": goal["plan"]["summary"]["total"],
        "plannerCost": {"amount_minor": 0, "currency": goal["plan"]["currency"]},
        "plannerKind": "rules",
        "plannerModel": None,
    }
    params = {"exp": link.exp, "kid": link.kid, "sig": link.sig}
    page = stack.api.http.get(link.url.split("?")[0], params=params, headers={PRINCIPAL: "staff-1"})
    assert page.status_code == 200
    assert PLANNER_COST.findall(page.text) == ["no model"]

    decided = stack.api.http.post(
        link.post_url, data={**params, "decision": "approve"}, headers={PRINCIPAL: "staff-1"}
    )
    assert decided.status_code == 200
    assert stack.api.wait_for(goal_id)["status"] == "COMPLETED"
    stack.wait_until_flow_ended(goal_id)
    records = stack.api.audit(goal_id)["records"]
    assert {record["release"] for record in records} == {release}
    created = next(record for record in records if record["event"] == "plan.created")
    assert created["detail"]["release"] == release
    assert stack.api.audit(goal_id)["verification"]["valid"]
    code, out = verify_with_cli(stack, goal_id, capsys)
    assert code == 0, out


def test_the_shoppers_approval_page_does_not_show_the_model_cost(stack: Stack):
    goal_id = stack.api.submit("user-2", APPROVAL_GOAL).json()["goalId"]
    link = stack.api.wait_for_approval_link(goal_id)
    page = stack.api.open_link(link)
    assert page.status_code == 200 and 'data-testid="total"' in page.text
    assert PLANNER_COST.findall(page.text) == [] and "Planning cost" not in page.text
    assert stack.api.goal(goal_id)["planSummary"]["plannerCost"]["amount_minor"] == 0


def test_a_goal_planned_before_releases_were_named_is_approved_and_verified_after(
    stack: Stack, local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch, capsys
):
    """Code without release ids plans the goal and asks for approval; the release that replaces it
    takes the approval, runs the old plan (its hash unchanged) and continues the same trail."""
    release = this_release()
    with monkeypatch.context() as older_code:
        older_code.setattr(wiring, "release_id", lambda: None)
        older_code.setattr(wiring.audit(), "_release", None)
        goal_id = stack.api.submit("user-3", APPROVAL_GOAL).json()["goalId"]
        link = stack.api.wait_for_approval_link(goal_id)
        before = wait_until_quiet(stack, goal_id, "approval.requested")
        old_plan = stack.api.goal(goal_id)["plan"]
    assert old_plan["release"] is None
    assert {record["release"] for record in before} == {None}

    assert stack.api.decide(link, "approve").status_code == 200
    done = stack.api.wait_for(goal_id)
    requested = next(record for record in before if record["event"] == "approval.requested")
    # The plan that ran is the one approved under the older code: no release, the hash it was given.
    assert done["status"] == "COMPLETED" and done["plan"]["release"] is None
    assert done["planHash"] == requested["planHash"]
    assert len(stack.ledger()["charges"]) == 1
    stack.wait_until_flow_ended(goal_id)
    records = stack.api.audit(goal_id)["records"]
    approved = next(record for record in records if record["event"] == "approval.approved")
    assert approved["release"] == release and records[-1]["release"] == release
    assert records[: len(before)] == before
    audit = stack.api.audit(goal_id)
    assert audit["verification"]["valid"], audit["verification"]["problems"]
    code, out = verify_with_cli(stack, goal_id, capsys)
    assert code == 0, out
