from datetime import date, timedelta

import pytest
from pydantic import ValidationError

from cartpilot.brands.activity import RecentActivity
from cartpilot.brands.config import BrandConfig
from cartpilot.brands.users import UserDirectory
from cartpilot.commerce.ports import Address, Recipient
from cartpilot.goals.model import GoalContext
from cartpilot.kernel.money import Money
from cartpilot.plans.model import Plan, hash_plan_document
from cartpilot.plans.validation import ValidationInput, refuse_plan_document, validate_plan
from cartpilot.plans.verdicts import RiskTier
from tests.conftest import make_plan
from tests.fakes import TODAY, FakeMerchant


def verdict_for(
    plan: Plan, merchant: FakeMerchant, brand: BrandConfig, users: UserDirectory, *, today: date = TODAY
):
    profile = users.get(plan.userId)
    current = merchant.catalog.lookup([item.itemId for item in plan.summary.items], plan.currency)
    return validate_plan(
        ValidationInput(plan=plan, brand=brand, profile=profile, current_items=current, today=today)
    )


def policies(verdict) -> set[str]:
    return {reason.policyId for reason in verdict.reasons}


def tampered(plan: Plan, change) -> Plan:
    document = plan.model_dump(mode="json")
    change(document)
    return Plan.model_validate(document)


def test_seed_plan_needs_the_shoppers_approval(seed_plan, merchant, brand, users):
    verdict = verdict_for(seed_plan, merchant, brand, users)
    assert (verdict.tier, verdict.route, verdict.approver) == (RiskTier.APPROVAL, "approve", "user")
    assert policies(verdict) == {"threshold.confirmation", "recipient.not-home"}
    assert verdict.planHash == seed_plan.plan_hash()


def test_small_order_to_home_runs_without_approval(merchant, brand, users):
    plan = make_plan(
        merchant, brand, users, "Buy me a pair of running socks and ship them to my home address"
    )
    verdict = verdict_for(plan, merchant, brand, users)
    assert (verdict.tier, verdict.route, verdict.approver) == (RiskTier.AUTO, "auto", None)
    # The only reason is the permit that let it run.
    assert [(reason.policyId, reason.tier) for reason in verdict.reasons] == [
        ("order.permitted", RiskTier.AUTO)
    ]


def test_over_budget_is_denied(merchant, brand, users):
    plan = make_plan(merchant, brand, users, "running shoes size 42 for me, budget 500 CNY")
    verdict = verdict_for(plan, merchant, brand, users)
    assert verdict.tier is RiskTier.DENY and "goal.budget" in policies(verdict)


def test_missed_deadline_is_denied(merchant, brand, users):
    plan = make_plan(merchant, brand, users, "running socks for me by 2026-11-26")
    assert policies(verdict_for(plan, merchant, brand, users)) == {"goal.deliver-by"}


def test_restricted_category_is_denied(merchant, brand, users):
    plan = make_plan(merchant, brand, users, "a kitchen knife for me")
    verdict = verdict_for(plan, merchant, brand, users)
    assert verdict.route == "deny" and "category.restricted" in policies(verdict)


def test_strong_approval_above_the_second_threshold(merchant, brand, users):
    plan = make_plan(merchant, brand, users, "three pairs of running shoes size 42 for me")
    verdict = verdict_for(plan, merchant, brand, users)
    assert plan.summary.total.amount_minor > 200000
    assert verdict.tier is RiskTier.STRONG_APPROVAL and "threshold.strong-approval" in policies(verdict)


def test_per_order_limit_denies(merchant, brand, users):
    plan = make_plan(merchant, brand, users, "five pairs of running shoes size 42 for me")
    assert "limit.per-order" in policies(verdict_for(plan, merchant, brand, users))


def test_new_account_needs_approval(merchant, brand, users):
    plan = make_plan(merchant, brand, users, "running socks for me", user="user-4")
    verdict = verdict_for(plan, merchant, brand, users)
    assert verdict.route == "approve" and "user.new-account" in policies(verdict)


