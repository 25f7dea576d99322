"""The merchant's checkout is the plan's record: the tax it charges and the titles it gives.

A merchant written from the UCP spec may charge tax (checkout.md totals, type "tax") and call an
item something other than the product feed does; a plan made from its pricing session must still
be validated, paid and completed for exactly what the session asks.
"""

from __future__ import annotations

import dataclasses

from cartpilot.approvals.page import render_approval_page
from cartpilot.commerce.feed import FeedCatalog
from cartpilot.goals.model import GoalStatus, PriceCheck
from cartpilot.planning.rules import RulesPlanner
from cartpilot.plans.model import PaymentCompleteStep, Plan
from cartpilot.plans.pricing import snapshot_current_prices
from cartpilot.plans.validation import ValidationInput, validate_plan
from cartpilot.plans.verdicts import RiskTier, Verdict
from tests.conftest import SEED_GOAL, handler_chooser, make_plan, planning_request
from tests.fakes import TODAY, FakeMerchant, cny
from tests.fakes.merchant import FakeShop
from tests.unit.stages import OrderFlow, Pending, order_flow
from tests.unit.test_approval_desk_page import text_of


def price_check(flow: OrderFlow, feed: FeedCatalog | None = None) -> PriceCheck:
    """The price-check stage against the flow's merchant (its pricing session), described by ``feed``."""
    return snapshot_current_prices(
        flow.goal_id,
        flow.plan.planId,
        store=flow.ledger.store,
        merchants=flow.merchants,
        products=(lambda merchant_id: feed) if feed is not None else None,
    )


def verdict(flow: OrderFlow, snapshot: PriceCheck) -> Verdict:
    profile = flow.users.get(flow.plan.userId)
    assert profile is not None
    return validate_plan(
        ValidationInput(plan=flow.plan, brand=flow.brand, profile=profile, current_items=snapshot.items,
                        today=TODAY, price_check=snapshot)
    )  # fmt: skip


def payment(plan: Plan) -> PaymentCompleteStep:
    return next(step for step in plan.steps if isinstance(step, PaymentCompleteStep))


# --- tax ------------------------------------------------------------------------------------------


def test_a_merchant_that_charges_tax_is_planned_validated_and_paid_with_it(brand, users):
    merchant = FakeMerchant(shop=FakeShop(tax=cny("7.67")))
    plan = make_plan(merchant, brand, users, "running socks size M for me")

    summary = plan.summary
    assert (summary.subtotal, summary.tax, summary.shipping.price) == (cny("59.00"), cny("7.67"), cny("0.00"))
    assert summary.total == cny("66.67")
    assert (payment(plan).args.amount, payment(plan).estimatedCost) == (cny("66.67"), cny("66.67"))
    assert "including 7.67 CNY tax" in payment(plan).justification

    flow = order_flow(merchant, brand, users, plan, route="auto")
    checked = verdict(flow, price_check(flow))
    assert checked.tier is not RiskTier.DENY, [reason.message for reason in checked.reasons]

    flow.completed()
    assert flow.goal().status is GoalStatus.COMPLETED
    assert [total for _, total in flow.shop.charges] == [summary.total]


def test_a_plan_without_tax_has_none_and_totals_as_before(merchant, brand, users):
    plan = make_plan(merchant, brand, users, "running socks size M for me")
    assert (plan.summary.tax, plan.summary.total) == (None, cny("59.00"))
    assert "tax" not in payment(plan).justification


def test_a_total_that_leaves_out_the_plans_tax_is_refused(brand, users):
    merchant = FakeMerchant(shop=FakeShop(tax=cny("7.67")))
    plan = make_plan(merchant, brand, users, "running socks size M for me")
    untaxed = plan.model_copy(update={"summary": plan.summary.model_copy(update={"tax": None})})
    flow = order_flow(merchant, brand, users, untaxed, route="auto")
    findings = verdict(flow, price_check(flow)).reasons
    assert [f.policyId for f in findings if f.tier is RiskTier.DENY] == ["plan.arithmetic"]


def test_the_approval_page_shows_the_tax_line_only_when_there_is_tax(pending: Pending, brand):
    view = pending.desk.open(pending.approval_id, pending.link)
    assert 'data-testid="tax"' not in render_approval_page(view, brand, action_url="/approvals/x")
    summary = view.plan.summary
    taxed = view.plan.model_copy(
        update={
            "summary": summary.model_copy(update={"tax": cny("3.50"), "total": summary.total + cny("3.50")})
        }
    )
    html = render_approval_page(dataclasses.replace(view, plan=taxed), brand, action_url="/approvals/x")
    assert text_of(html, "tax") == "3.50 CNY"
    assert text_of(html, "total") == (summary.total + cny("3.50")).format()


# --- titles ---------------------------------------------------------------------------------------

# The brand's feed names the product; the merchant's checkout names the variant.
FEED_TITLES = FeedCatalog.parse(
    "id\ttitle\tprice\tavailability\tproduct_type\tsize\tcolor\titem_group_id\n"
    "merino-sock-m\tMerino Running Socks\t79.00 CNY\tin_stock\tsocks\tM\tgrey\tmerino-sock\n"
    "merino-sock-l\tMerino Running Socks\t79.00 CNY\tin_stock\tsocks\tL\tgrey\tmerino-sock\n"
)


def checkout_titles() -> FakeMerchant:
    """A merchant without a catalog whose checkout calls each variant "<title>, <size>"."""
    products = [
        product.model_copy(
            update={
                "variants": [
                    variant.model_copy(update={"title": f"{variant.title}, {variant.size}"})
                    for variant in product.variants
                ]
            }
        )
        for product in FEED_TITLES.products
    ]
    return FakeMerchant(shop=FakeShop(products=products, offers_catalog=False))


def test_a_feed_whose_titles_differ_from_the_checkouts_plans_and_passes_validation(brand, users):
    merchant = checkout_titles()
    planner = RulesPlanner(merchant, brand.merchant(), FEED_TITLES, choose_handler=handler_chooser(merchant))
    plan = planner.plan(planning_request(brand, users, "merino running socks size M for me"))

    (item,) = plan.summary.items
    assert (item.itemId, item.title) == ("merino-sock-m", "Merino Running Socks, M")
    assert "calls it 'Merino Running Socks'" in plan.steps[0].justification

    flow = order_flow(merchant, brand, users, plan, route="auto")
    checked = verdict(flow, price_check(flow, FEED_TITLES))
    assert [f.policyId for f in checked.reasons if f.tier is RiskTier.DENY] == []
    flow.completed()
    assert flow.goal().status is GoalStatus.COMPLETED


def test_with_tax_an_optional_step_cannot_be_left_out_without_a_new_price(brand, users):
    """The tax covered the gift-wrap too: the page offers no 'leave it out', and a forged drop is refused."""
    import pytest

    from cartpilot.approvals.desk import DropRefused, reduce_plan

    merchant = FakeMerchant(shop=FakeShop(tax=cny("7.67")))
    plan = make_plan(merchant, brand, users, SEED_GOAL)
    wrap = next(step for step in plan.steps if step.optional)
    with pytest.raises(DropRefused, match="tax"):
        reduce_plan(plan, [wrap.id], plan_id="p-reduced-1", created_at=plan.createdAt)

    untaxed = make_plan(FakeMerchant(), brand, users, SEED_GOAL)
    untaxed_wrap = next(step for step in untaxed.steps if step.optional)
    reduced = reduce_plan(untaxed, [untaxed_wrap.id], plan_id="p-reduced-2", created_at=untaxed.createdAt)
    assert reduced.summary.total.amount_minor < untaxed.summary.total.amount_minor
