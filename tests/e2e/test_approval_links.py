"""Approval links: nothing but a valid, current link for this approval can decide it."""

from __future__ import annotations

from dataclasses import replace

from tests.conftest import SEED_GOAL
from tests.e2e.conftest import Stack


def test_forged_or_misplaced_links_are_refused_and_change_nothing(stack: Stack):
    goal_id = stack.api.submit("user-1", SEED_GOAL).json()["goalId"]
    link = stack.api.wait_for_approval_link(goal_id)
    other_id = stack.api.submit("user-1", SEED_GOAL).json()["goalId"]
    other = stack.api.wait_for_approval_link(other_id)

    forged = replace(link, sig=link.sig[:-2] + ("AA" if not link.sig.endswith("AA") else "BB"))
    stretched = replace(link, exp=str(int(link.exp) + 3600))
    moved = replace(
        other, url=link.url.replace(link.approval_id, other.approval_id), sig=link.sig, exp=link.exp
    )
    for bad in (forged, stretched, moved):
        assert stack.api.decide(bad, "approve").status_code == 403
        assert (
            stack.api.http.get(
                bad.post_url, params={"exp": bad.exp, "kid": bad.kid, "sig": bad.sig}
            ).status_code
            == 403
        )
    assert stack.api.goal(goal_id)["status"] == "AWAITING_APPROVAL"
    assert stack.api.goal(other_id)["status"] == "AWAITING_APPROVAL"
    assert stack.ledger()["orders"] == []

    for pending in (link, other):
        stack.api.decide(pending, "reject")
    assert stack.api.wait_for(goal_id)["status"] == "REJECTED"


def test_decision_accepts_json_and_rejects_a_bad_decision(stack: Stack):
    goal_id = stack.api.submit("user-1", SEED_GOAL).json()["goalId"]
    link = stack.api.wait_for_approval_link(goal_id)
    assert stack.api.decide(link, "maybe").status_code == 422
    assert stack.api.goal(goal_id)["status"] == "AWAITING_APPROVAL"
    assert stack.api.decide(link, "reject", as_json=True).status_code == 200
    assert stack.api.wait_for(goal_id)["status"] == "REJECTED"
