"""Issue 11, row 9: one rule for price drift, from the price check to the payment.

Before, a price move inside the brand's tolerance passed the drift check before each step, but the
payment compared exact totals: the goal was compensated and nobody was asked. Now the same rule
decides both: within tolerance the order proceeds at the merchant's price and the audit names the
old and new totals; beyond it the shopper is asked again.
"""

from __future__ import annotations

import itertools
from typing import Any

from cartpilot.brands.config import load_brand
from tests.e2e.conftest import Stack

# Above the confirmation threshold: the approval is a window in which the merchant moves a price.
APPROVAL_GOAL = "Buy me 2 pairs of running shoes, size 42, and gift-wrap them"

_shoppers = itertools.count(401)


def _shoes(goal: dict[str, Any]) -> dict[str, Any]:
    items: list[dict[str, Any]] = goal["plan"]["summary"]["items"]
    return next(item for item in items if item["quantity"] == 2)


def _waiting(stack: Stack) -> tuple[str, Any, dict[str, Any]]:
    goal_id = stack.api.submit(f"shopper-{next(_shoppers):04d}", APPROVAL_GOAL).json()["goalId"]
    link = stack.api.wait_for_approval_link(goal_id)
    return goal_id, link, stack.api.goal(goal_id)


def test_a_move_within_tolerance_completes_at_the_merchants_price_and_says_so(stack: Stack):
    tolerance = load_brand(stack.local.brand).priceTolerancePercent
    goal_id, link, goal = _waiting(stack)
    shoes = _shoes(goal)
    approved_total = goal["plan"]["summary"]["total"]["amount_minor"]
    unit = shoes["unitPrice"]["amount_minor"]
    moved = unit + unit * tolerance // 100  # the most the brand tolerates, upwards
    stack.reprice(shoes["itemId"], moved)

    assert stack.api.decide(link, "approve").status_code == 200
    done = stack.api.wait_for(goal_id)

    new_total = approved_total + 2 * (moved - unit)
    assert done["status"] == "COMPLETED"
    (charge,) = stack.ledger()["charges"]
    assert charge["amount"] == new_total
    assert done["receipt"]["total"]["amount_minor"] == new_total
    records = stack.api.audit(goal_id)["records"]
    (accepted,) = [record for record in records if record["event"] == "execution.price-accepted"]
    assert accepted["detail"]["approvedTotal"]["amount_minor"] == approved_total
    assert accepted["detail"]["merchantTotal"]["amount_minor"] == new_total
    assert accepted["detail"]["tolerancePercent"] == tolerance
    assert "compensation.completed" not in stack.events(goal_id)


def test_a_move_beyond_tolerance_asks_again_and_charges_nothing(stack: Stack):
    tolerance = load_brand(stack.local.brand).priceTolerancePercent
    goal_id, link, goal = _waiting(stack)
    shoes = _shoes(goal)
    unit = shoes["unitPrice"]["amount_minor"]
    stack.reprice(shoes["itemId"], unit + unit * (tolerance + 3) // 100)

    assert stack.api.decide(link, "approve").status_code == 200
    again = stack.api.wait_for_approval_link(goal_id, newer_than=link)

    assert stack.ledger()["charges"] == []
    events = stack.events(goal_id)
    assert "execution.price-drift" in events and "execution.price-accepted" not in events
    assert stack.api.goal(goal_id)["status"] == "AWAITING_APPROVAL"
    assert stack.api.decide(again, "reject").status_code == 200
    assert stack.api.wait_for(goal_id)["status"] == "REJECTED"
    assert stack.ledger()["charges"] == []