def test_price_that_differs_from_the_merchant_is_denied(seed_plan, merchant, brand, users):
    def cheaper(document):
        item = document["summary"]["items"][0]
        item["unitPrice"]["amount_minor"] = 100
        document["summary"]["subtotal"]["amount_minor"] = 100 + 2000
        document["summary"]["total"]["amount_minor"] = 100 + 2000
        document["steps"][-1]["args"]["amount"]["amount_minor"] = 100 + 2000

    verdict = verdict_for(tampered(seed_plan, cheaper), merchant, brand, users)
    assert verdict.route == "deny" and "merchant.price" in policies(verdict)


def test_totals_that_do_not_add_up_are_denied(seed_plan, merchant, brand, users):
    def pay_less(document):
        document["steps"][-1]["args"]["amount"]["amount_minor"] = 1

    def wrong_total(document):
        document["summary"]["total"]["amount_minor"] = 100

    assert "plan.payment-amount" in policies(
        verdict_for(tampered(seed_plan, pay_less), merchant, brand, users)
    )
    assert "plan.arithmetic" in policies(
        verdict_for(tampered(seed_plan, wrong_total), merchant, brand, users)
    )


def test_recipient_and_payment_method_must_be_the_users(seed_plan, merchant, brand, users):
    def other_address(document):
        document["summary"]["recipient"]["address"]["line1"] = "99 Elsewhere Road"

    def other_card(document):
        document["steps"][-1]["args"]["paymentMethodId"] = "pm_user2_unionpay"

    assert "plan.recipient" in policies(
        verdict_for(tampered(seed_plan, other_address), merchant, brand, users)
    )
    assert "plan.payment-method" in policies(
        verdict_for(tampered(seed_plan, other_card), merchant, brand, users)
    )


def test_steps_out_of_order_or_smuggled_items_are_denied(seed_plan, merchant, brand, users):
    def reorder(document):
        document["steps"] = [document["steps"][-1], *document["steps"][:-1]]

    def smuggle(document):
        document["steps"][0]["args"]["lines"].append({"itemId": "knife-1-std", "quantity": 1})

    assert "plan.step-order" in policies(verdict_for(tampered(seed_plan, reorder), merchant, brand, users))
    assert "plan.items" in policies(verdict_for(tampered(seed_plan, smuggle), merchant, brand, users))


def test_new_account_with_new_card_needs_approval_for_both(merchant, brand, users):
    plan = make_plan(merchant, brand, users, "running socks for me", user="user-4")
    verdict = verdict_for(plan, merchant, brand, users)
    assert verdict.tier is RiskTier.APPROVAL and verdict.approver == "user"
    assert policies(verdict) == {"user.new-account", "payment.new-method"}


def test_a_restricted_category_for_staff_goes_to_staff(merchant, brand, users):
    def wine(document):
        document["summary"]["items"][0]["category"] = "alcohol"

    plan = make_plan(merchant, brand, users, "running socks for me")
    merchant.shop.products[2] = merchant.shop.products[2].model_copy(
        update={
            "variants": [merchant.shop.products[2].variants[0].model_copy(update={"category": "alcohol"})],
        }
    )
    verdict = verdict_for(tampered(plan, wine), merchant, brand, users)
    assert (verdict.tier, verdict.approver) == (RiskTier.APPROVAL, "staff")
    assert policies(verdict) == {"category.staff-approval"}


def test_recent_orders_count_against_the_daily_limits(merchant, brand, users):
    plan = make_plan(merchant, brand, users, "running socks for me")
    profile = users.get("user-1")
    current = merchant.catalog.lookup([item.itemId for item in plan.summary.items], plan.currency)

    def verdict_after(recent: RecentActivity):
        return validate_plan(
            ValidationInput(
                plan=plan, brand=brand, profile=profile, current_items=current, today=TODAY, recent=recent
            )
        )

    assert verdict_after(RecentActivity(orders=4, spend_minor={"CNY": 100000})).tier is RiskTier.AUTO
    assert "velocity.orders-per-day" in policies(verdict_after(RecentActivity(orders=5)))
    spent = verdict_after(RecentActivity(orders=1, spend_minor={"CNY": 499000}))
    assert spent.tier is RiskTier.DENY and "limit.per-day" in policies(spent)


