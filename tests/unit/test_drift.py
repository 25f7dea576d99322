"""Before a mutating step: a price that moved beyond the brand's tolerance since approval stops the order."""

from __future__ import annotations

import re

import pytest

from cartpilot.commerce.errors import PlanNeedsReapproval
from cartpilot.kernel.money import Money
from cartpilot.plans.drift import (
    accept_merchant_total,
    check_price_drift,
    find_price_drifts,
    within_tolerance,
)
from cartpilot.plans.model import Plan
from tests.fakes import FakeMerchant, cny


def main_item(plan: Plan) -> tuple[str, Money]:
    item = plan.summary.items[0]
    return item.itemId, item.unitPrice


def test_unchanged_prices_pass_and_return_what_the_merchant_says(seed_plan: Plan, merchant: FakeMerchant):
    current = check_price_drift(seed_plan, merchant.catalog, tolerance_percent=2)
    assert {variant.id for variant in current} == {item.itemId for item in seed_plan.summary.items}


@pytest.mark.parametrize("delta_minor", [+1398, -1398, +1, 0])
def test_a_move_within_tolerance_passes(seed_plan: Plan, merchant: FakeMerchant, delta_minor: int):
    item_id, approved = main_item(seed_plan)  # 699.00 CNY: 2% is 13.98
    merchant.shop.reprice(item_id, Money(amount_minor=approved.amount_minor + delta_minor, currency="CNY"))
    check_price_drift(seed_plan, merchant.catalog, tolerance_percent=2)


@pytest.mark.parametrize("delta_minor", [+1399, -1399, +10000])
def test_a_move_beyond_tolerance_asks_again(seed_plan: Plan, merchant: FakeMerchant, delta_minor: int):
    item_id, approved = main_item(seed_plan)
    now = Money(amount_minor=approved.amount_minor + delta_minor, currency="CNY")
    merchant.shop.reprice(item_id, now)
    with pytest.raises(
        PlanNeedsReapproval, match=re.escape(f"now costs {now.format()}, approved at 699.00 CNY")
    ) as raised:
        check_price_drift(seed_plan, merchant.catalog, tolerance_percent=2)
    assert raised.value.drifts == [
        {
            "itemId": item_id,
            "approved": approved.model_dump(mode="json"),
            "current": now.model_dump(mode="json"),
        }
    ]


def test_zero_tolerance_refuses_any_change(seed_plan: Plan, merchant: FakeMerchant):
    item_id, approved = main_item(seed_plan)
    merchant.shop.reprice(item_id, Money(amount_minor=approved.amount_minor + 1, currency="CNY"))
    with pytest.raises(PlanNeedsReapproval):
        check_price_drift(seed_plan, merchant.catalog, tolerance_percent=0)


def test_an_optional_item_counts_too(seed_plan: Plan, merchant: FakeMerchant):
    wrap = next(item for item in seed_plan.summary.items if item.optional)
    merchant.shop.reprice(wrap.itemId, cny("35.00"))
    with pytest.raises(PlanNeedsReapproval, match=re.escape("Gift Wrap now costs 35.00 CNY")):
        check_price_drift(seed_plan, merchant.catalog, tolerance_percent=2)


def test_an_item_no_longer_sold_asks_again(seed_plan: Plan, merchant: FakeMerchant):
    item_id, _ = main_item(seed_plan)
    merchant.shop.products = [
        product.model_copy(update={"variants": [v for v in product.variants if v.id != item_id]})
        for product in merchant.shop.products
    ]
    with pytest.raises(PlanNeedsReapproval, match="is no longer sold") as raised:
        check_price_drift(seed_plan, merchant.catalog, tolerance_percent=20)
    assert raised.value.drifts[0]["current"] is None


def test_a_price_in_another_currency_is_a_drift(seed_plan: Plan, merchant: FakeMerchant):
    item_id, approved = main_item(seed_plan)
    usd = Money(amount_minor=approved.amount_minor, currency="USD")
    merchant.shop.reprice(item_id, usd)
    current = merchant.catalog.lookup([item.itemId for item in seed_plan.summary.items], "CNY")
    assert [drift.item_id for drift in find_price_drifts(seed_plan, current, 20)] == [item_id]
    assert not within_tolerance(approved, usd, 20)


# ---- the same rule at payment: the merchant's total against the approved one ---------------------


@pytest.mark.parametrize(
    ("asked", "accepted"), [("719.00", None), ("733.38", "733.38"), ("704.62", "704.62")]
)
def test_a_total_within_tolerance_is_accepted_at_the_merchants_price(asked: str, accepted: str | None):
    # 2% of 719.00 is 14.38: the rule that lets an item move lets the total move as far.
    result = accept_merchant_total(cny("719.00"), cny(asked), tolerance_percent=2)
    if accepted is None:
        assert result is None
    else:
        assert result is not None and result.charged == cny(accepted)
        assert result.to_detail() == {
            "approvedTotal": cny("719.00").model_dump(mode="json"),
            "merchantTotal": cny(accepted).model_dump(mode="json"),
            "tolerancePercent": 2,
        }


@pytest.mark.parametrize("asked", [cny("733.39"), cny("704.61"), Money(amount_minor=71900, currency="USD")])
def test_a_total_beyond_tolerance_or_in_another_currency_asks_again(asked: Money):
    with pytest.raises(PlanNeedsReapproval, match=re.escape("approved at 719.00 CNY")):
        accept_merchant_total(cny("719.00"), asked, tolerance_percent=2)
