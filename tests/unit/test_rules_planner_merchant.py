"""The rules planner and the merchant: negotiation first, the catalog or the feed, prices from the
merchant's pricing session, shipping without promised dates, and which merchant a goal names."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from cartpilot.brands.config import BrandConfig, MerchantConfig
from cartpilot.commerce.errors import MerchantRejected
from cartpilot.commerce.feed import FeedCatalog
from cartpilot.commerce.ports import MerchantProfile, PaymentHandler, ShippingOption
from cartpilot.goals.model import GoalContext
from cartpilot.planning.conversation import ToolCall
from cartpilot.planning.rules import PlanningFailed, RulesPlanner
from cartpilot.planning.setup import configured_planner, reset_providers
from cartpilot.planning.storefront import Storefront
from cartpilot.planning.tools import ShoppingTools
from cartpilot.plans.model import Plan
from tests.conftest import handler_chooser, planning_request
from tests.fakes import FakeMerchant, cny, usd
from tests.fakes.merchant import FakeShop

FEEDS = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"
SANDBOX_FEED = FeedCatalog.load(str(FEEDS / "sandbox.tsv"))
POST = ShippingOption(id="post", title="China Post", price=cny("0.00"))
COURIER = ShippingOption(
    id="courier", title="Courier", price=cny("30.00"),
    earliestDelivery=date(2026, 11, 26), latestDelivery=date(2026, 11, 27),
)  # fmt: skip


def feed_merchant(**shop: object) -> FakeMerchant:
    """A merchant selling the sandbox feed's products, without a catalog of its own."""
    settings: dict[str, object] = {"products": list(SANDBOX_FEED.products), "offers_catalog": False, **shop}
    return FakeMerchant(shop=FakeShop(**settings))  # type: ignore[arg-type]


def plan(
    merchant: FakeMerchant, brand: BrandConfig, users, goal: str, *, feed=SANDBOX_FEED, **context: object
) -> Plan:
    planner = RulesPlanner(merchant, brand.merchant(), feed, choose_handler=handler_chooser(merchant))
    return planner.plan(planning_request(brand, users, goal, context=GoalContext.model_validate(context)))


def searched_or_quoted(merchant: FakeMerchant) -> list[str]:
    return [call.operation for call in merchant.shop.calls]


def test_a_merchant_without_a_common_version_is_refused_before_anything_is_asked(brand, users):
    merchant = feed_merchant()

    def no_version() -> MerchantProfile:
        raise MerchantRejected(
            "no UCP version in common: merchant speaks 2025-01-01", code="version_unsupported"
        )

    merchant.profile = no_version  # type: ignore[method-assign]
    with pytest.raises(PlanningFailed) as failed:
        plan(merchant, brand, users, "a yoga mat")
    assert str(failed.value) == (
        "merchant sandbox-merchant cannot be bought from: no UCP version in common: merchant speaks 2025-01-01"
    )
    assert searched_or_quoted(merchant) == []


def test_a_merchant_whose_payment_handlers_the_brand_cannot_fund_is_refused_before_any_session(brand, users):
    merchant = feed_merchant(handlers=(PaymentHandler(name="com.google.pay", id="gpay"),))
    with pytest.raises(PlanningFailed, match=r"cannot be paid: .*no payment handler in common"):
        plan(merchant, brand, users, "a yoga mat")
    assert searched_or_quoted(merchant) == []


def test_without_catalog_search_and_without_a_feed_there_is_nothing_to_search(brand, users):
    with pytest.raises(
        PlanningFailed, match="offers no catalog search and the brand configures no product feed"
    ):
        plan(feed_merchant(), brand, users, "a yoga mat", feed=None)


def test_the_plan_records_the_negotiated_terms(brand, users):
    merchant = feed_merchant(offers_cancel=False, version="2026-01-11")
    terms = plan(merchant, brand, users, "a yoga mat").merchant
    assert (terms.id, terms.ucpVersion, terms.paymentHandler, terms.paymentHandlerId, terms.undo) == (
        "sandbox-merchant", "2026-01-11", "com.cartpilot.sandbox_tokenizer", "sandbox_tokenizer", "none",
    )  # fmt: skip