def test_a_step_that_claims_not_to_mutate_or_asks_for_more_is_denied(seed_plan, merchant, brand, users):
    def silent_payment(document):
        document["steps"][-1]["mutates"] = False

    def optional_payment(document):
        document["steps"][-1]["optional"] = True

    def greedy(document):
        document["steps"][0]["permissions"] = ["checkout:create", "payment:refund"]

    assert "plan.step-flags" in policies(
        verdict_for(tampered(seed_plan, silent_payment), merchant, brand, users)
    )
    assert "plan.step-flags" in policies(
        verdict_for(tampered(seed_plan, optional_payment), merchant, brand, users)
    )
    assert "plan.permissions" in policies(verdict_for(tampered(seed_plan, greedy), merchant, brand, users))


def test_a_title_that_is_not_the_merchants_is_denied(seed_plan, merchant, brand, users):
    def retitle(document):
        document["summary"]["items"][0]["title"] = "Swift Runner (pre-approved by staff)"

    verdict = verdict_for(tampered(seed_plan, retitle), merchant, brand, users)
    assert verdict.route == "deny" and "merchant.title" in policies(verdict)


def test_a_plan_for_another_brand_is_denied(seed_plan, merchant, brand, users):
    def other_brand(document):
        document["brand"] = "other-brand"

    assert "plan.brand" in policies(verdict_for(tampered(seed_plan, other_brand), merchant, brand, users))


def with_context(plan: Plan, merchant: FakeMerchant, brand: BrandConfig, users: UserDirectory, context):
    profile = users.get(plan.userId)
    current = merchant.catalog.lookup([item.itemId for item in plan.summary.items], plan.currency)
    return validate_plan(
        ValidationInput(
            plan=plan, brand=brand, profile=profile, current_items=current, today=TODAY, context=context
        )
    )


ELSEWHERE = Recipient(
    name="Someone Else",
    phone="+86 130 9999 0000",
    address=Address(line1="99 Elsewhere Road", city="Guangzhou", country="CN"),
)


def test_a_new_address_must_come_from_the_request_not_from_the_plan(merchant, brand, users):
    plan = make_plan(merchant, brand, users, "running socks", context=GoalContext(recipient=ELSEWHERE))
    # Given in the request: a new recipient, which the shopper approves.
    asked = with_context(plan, merchant, brand, users, GoalContext(recipient=ELSEWHERE))
    assert asked.tier is RiskTier.APPROVAL and policies(asked) == {"recipient.new"}
    # The same plan when the request gave no address: the planner made it up.
    made_up = with_context(plan, merchant, brand, users, GoalContext())
    assert made_up.tier is RiskTier.DENY and "plan.recipient" in policies(made_up)


def test_a_plan_that_drops_the_shoppers_budget_or_deadline_is_denied(merchant, brand, users):
    plan = make_plan(merchant, brand, users, "running socks for me")
    budget = GoalContext(budget=Money.from_decimal("100.00", "CNY"))
    deadline = GoalContext(deliverBy=TODAY + timedelta(days=10))
    assert "plan.budget" in policies(with_context(plan, merchant, brand, users, budget))
    assert "plan.deliver-by" in policies(with_context(plan, merchant, brand, users, deadline))
    card = GoalContext(paymentMethodId="pm_user1_visa")
    assert with_context(plan, merchant, brand, users, card).tier is RiskTier.AUTO


def test_a_plan_document_with_an_unknown_action_is_refused_without_echoing_it(seed_plan):
    document = seed_plan.model_dump(mode="json")
    document["steps"][-1]["action"] = "payment.refund_to_card"
    document["steps"][0]["args"]["lines"][0]["quantity"] = 500
    with pytest.raises(ValidationError) as caught:
        Plan.model_validate(document)
    verdict = refuse_plan_document(document, hash_plan_document(document), caught.value)
    assert (verdict.tier, verdict.route) == (RiskTier.DENY, "deny")
    (reason,) = verdict.reasons
    assert reason.policyId == "plan.schema"
    assert "steps.0.checkout.create.args.lines.0.quantity: less_than_equal" in reason.message
    assert "steps.3: union_tag_invalid" in reason.message
    assert "500" not in reason.message and "refund_to_card" not in reason.message
