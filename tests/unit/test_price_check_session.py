"""The price check asks the merchant's checkout (a pricing session), not a catalog or feed that may lag it."""

from __future__ import annotations

from datetime import timedelta

from cartpilot.commerce.ports import ProductVariant, ShippingOption
from cartpilot.goals.model import PriceCheck
from cartpilot.plans.pricing import snapshot_current_prices
from cartpilot.plans.validation import ValidationInput, validate_plan
from cartpilot.plans.verdicts import RiskTier, Verdict
from tests.fakes import TODAY, FakeMerchant
from tests.fakes.merchant import cny
from tests.unit.stages import OrderFlow, order_flow, socks_plan


class LaggingFeed:
    """A product feed fetched before the merchant repriced: yesterday's prices, and its own stock."""

    def __init__(self, merchant: FakeMerchant, price: str, stock: int = 10) -> None:
        self.merchant, self.price, self.stock = merchant, cny(price), stock

    def search(self, query: object) -> list[object]:
        return []

    def lookup(self, item_ids: list[str], currency: str) -> list[ProductVariant]:
        variants = self.merchant.shop.variants()
        return [
            variants[item_id].model_copy(update={"price": self.price, "stock": self.stock})
            for item_id in item_ids
            if item_id in variants
        ]


def socks(merchant, brand, users) -> OrderFlow:
    return order_flow(merchant, brand, users, socks_plan(merchant, brand, users), route="auto")


def check(flow: OrderFlow, catalog: object | None = None) -> PriceCheck:
    """The price check against the flow's merchant, its catalog swapped for ``catalog`` when given."""
    merchant = flow.merchant
    if catalog is not None:
        merchant = FakeMerchant(shop=flow.shop)
        merchant.catalog = catalog  # type: ignore[assignment]
    asked: list[str] = []

    def merchants(merchant_id: str) -> FakeMerchant:
        asked.append(merchant_id)
        return merchant

    snapshot = snapshot_current_prices(
        flow.goal_id, flow.plan.planId, store=flow.ledger.store, merchants=merchants
    )
    assert asked == [flow.plan.merchant.id]  # the plan's merchant, not a default
    return snapshot


def verdict(flow: OrderFlow, price_check: PriceCheck) -> Verdict:
    profile = flow.users.get("user-1")
    assert profile is not None
    return validate_plan(
        ValidationInput(plan=flow.plan, brand=flow.brand, profile=profile, current_items=price_check.items,
                        today=TODAY, price_check=price_check)
    )  # fmt: skip


def test_the_checkouts_price_counts_not_a_feed_that_lags_it(merchant, brand, users):
    flow = socks(merchant, brand, users)
    before = (flow.goal(), flow.events())

    snapshot = check(flow, LaggingFeed(merchant, price="49.00", stock=0))

    (item,) = snapshot.items
    # The session's price and title; it held one pair, so one is in stock whatever the feed says.
    assert (item.id, item.price, item.title, item.category, item.stock) == (
        "socks-1-m", cny("59.00"), "Running Socks", "socks", 1,
    )  # fmt: skip
    assert (snapshot.sessionChecked, snapshot.refusal) == (True, None)
    assert snapshot.shippingOptions == merchant.shop.options  # what the session offered, kept whole
    assert verdict(flow, snapshot).tier is RiskTier.AUTO
    # Nothing written to the goal, nothing bought: a pricing session is read and canceled.
    assert (flow.goal(), flow.events()) == before
    assert flow.shop.writes() == [] and flow.shop.charges == []


def test_against_the_lagging_feed_alone_the_same_plan_would_be_refused(merchant, brand, users):
    flow = socks(merchant, brand, users)
    feed_only = PriceCheck(
        planId=flow.plan.planId,
        checkedAt="2026-11-25T08:00:00Z",
        items=LaggingFeed(merchant, price="49.00").lookup(["socks-1-m"], "CNY"),
    )
    assert {reason.policyId for reason in verdict(flow, feed_only).reasons} == {"merchant.price"}


def test_the_checkout_refusing_the_lines_is_a_denial_in_the_merchants_words(merchant, brand, users):
    flow = socks(merchant, brand, users)
    merchant.shop.change_variant("socks-1-m", stock=0)

    snapshot = check(flow)

    assert snapshot.refusal == "socks-1-m is out of stock"
    result = verdict(flow, snapshot)
    assert result.tier is RiskTier.DENY
    messages = {reason.policyId: reason.message for reason in result.reasons}
    assert (
        messages["merchant.checkout"]
        == "the merchant's checkout refused the order: socks-1-m is out of stock"
    )


def test_shipping_the_checkout_no_longer_offers_at_its_price_is_refused(merchant, brand, users):
    flow = socks(merchant, brand, users)
    merchant.shop.options = [
        ShippingOption(id="standard", title="Standard", price=cny("12.00"),
                       earliestDelivery=TODAY + timedelta(days=3), latestDelivery=TODAY + timedelta(days=6)),
    ]  # fmt: skip

    snapshot = check(flow)

    reasons = verdict(flow, snapshot).reasons
    assert {reason.policyId for reason in reasons} == {"merchant.shipping"}
    assert "the merchant charges 12.00 CNY for Standard, the plan says 0.00 CNY" in {
        reason.message for reason in reasons
    }


def test_a_new_option_id_for_the_same_shipping_at_the_same_price_is_the_planned_option(
    merchant, brand, users
):
    flow = socks(merchant, brand, users)
    merchant.shop.options = [
        option.model_copy(update={"id": f"grp1-{option.id}"}) for option in merchant.shop.options
    ]
    result = verdict(flow, check(flow))
    assert result.tier is RiskTier.AUTO and "merchant.shipping" not in {r.policyId for r in result.reasons}
