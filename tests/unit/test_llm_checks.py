"""Hybrid checks: a grounded draft re-read against the catalog as it is now."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from cartpilot.brands.config import BrandConfig
from cartpilot.brands.users import UserDirectory
from cartpilot.commerce.ports import Product, ProductVariant
from cartpilot.goals.model import GoalContext
from cartpilot.kernel.money import Money
from cartpilot.planning.checks import CheckedDraft, check_draft
from cartpilot.planning.drafts import GroundedDraft, GroundedLine
from cartpilot.planning.rules import PlanningFailed, PlanningRequest
from tests.conftest import planning_request
from tests.fakes import TODAY, FakeMerchant, cny, sample_products


def tee(colour: str, size: str, stock: int = 10, price: str = "129.00") -> ProductVariant:
    return ProductVariant(
        id=f"tee-{colour}-{size.lower()}", productId="tee", title=f"Trail Tee ({colour.title()} / {size})",
        price=cny(price), size=size, color=colour, stock=stock, category="apparel",
    )  # fmt: skip


def shop_with_tees(*variants: ProductVariant) -> FakeMerchant:
    merchant = FakeMerchant()
    merchant.shop.products = [
        *sample_products(),
        Product(id="tee", title="Trail Tee", category="apparel", variants=list(variants)),
    ]
    return merchant


def request_for(brand: BrandConfig, users: UserDirectory, goal: str, **context: object) -> PlanningRequest:
    return planning_request(
        brand, users, goal, context=GoalContext.model_validate(context), goal_id="g-checks"
    )


def draft_of(
    request: PlanningRequest, *lines: GroundedLine, option: str = "standard", deliver_by: date | None = None
) -> GroundedDraft:
    home = request.profile.recipient("home")
    assert home is not None
    return GroundedDraft(
        lines=list(lines), recipientId="home", recipient=home.recipient, shippingOptionId=option,
        shippingJustification="Cheapest.", paymentMethodId="pm_user1_visa", paymentJustification="Default card.",
        deliverBy=deliver_by, budget=None, reason="A plan.",
    )  # fmt: skip


def check(merchant: FakeMerchant, request: PlanningRequest, draft: GroundedDraft) -> CheckedDraft:
    return check_draft(
        draft, catalog=merchant.catalog, fulfillment=merchant.fulfillment, request=request, lookups=[]
    )


def test_a_draft_that_still_holds_passes_unchanged(brand, users):
    merchant = shop_with_tees(tee("black", "M"))
    request = request_for(brand, users, "a black tee for me")
    checked = check(merchant, request, draft_of(request, GroundedLine(tee("black", "M"), 1, "Black tee.")))
    assert checked.adjustments == []
    assert [item.variant.id for item in checked.choices.items] == ["tee-black-m"]
    assert checked.choices.shipping.id == "standard" and checked.choices.shippingReason == "Cheapest."


def test_sold_out_variant_keeps_the_colour_the_goal_named_and_takes_the_nearest_size(brand, users):
    merchant = shop_with_tees(
        tee("black", "S", stock=0), tee("black", "M"), tee("black", "L"), tee("white", "M")
    )
    request = request_for(brand, users, "a black tee for me")
    draft = draft_of(request, GroundedLine(tee("black", "M"), 1, "Black tee."))
    merchant.shop.change_variant("tee-black-m", stock=0)

    checked = check(merchant, request, draft)

    assert [item.variant.id for item in checked.choices.items] == ["tee-black-l"]
    assert checked.adjustments == [
        "Trail Tee (Black / M) is sold out; chose Trail Tee (Black / L) at 129.00 CNY instead."
    ]


def test_sold_out_variant_keeps_the_size_the_goal_named_and_takes_another_colour(brand, users):
    merchant = shop_with_tees(tee("black", "M"), tee("black", "L"), tee("white", "M"))
    request = request_for(brand, users, "a tee in size M for me")
    draft = draft_of(request, GroundedLine(tee("black", "M"), 1, "Tee."))
    merchant.shop.change_variant("tee-black-m", stock=0)

    assert [item.variant.id for item in check(merchant, request, draft).choices.items] == ["tee-white-m"]


def test_when_size_and_colour_were_both_asked_for_it_says_what_is_in_stock(brand, users):
    merchant = shop_with_tees(tee("black", "M"), tee("black", "L"), tee("white", "M"))
    request = request_for(brand, users, "a black tee in size M for me")
    draft = draft_of(request, GroundedLine(tee("black", "M"), 1, "Tee."))
    merchant.shop.change_variant("tee-black-m", stock=0)

    with pytest.raises(PlanningFailed) as failure:
        check(merchant, request, draft)
    assert str(failure.value) == (
        "Trail Tee (Black / M) is sold out and no other variant in size M and black is in stock; "
        "in stock: Trail Tee (Black / L), Trail Tee (White / M)"
    )


def test_a_price_change_is_priced_at_the_current_price_and_said(brand, users):
    merchant = FakeMerchant()
    request = request_for(brand, users, "running shoes size 42 for me")
    seen = merchant.shop.variants()["shoe-a-42"]
    merchant.shop.change_variant("shoe-a-42", price=cny("649.00"))

    checked = check(merchant, request, draft_of(request, GroundedLine(seen, 1, "Cheapest.")))

    assert checked.choices.items[0].variant.price == cny("649.00")
    assert checked.adjustments == [
        "Swift Runner now costs 649.00 CNY, not the 699.00 CNY quoted while planning; the plan uses the current price."
    ]


def test_late_option_switches_to_one_that_arrives_in_time(brand, users):
    merchant = FakeMerchant()
    request = request_for(brand, users, "running socks for me")
    socks = merchant.shop.variants()["socks-1-m"]
    deadline = TODAY + timedelta(days=2)

    checked = check(
        merchant, request, draft_of(request, GroundedLine(socks, 1, "Socks."), deliver_by=deadline)
    )

    assert checked.choices.shipping.id == "expedited"
    assert checked.choices.shippingReason is None  # the model's reason was for the other option
    assert checked.adjustments == [
        "Standard may arrive 2026-12-01, after 2026-11-27; switched to Expedited, which arrives by 2026-11-27."
    ]


def test_when_nothing_arrives_in_time_the_fastest_is_kept_and_the_reason_given(brand, users):
    merchant = FakeMerchant()
    request = request_for(brand, users, "running socks for me")
    socks = merchant.shop.variants()["socks-1-m"]

    checked = check(
        merchant,
        request,
        draft_of(request, GroundedLine(socks, 1, "Socks."), deliver_by=TODAY + timedelta(days=1)),
    )

    assert checked.choices.shipping.id == "expedited"
    assert checked.adjustments == [
        "No shipping option arrives by 2026-11-26; the fastest, Expedited, may arrive 2026-11-27."
    ]


def test_the_goals_own_deadline_wins_when_the_model_read_a_later_one(brand, users):
    merchant = FakeMerchant()
    request = request_for(brand, users, "running socks for me by 2026-11-27")
    socks = merchant.shop.variants()["socks-1-m"]

    checked = check(
        merchant, request, draft_of(request, GroundedLine(socks, 1, "Socks."), deliver_by=date(2026, 12, 30))
    )

    assert checked.choices.deliverBy == date(2026, 11, 27)
    assert checked.choices.shipping.id == "expedited"
    assert checked.adjustments[0].startswith("The goal's words give the deadline 2026-11-27")


def test_shipping_option_no_longer_offered_is_replaced(brand, users):
    merchant = FakeMerchant()
    request = request_for(brand, users, "running socks for me")
    socks = merchant.shop.variants()["socks-1-m"]

    checked = check(merchant, request, draft_of(request, GroundedLine(socks, 1, "Socks."), option="pickup"))

    assert checked.choices.shipping.id == "standard"
    assert checked.adjustments == ["Shipping option pickup is not offered for these items; chose Standard."]


def test_sold_out_gift_wrap_is_dropped_and_the_plan_goes_on(brand, users):
    merchant = FakeMerchant()
    request = request_for(brand, users, "running socks for me, gift-wrapped")
    variants = merchant.shop.variants()
    merchant.shop.change_variant("gift-wrap-standard", stock=0)

    checked = check(
        merchant,
        request,
        draft_of(
            request,
            GroundedLine(variants["socks-1-m"], 1, "Socks."),
            GroundedLine(variants["gift-wrap-standard"], 1, "Wrap.", optional=True),
        ),
    )

    assert [item.variant.id for item in checked.choices.items] == ["socks-1-m"]
    assert checked.adjustments == ["Gift Wrap is sold out; the plan goes without it."]


def test_an_order_over_the_requests_budget_is_flagged(brand, users):
    merchant = FakeMerchant()
    request = request_for(
        brand, users, "running shoes size 42 for me", budget=Money(amount_minor=50000, currency="CNY")
    )
    shoes = merchant.shop.variants()["shoe-a-42"]

    checked = check(merchant, request, draft_of(request, GroundedLine(shoes, 1, "Cheapest.")))

    assert checked.choices.budget == cny("500.00")
    assert checked.adjustments == ["The total 699.00 CNY is over the budget of 500.00 CNY."]
