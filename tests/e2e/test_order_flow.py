"""The order flow through the HTTP API of a running local stack, as an API client and an approver use it."""

from __future__ import annotations

from tests.conftest import SEED_GOAL
from tests.e2e.conftest import LOW_RISK_GOAL, Stack


def test_seed_scenario_completes_after_approval(stack: Stack):
    accepted = stack.api.submit("user-1", SEED_GOAL)
    assert accepted.status_code == 202
    goal_id = accepted.json()["goalId"]

    link = stack.api.wait_for_approval_link(goal_id)
    waiting = stack.api.goal(goal_id)
    assert waiting["verdict"]["route"] == "approve"
    assert {r["policyId"] for r in waiting["verdict"]["reasons"]} >= {"recipient.not-home"}

    # A mail scanner opening the link sees the page and changes nothing.
    page = stack.api.open_link(link)
    assert page.status_code == 200 and waiting["plan"]["summary"]["items"][0]["title"] in page.text
    assert stack.api.goal(goal_id)["status"] == "AWAITING_APPROVAL"
    assert stack.ledger()["orders"] == []

    approved = stack.api.decide(link, "approve")
    assert approved.status_code == 200
    done = stack.api.wait_for(goal_id)
    assert done["status"] == "COMPLETED"
    assert [step["action"] for step in done["steps"]] == [
        "checkout.create", "checkout.add_items", "fulfillment.select", "payment.complete",
    ]  # fmt: skip

    ledger = stack.ledger()
    assert len(ledger["orders"]) == 1 and len(ledger["charges"]) == 1 and ledger["refunds"] == []
    assert done["receipt"]["orderId"] == ledger["orders"][0]["id"]
    assert ledger["charges"][0]["amount"] == done["plan"]["summary"]["total"]["amount_minor"]

    audit = stack.api.audit(goal_id)
    assert audit["verification"]["valid"] is True
    events = [record["event"] for record in audit["records"]]
    assert events[0] == "goal.received"
    assert events.index("approval.approved") < events.index("step.executed") < events.index("order.completed")


def test_rejected_plan_places_nothing(stack: Stack):
    goal_id = stack.api.submit("user-1", SEED_GOAL).json()["goalId"]
    link = stack.api.wait_for_approval_link(goal_id)

    rejected = stack.api.decide(link, "reject")
    assert rejected.status_code == 200
    assert stack.api.wait_for(goal_id)["status"] == "REJECTED"

    # A second POST shows the recorded decision and changes nothing.
    again = stack.api.decide(link, "approve")
    assert again.status_code == 200 and "rejected" in again.text
    assert stack.api.goal(goal_id)["status"] == "REJECTED"
    assert stack.ledger() == {"orders": [], "charges": [], "refunds": []}


def test_merchant_failing_at_checkout_completion_is_compensated(stack: Stack):
    stack.inject_fault("POST /checkout-sessions/{id}/complete", "error_500", times=50)
    goal_id = stack.api.submit("user-1", SEED_GOAL).json()["goalId"]
    stack.api.decide(stack.api.wait_for_approval_link(goal_id), "approve")

    goal = stack.api.wait_for(goal_id, timeout=90)
    assert goal["status"] == "COMPENSATED"
    ledger = stack.ledger()
    assert ledger["charges"] == [] and ledger["orders"] == []
    events = [record["event"] for record in stack.api.audit(goal_id)["records"]]
    assert "compensation.completed" in events
    assert stack.api.audit(goal_id)["verification"]["valid"] is True


def test_low_risk_goal_runs_without_approval(stack: Stack):
    goal_id = stack.api.submit("user-1", LOW_RISK_GOAL).json()["goalId"]
    goal = stack.api.wait_for(goal_id)
    assert goal["status"] == "COMPLETED"
    assert goal["verdict"]["route"] == "auto" and goal["approval"] is None
    assert goal["plan"]["summary"]["recipientId"] == "home"
    assert not [
        m for m in stack.api.outbox() if m.get("goalId") == goal_id and m["kind"] == "approval_request"
    ]
    assert len(stack.ledger()["charges"]) == 1


def test_a_plan_the_policies_forbid_is_denied_without_touching_the_merchant(stack: Stack):
    goal_id = stack.api.submit("user-1", "Buy me running shoes size 42 under 100 CNY").json()["goalId"]
    goal = stack.api.wait_for(goal_id)
    assert goal["status"] == "DENIED"
    assert "goal.budget" in {reason["policyId"] for reason in goal["verdict"]["reasons"]}
    assert stack.ledger()["orders"] == []


def test_a_goal_that_cannot_be_planned_fails_with_a_reason(stack: Stack):
    goal_id = stack.api.submit("user-1", "Buy me a unicorn").json()["goalId"]
    goal = stack.api.wait_for(goal_id)
    assert goal["status"] == "FAILED" and goal["reason"]["code"] == "PLAN_NOT_POSSIBLE"
    (failed,) = [r for r in stack.api.audit(goal_id)["records"] if r["event"] == "goal.failed"]
    assert "sells nothing that matches 'unicorn'" in failed["detail"]["reason"]
