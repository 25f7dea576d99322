"""Issue 11, row 6: quantities and recipients are never silently defaulted.

Before the planner read numbers, "20 pairs", "twelve" and "十双" became one item and auto-executed
as a low-risk order, "-1" became 1, and a recipient named in the goal but not on file was ignored:
the order shipped to the shopper's home. Each case here drives the local stack end to end and checks
what a shopper would notice: the goal's status and plan, the merchant's ledger and the audit trail.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Stack

SOCKS_UNIT_PRICE = 5900  # CNY minor units, the sandbox catalog's running socks


def _items(goal: dict) -> list[tuple[str, int]]:
    return [(item["productId"], item["quantity"]) for item in goal["plan"]["summary"]["items"]]


@pytest.mark.parametrize(
    ("text", "quantity"),
    [
        ("Buy me twenty pairs of running socks", 20),
        ("Buy me 12 pairs of running socks", 12),
        ("给我买十双跑步袜", 10),
    ],
)
def test_the_plan_carries_the_quantity_asked_for_and_does_not_auto_execute(
    stack: Stack, text: str, quantity: int
):
    goal_id = stack.api.submit("user-1", text).json()["goalId"]
    stack.api.wait_for_approval_link(goal_id)
    goal = stack.api.goal(goal_id)

    assert goal["status"] == "AWAITING_APPROVAL"  # 10+ pairs cost more than the confirmation threshold
    assert _items(goal) == [("socks-running", quantity)]
    assert stack.ledger()["orders"] == []
    assert "plan.created" in stack.events(goal_id)
    planned = next(r for r in stack.api.audit(goal_id)["records"] if r["event"] == "plan.created")
    assert planned["planHash"] == goal["planHash"]  # the audit vouches for the plan with this quantity


def test_an_approved_quantity_is_what_the_merchant_charges(stack: Stack):
    goal_id = stack.api.submit("user-1", "Buy me twelve pairs of running socks").json()["goalId"]
    link = stack.api.wait_for_approval_link(goal_id)
    assert stack.api.decide(link, "approve").status_code == 200
    goal = stack.api.wait_for(goal_id)

    assert goal["status"] == "COMPLETED"
    total = goal["plan"]["summary"]["total"]["amount_minor"]
    shipping = total - 12 * SOCKS_UNIT_PRICE
    assert 0 <= shipping < SOCKS_UNIT_PRICE
    (charge,) = stack.ledger()["charges"]
    assert charge["amount"] == total


@pytest.mark.parametrize(
    "text",
    [
        "Buy me -1 pairs of running socks",
        "Buy me 25 pairs of running socks",
        "Buy me 0 pairs of running socks",
        "Buy running socks and ship them to my aunt Rosa",
        "get 1,000 pairs of running socks",
        "Buy me 3.5 pairs of running socks",
        "get running socks, ship to 12 Baker Street",
    ],
)
def test_what_cannot_be_planned_exactly_fails_planning_and_buys_nothing(stack: Stack, text: str):
    goal_id = stack.api.submit("user-1", text).json()["goalId"]
    goal = stack.api.wait_for(goal_id)

    assert goal["status"] == "FAILED"
    assert goal["plan"] is None
    assert goal["failure"]
    ledger = stack.ledger()
    assert ledger["orders"] == [] and ledger["charges"] == []
    events = stack.events(goal_id)
    assert events[-1] == "goal.failed"
    assert "plan.created" not in events
    assert not any(event.startswith("step.") for event in events)