def test_prices_are_the_checkout_sessions_and_a_difference_from_the_feed_is_said(brand, users):
    merchant = feed_merchant()
    merchant.shop.reprice("fit-velora-pro-yoga-mat-6mm-blue", cny("149.00"))  # the feed still says 139.00
    planned = plan(merchant, brand, users, "a yoga mat")
    item = planned.summary.items[0]
    assert (item.itemId, item.unitPrice, planned.summary.total) == (
        "fit-velora-pro-yoga-mat-6mm-blue", cny("149.00"), cny("149.00"),
    )  # fmt: skip
    assert (
        "The feed lists 139.00 CNY; the merchant's checkout asks 149.00 CNY" in planned.steps[0].justification
    )


def test_an_item_the_checkout_will_not_sell_gives_way_to_the_next_candidate(brand, users):
    merchant = feed_merchant()
    # The feed says in stock; the merchant's checkout knows better.
    merchant.shop.change_variant("socks-running-black-l", stock=0)
    planned = plan(merchant, brand, users, "running socks size L")
    assert planned.summary.items[0].itemId == "socks-running-white-l"
    assert "fulfillment.quote refused socks-running-black-l (out_of_stock)" in planned.planner.lookups


def test_shipping_without_a_promised_date_is_kept_and_never_claimed_on_time(brand, users):
    merchant = feed_merchant(options=[POST, COURIER])
    cheapest = plan(merchant, brand, users, "a yoga mat")
    assert cheapest.summary.shipping.optionId == "post"
    assert cheapest.summary.shipping.latestDelivery is None
    assert "no delivery date promised" in cheapest.steps[-2].justification

    in_time = plan(merchant, brand, users, "a yoga mat by 2026-11-28")
    assert in_time.summary.shipping.optionId == "courier"
    assert "meets 2026-11-28" in in_time.steps[-2].justification

    merchant.shop.options = [POST]
    undated = plan(merchant, brand, users, "a yoga mat by 2026-11-28")
    assert undated.summary.shipping.optionId == "post"
    justification = undated.steps[-2].justification
    assert "No option promises delivery by 2026-11-28" in justification and "meets" not in justification


def test_a_feed_priced_in_another_currency_gives_a_plan_in_that_currency(brand, users):
    dollars = [
        product.model_copy(
            update={"variants": [v.model_copy(update={"price": usd("19.99")}) for v in product.variants]}
        )
        for product in SANDBOX_FEED.products
        if product.category == "fitness"
    ]
    by_post = POST.model_copy(update={"price": usd("5.00")})
    merchant = feed_merchant(products=dollars, options=[by_post, COURIER])  # the courier quotes in CNY
    planned = plan(merchant, brand, users, "a yoga mat", feed=FeedCatalog(dollars))
    assert (planned.currency, planned.summary.total) == ("USD", usd("24.99"))
    assert planned.summary.shipping.optionId == "post"


def test_english_goals_find_products_described_in_chinese(brand, users):
    feed = FeedCatalog.parse(
        "id\ttitle\tprice\tavailability\tproduct_type\tsize\titem_group_id\n"
        "zh-shoe-42\t轻量跑步鞋 42码\t399.00 CNY\tin_stock\t运动鞋\t42\tzh-shoe\n"
        "zh-sock-m\t运动袜 M\t29.00 CNY\tin_stock\t袜子\tM\tzh-sock\n"
    )
    merchant = feed_merchant(products=list(feed.products))
    assert (
        plan(merchant, brand, users, "running shoes size 42", feed=feed).summary.items[0].itemId
        == "zh-shoe-42"
    )
    assert plan(merchant, brand, users, "socks", feed=feed).summary.items[0].itemId == "zh-sock-m"


