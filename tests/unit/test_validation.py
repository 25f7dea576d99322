from datetime import date

from cartpilot.brands import BrandConfig
from cartpilot.plans import Plan
from cartpilot.users import UserDirectory
from cartpilot.validation import ValidationInput, validate_plan
from cartpilot.verdicts import RiskTier
from tests.fakes import TODAY, FakeMerchant
from tests.unit.conftest import make_plan


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
    assert (verdict.tier, verdict.route, verdict.reasons) == (RiskTier.AUTO, "auto", [])


def test_over_budget_is_denied(merchant, brand, users):
    plan = make_plan(merchant, brand, users, "running shoes size 42 for me, budget 500 CNY")
    verdict = verdict_for(plan, merchant, brand, users)
    assert verdict.tier is RiskTier.DENY and "goal.budget" in policies(verdict)


def test_missed_deadline_is_denied(merchant, brand, users):
    plan = make_plan(merchant, brand, users, "running socks for me by 2026-11-26")
    assert "goal.deliver-by" in policies(verdict_for(plan, merchant, brand, users))


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
