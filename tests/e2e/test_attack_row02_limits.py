"""Issue 11, row 2: the per-day spend and order limits hold however goals interleave.

Before validation reserved against the limits, the counters moved only when an order completed:
sixteen low-risk goals submitted side by side for one shopper all completed (5,664 CNY and 16 orders
against 5,000 CNY and 5 a day), and approvals left pending and approved later all charged. Each case
here races real goals through the local stack and checks what the brand would notice: how many goals
completed, what the merchant charged, and what the audit says.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any

from cartpilot.brands.config import load_brand
from tests.contract.racing import race
from tests.e2e.conftest import LOW_RISK_GOAL, Stack

# About 1,400 CNY each: above the confirmation threshold, so each waits for the shopper.
APPROVAL_GOAL = "Buy me 2 pairs of running shoes, size 42, and gift-wrap them"

# A fresh generated shopper per test: the limits are per user, and no other test orders for these.
_shoppers = itertools.count(301)


def _shopper() -> str:
    return f"shopper-{next(_shoppers):04d}"


def _limits(stack: Stack) -> tuple[int, int]:
    limits = load_brand(stack.local.brand).limits
    return limits.maxOrdersPerDay, limits.perDay.amount_minor


def _charged(stack: Stack) -> tuple[int, int]:
    charges = stack.ledger()["charges"]
    return len(charges), sum(charge["amount"] for charge in charges)


def _settle(stack: Stack, goal_ids: list[str]) -> dict[str, dict[str, Any]]:
    return {goal_id: stack.api.wait_for(goal_id, timeout=180) for goal_id in goal_ids}


def test_sixteen_simultaneous_low_risk_goals_never_exceed_the_daily_limits(stack: Stack):
    max_orders, per_day = _limits(stack)
    user = _shopper()
    submits = [functools.partial(stack.api.submit, user, LOW_RISK_GOAL) for _ in range(16)]
    goal_ids = [response.json()["goalId"] for response in race(submits)]

    goals = _settle(stack, goal_ids)
    completed = [goal for goal in goals.values() if goal["status"] == "COMPLETED"]
    orders, spend = _charged(stack)
    assert len(completed) == orders == max_orders  # every slot used, never one more
    assert spend == sum(goal["plan"]["summary"]["total"]["amount_minor"] for goal in completed)
    assert spend <= per_day
    assert {goal["status"] for goal in goals.values()} == {"COMPLETED", "DENIED"}
    for goal_id, goal in goals.items():
        events = stack.events(goal_id)
        if goal["status"] == "COMPLETED":
            assert "limits.reserved" in events and "order.completed" in events
        else:
            assert "limits.reserved" not in events
            assert "velocity.orders-per-day" in _denial_policies(stack, goal_id)


def _denial_policies(stack: Stack, goal_id: str) -> set[str]:
    records = stack.api.audit(goal_id)["records"]
    validated = [record for record in records if record["event"] == "plan.validated"]
    return {reason["policyId"] for record in validated for reason in record["detail"]["reasons"]}


def test_pending_approvals_approved_together_never_exceed_the_daily_spend(stack: Stack):
    max_orders, per_day = _limits(stack)
    user = _shopper()
    # Submitted side by side: their validations race for the day's room.
    submits = [functools.partial(stack.api.submit, user, APPROVAL_GOAL) for _ in range(6)]
    goal_ids = [response.json()["goalId"] for response in race(submits)]
    waiting = {
        goal_id: stack.api.wait_for(goal_id, {"AWAITING_APPROVAL"}, timeout=120) for goal_id in goal_ids
    }
    pending = [goal_id for goal_id, goal in waiting.items() if goal["status"] == "AWAITING_APPROVAL"]
    held = sum(waiting[goal_id]["plan"]["summary"]["total"]["amount_minor"] for goal_id in pending)
    # Each approval reserved its total when it was asked for: the ones asked for fit the limits together.
    assert 0 < len(pending) < len(goal_ids)
    assert held <= per_day and len(pending) <= max_orders
    for goal_id in set(goal_ids) - set(pending):
        assert waiting[goal_id]["status"] == "DENIED"
        assert "limit.per-day" in _denial_policies(stack, goal_id)

    # Every pending approval is approved at the same moment.
    links = [stack.api.wait_for_approval_link(goal_id) for goal_id in pending]
    decisions = race([functools.partial(stack.api.decide, link, "approve") for link in links])
    assert [response.status_code for response in decisions] == [200] * len(pending), [
        response.text[response.text.find("data-code") :][:200] for response in decisions
    ]

    goals = _settle(stack, pending)
    assert {goal["status"] for goal in goals.values()} == {"COMPLETED"}
    orders, spend = _charged(stack)
    assert orders == len(pending) and spend == held <= per_day


def test_a_rejected_approval_gives_its_reservation_back(stack: Stack):
    _, per_day = _limits(stack)
    user = _shopper()
    first = stack.api.submit(user, APPROVAL_GOAL).json()["goalId"]
    link = stack.api.wait_for_approval_link(first)
    total = stack.api.goal(first)["plan"]["summary"]["total"]["amount_minor"]
    fits = per_day // total  # how many such orders fit in a day
    others = [stack.api.submit(user, APPROVAL_GOAL).json()["goalId"] for _ in range(fits)]
    outcomes = {goal_id: stack.api.wait_for(goal_id, {"AWAITING_APPROVAL"}) for goal_id in others}
    denied = [goal_id for goal_id, goal in outcomes.items() if goal["status"] == "DENIED"]
    assert len(denied) == 1  # the first goal's reservation left room for one fewer

    assert stack.api.decide(link, "reject").status_code == 200
    assert stack.api.wait_for(first)["status"] == "REJECTED"
    assert "limits.released" in stack.events(first)

    again = stack.api.submit(user, APPROVAL_GOAL).json()["goalId"]
    assert stack.api.wait_for(again, {"AWAITING_APPROVAL"})["status"] == "AWAITING_APPROVAL"
    assert _charged(stack) == (0, 0)
    for goal_id in [again, *(set(others) - set(denied))]:
        assert stack.api.decide(stack.api.wait_for_approval_link(goal_id), "reject").status_code == 200
        assert stack.api.wait_for(goal_id)["status"] == "REJECTED"