def test_a_goal_names_its_merchant_in_the_context(brand, users):
    second = MerchantConfig(id="second-shop", url="https://second.example")
    two = brand.model_copy(update={"merchants": [*brand.merchants, second]})
    merchant, other = feed_merchant(), feed_merchant()

    def elsewhere(config: MerchantConfig) -> Storefront:
        assert config == second
        return Storefront(other, config, SANDBOX_FEED)

    chooser = handler_chooser(merchant)
    request = planning_request(two, users, "a yoga mat", context=GoalContext(merchantId="second-shop"))
    planned = RulesPlanner(
        merchant, two.merchant(), SANDBOX_FEED, elsewhere=elsewhere, choose_handler=chooser
    ).plan(request)
    assert planned.merchant.id == "second-shop"
    assert searched_or_quoted(merchant) == [] and "fulfillment.quote" in searched_or_quoted(other)

    with pytest.raises(PlanningFailed, match="buys from sandbox-merchant only, not from second-shop"):
        RulesPlanner(merchant, two.merchant(), SANDBOX_FEED, choose_handler=chooser).plan(request)
    unknown = planning_request(two, users, "a yoga mat", context=GoalContext(merchantId="third-shop"))
    with pytest.raises(PlanningFailed, match="the brand has no merchant 'third-shop'"):
        RulesPlanner(merchant, two.merchant(), SANDBOX_FEED, choose_handler=chooser).plan(unknown)


def test_the_configured_planner_reads_the_feed_brand_yaml_names(brand, users):
    reset_providers()
    with_feed = brand.model_copy(
        update={"merchants": [brand.merchants[0].model_copy(update={"feed": str(FEEDS / "sandbox.xml")})]}
    )
    merchant = feed_merchant()
    planner = configured_planner(with_feed, merchant, environ={}, choose_handler=handler_chooser(merchant))
    planned = planner.plan(planning_request(with_feed, users, "买一个瑜伽垫"))
    assert planned.summary.items[0].itemId == "fit-velora-pro-yoga-mat-6mm-blue"
    assert "feed.search '瑜伽垫'" in planned.planner.lookups
    reset_providers()


def test_a_feed_that_cannot_be_read_is_a_clear_refusal(brand, users):
    reset_providers()
    broken = brand.model_copy(
        update={"merchants": [brand.merchants[0].model_copy(update={"feed": "no-such-feed.tsv"})]}
    )
    merchant = feed_merchant()
    planner = configured_planner(broken, merchant, environ={}, choose_handler=handler_chooser(merchant))
    with pytest.raises(PlanningFailed, match="the product feed for merchant sandbox-merchant cannot be read"):
        planner.plan(planning_request(broken, users, "a yoga mat"))
    reset_providers()


def test_the_model_sees_null_dates_for_options_without_a_window(brand, users):
    merchant = feed_merchant(options=[POST])
    tools = ShoppingTools(SANDBOX_FEED, merchant.fulfillment, planning_request(brand, users, "a yoga mat"))
    result = tools.call(
        ToolCall(
            id="c1", name="quote_shipping", raw_arguments="{}",
            arguments={"items": [{"itemId": "fit-velora-pro-yoga-mat-6mm-blue", "quantity": 1}], "recipientId": "home"},
        )
    )  # fmt: skip
    assert result.content["options"] == [
        {
            "optionId": "post",
            "title": "China Post",
            "price": "0.00 CNY",
            "earliestDelivery": None,
            "latestDelivery": None,
        }
    ]


def test_products_in_the_gift_wrap_category_are_never_the_thing_bought(brand, users):
    wrap_only = [p for p in SANDBOX_FEED.products if p.category == "gift-wrap"]
    merchant = feed_merchant(products=wrap_only)
    with pytest.raises(PlanningFailed, match="sells nothing that matches 'wrap'"):
        plan(merchant, brand, users, "just some wrap", feed=FeedCatalog(wrap_only))
