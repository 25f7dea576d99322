"""The validator holds the plan to the merchant's shipping and reserves it against the daily limits."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cartpilot.audit.trail import AuditTrail
from cartpilot.brands.config import BrandConfig
from cartpilot.brands.users import UserDirectory
from cartpilot.commerce.ports import ShippingOption
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.model import GoalContext, GoalRecord, GoalStatus, PriceCheck
from cartpilot.kernel.clock import utc_now, utc_now_iso
from cartpilot.plans.model import Plan, ShippingChoice
from cartpilot.plans.validation import check_shipping, validate_goal
from cartpilot.plans.verdicts import RiskTier
from tests.conftest import make_plan
from tests.fakes import (
    TODAY,
    FakeMerchant,
    InMemoryAuditRecords,
    InMemoryGoalStore,
    InMemoryOrderCounters,
    cny,
)

STANDARD = ShippingOption(
    id="standard", title="Standard", price=cny("12.00"),
    earliestDelivery=TODAY + timedelta(days=3), latestDelivery=TODAY + timedelta(days=6),
)  # fmt: skip
EXPRESS = ShippingOption(
    id="express", title="Express", price=cny("30.00"),
    earliestDelivery=TODAY + timedelta(days=1), latestDelivery=TODAY + timedelta(days=2),
)  # fmt: skip
OFFERED = [STANDARD, EXPRESS]


def _choice(option: ShippingOption, **changes: object) -> ShippingChoice:
    choice = ShippingChoice(
        optionId=option.id, title=option.title, price=option.price,
        earliestDelivery=option.earliestDelivery, latestDelivery=option.latestDelivery,
    )  # fmt: skip
    return choice.model_copy(update=changes)


def test_an_offered_option_as_the_merchant_offers_it_passes():
    assert check_shipping(_choice(EXPRESS), OFFERED) == []
    # The merchant's ids may differ between sessions: the same option by title is still the option.
    assert check_shipping(_choice(EXPRESS, optionId="grp-2-express"), OFFERED) == []


@pytest.mark.parametrize(
    ("claimed", "message"),
    [
        (
            _choice(STANDARD, earliestDelivery=TODAY, latestDelivery=TODAY),
            f"Standard delivers between {STANDARD.earliestDelivery} and {STANDARD.latestDelivery}, "
            f"the plan says between {TODAY} and {TODAY}",
        ),
        (
            _choice(EXPRESS, price=cny("0.00")),
            "the merchant charges 30.00 CNY for Express, the plan says 0.00 CNY",
        ),
        (
            _choice(EXPRESS, title="Same-day courier"),
            "the merchant calls this option Express, not Same-day courier",
        ),
        (
            _choice(STANDARD, optionId="same-day", title="Same-day courier"),
            "the merchant does not offer Same-day courier for this order",
        ),
        (
            _choice(STANDARD, earliestDelivery=None, latestDelivery=None),
            f"Standard delivers between {STANDARD.earliestDelivery} and {STANDARD.latestDelivery}, "
            "the plan says with no promised date",
        ),
    ],
    ids=["sooner-window", "free", "renamed", "unknown", "dropped-window"],
)
def test_shipping_the_merchant_does_not_offer_is_denied_saying_what_differs(
    claimed: ShippingChoice, message: str
):
    findings = check_shipping(claimed, OFFERED)
    assert [(f.policyId, f.tier, f.message) for f in findings] == [
        ("merchant.shipping", RiskTier.DENY, message)
    ]


# ---- reservations at validation --------------------------------------------------------------


def _goal(plan: Plan, merchant: FakeMerchant, ledger: GoalLedger) -> None:
    now = utc_now_iso()
    current = merchant.catalog.lookup([item.itemId for item in plan.summary.items], plan.currency)
    ledger.store.create(
        GoalRecord(
            goalId=plan.goalId, userId=plan.userId, brand="sandbox", goal=plan.goal, context=GoalContext(),
            status=GoalStatus.PLANNING, requestHash="test", createdAt=now, updatedAt=now,
            plan=plan.model_dump(mode="json"), planHash=plan.plan_hash(),
            priceCheck=PriceCheck(planId=plan.planId, checkedAt=now, items=current),
        )
    )  # fmt: skip


def _validate(plan: Plan, ledger: GoalLedger, brand: BrandConfig, users: UserDirectory, counters) -> RiskTier:
    verdict = validate_goal(
        plan.goalId, plan.plan_hash(), ledger=ledger, brand=brand, users=users, counters=counters
    )
    return verdict.tier


def test_validation_reserves_once_and_a_retry_is_not_its_own_competition(
    merchant: FakeMerchant, brand: BrandConfig, users: UserDirectory
):
    counters = InMemoryOrderCounters()
    for number in range(brand.limits.maxOrdersPerDay - 1):
        counters.record_order(f"g-earlier-{number}", "user-1", cny("59.00"), at=utc_now())
    plan = make_plan(merchant, brand, users, "running socks for me")
    ledger = GoalLedger(InMemoryGoalStore(), AuditTrail(InMemoryAuditRecords()))
    _goal(plan, merchant, ledger)

    assert _validate(plan, ledger, brand, users, counters) is RiskTier.AUTO
    # The fifth order of the day is this goal's own: validating it again still lets it run.
    assert _validate(plan, ledger, brand, users, counters) is RiskTier.AUTO
    assert counters.recent_activity("user-1", now=utc_now()).orders == brand.limits.maxOrdersPerDay
    events = [record.event for record in ledger.audit.records(plan.goalId)]
    assert events.count("limits.reserved") == 1


def test_a_denied_plan_holds_nothing_and_gives_back_what_it_held(
    merchant: FakeMerchant, brand: BrandConfig, users: UserDirectory
):
    counters = InMemoryOrderCounters()
    plan = make_plan(merchant, brand, users, "running socks for me")
    ledger = GoalLedger(InMemoryGoalStore(), AuditTrail(InMemoryAuditRecords()))
    _goal(plan, merchant, ledger)
    assert _validate(plan, ledger, brand, users, counters) is RiskTier.AUTO
    for number in range(brand.limits.maxOrdersPerDay):
        counters.record_order(f"g-later-{number}", "user-1", cny("59.00"), at=utc_now())

    assert _validate(plan, ledger, brand, users, counters) is RiskTier.DENY
    assert counters.recent_activity("user-1", now=utc_now()).orders == brand.limits.maxOrdersPerDay
    events = [record.event for record in ledger.audit.records(plan.goalId)]
    assert events[-2:] == ["limits.released", "plan.validated"]
