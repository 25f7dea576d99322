"""The approval page shows staff what the order cost to plan, beside its total; the shopper's page does not."""

from __future__ import annotations

import re

import pytest

from cartpilot.approvals.page import render_approval_page
from cartpilot.approvals.staff import STAFF_APPROVER
from cartpilot.kernel.money import Money
from cartpilot.plans.model import Plan, TokenUsage
from tests.conftest import make_plan
from tests.fakes.merchant import FakeMerchant
from tests.unit.stages import Pending, wait_for_approval

MODEL_COST = Money(amount_minor=3, currency="CNY")


def _by_model(plan: Plan) -> Plan:
    """The plan as a model planner made it: qwen-plus, its tokens and their cost."""
    planner = plan.planner.model_copy(
        update={
            "kind": "openai",
            "model": "qwen-plus",
            "usage": TokenUsage(promptTokens=2900, completionTokens=400),
            "estimatedCost": MODEL_COST,
        }
    )
    return plan.model_copy(update={"planner": planner})


def _staff_goal(merchant: FakeMerchant, brand, users, *, model: bool) -> Pending:
    """Running socks in a category the brand sends to staff (alcohol), waiting for staff."""
    socks = merchant.shop.products[2]
    merchant.shop.products[2] = socks.model_copy(
        update={"variants": [socks.variants[0].model_copy(update={"category": "alcohol"})]}
    )
    plan = make_plan(merchant, brand, users, "running socks for me")
    return wait_for_approval(merchant, brand, users, plan.goal, plan=_by_model(plan) if model else plan)


def _planner_cost(html: str) -> str | None:
    match = re.search(r'data-testid="planner-cost">([^<]*)<', html)
    return match.group(1) if match else None


@pytest.mark.parametrize(("model", "shown"), [(True, "0.03 CNY (qwen-plus)"), (False, "no model")])
def test_staff_see_the_planners_model_cost_beside_the_total(merchant, brand, users, model: bool, shown: str):
    pending = _staff_goal(merchant, brand, users, model=model)
    view = pending.desk.open(pending.approval_id, pending.link, staff_member="staff-1")
    assert view.approval.approver == STAFF_APPROVER
    html = render_approval_page(view, brand, action_url=pending.approval_id)
    assert _planner_cost(html) == shown
    total_at, cost_at = html.index('data-testid="total"'), html.index('data-testid="planner-cost"')
    assert 0 < cost_at - total_at < 300, "the model cost sits beside the order's total"


def test_the_shoppers_page_never_shows_the_model_cost(merchant, brand, users, seed_plan: Plan):
    pending = wait_for_approval(merchant, brand, users, seed_plan.goal, plan=_by_model(seed_plan))
    view = pending.desk.open(pending.approval_id, pending.link)
    assert view.approval.approver != STAFF_APPROVER
    html = render_approval_page(view, brand, action_url=pending.approval_id)
    assert _planner_cost(html) is None
    assert "qwen-plus" not in html and "Planning cost" not in html
