"""The validator on what a merchant settles: its currency, its delivery promises, which merchant it is."""

from __future__ import annotations

import re
from datetime import date

from cartpilot.approvals.page import render_approval_page
from cartpilot.brands.users import UserDirectory
from cartpilot.goals.model import GoalContext
from cartpilot.plans.model import Plan
from cartpilot.plans.validation import ValidationInput, validate_plan
from cartpilot.plans.verdicts import RiskTier, Verdict
from tests.fakes import TODAY, FakeMerchant
from tests.fakes.merchant import cny, usd
from tests.unit.stages import socks_plan, wait_for_approval

DEADLINE = date(2026, 12, 10)


def verdict_on(
    plan: Plan, merchant: FakeMerchant, brand, users: UserDirectory, context: GoalContext | None = None
) -> Verdict:
    profile = users.get(plan.userId)
    assert profile is not None
    current = merchant.catalog.lookup([item.itemId for item in plan.summary.items], plan.currency)
    return validate_plan(
        ValidationInput(plan=plan, brand=brand, profile=profile, current_items=current, today=TODAY,
                        context=context)
    )  # fmt: skip


def reasons(verdict: Verdict) -> dict[str, str]:
    return {finding.policyId: finding.message for finding in verdict.reasons}


def test_a_deadline_no_option_promises_to_meet_is_the_shoppers_call(merchant, brand, users):
    plan = socks_plan(merchant, brand, users, deliver_by=DEADLINE, promised_delivery=False)

    verdict = verdict_on(plan, merchant, brand, users, GoalContext(deliverBy=DEADLINE))

    assert (verdict.tier, verdict.route, verdict.approver) == (RiskTier.APPROVAL, "approve", "user")
    assert reasons(verdict) == {
        "goal.deliver-by-unpromised": "Standard promises no delivery date: it may arrive after the deadline 2026-12-10"
    }


def test_a_promised_window_inside_the_deadline_runs_and_one_past_it_is_denied(merchant, brand, users):
    on_time = socks_plan(merchant, brand, users, deliver_by=DEADLINE)  # arrives by 2026-12-01
    assert verdict_on(on_time, merchant, brand, users).tier is RiskTier.AUTO

    late = socks_plan(merchant, brand, users, deliver_by=date(2026, 11, 30))
    verdict = verdict_on(late, merchant, brand, users)
    assert verdict.tier is RiskTier.DENY
    assert reasons(verdict)["goal.deliver-by"] == (
        "Standard may arrive 2026-12-01, after the deadline 2026-11-30"
    )


def test_without_a_deadline_an_option_without_dates_is_no_concern(merchant, brand, users):
    plan = socks_plan(merchant, brand, users, promised_delivery=False)
    assert verdict_on(plan, merchant, brand, users).tier is RiskTier.AUTO


def test_the_approval_page_says_no_date_is_promised_and_never_on_time(merchant, brand, users):
    plan = socks_plan(merchant, brand, users, deliver_by=DEADLINE, promised_delivery=False)
    pending = wait_for_approval(merchant, brand, users, "", plan=plan)
    view = pending.desk.open(pending.approval_id, pending.link)

    html = render_approval_page(view, brand, action_url="/approvals/" + pending.approval_id)

    def text_of(test_id: str) -> str:
        match = re.search(rf'data-testid="{test_id}"[^>]*>([^<]*)<', html)
        assert match, test_id
        return match.group(1)

    assert text_of("delivery") == "No delivery date promised"
    assert text_of("deadline") == "(no delivery date promised: it may arrive after that)"
    assert "(on time)" not in html and "Arrives" not in html
    assert 'data-policy="goal.deliver-by-unpromised"' in html


def test_the_page_shows_the_promised_window_as_before(merchant, brand, users):
    plan = socks_plan(merchant, brand, users, deliver_by=DEADLINE, promised_delivery=False)
    window = plan.summary.shipping.model_copy(update={"earliestDelivery": date(2026, 11, 28),
                                                      "latestDelivery": date(2026, 12, 1)})  # fmt: skip
    plan = plan.model_copy(update={"summary": plan.summary.model_copy(update={"shipping": window})})
    # Make it ask anyway: to the friend in Beijing is not home. The page is what matters here.
    pending = wait_for_approval(merchant, brand, users, "", plan=_to_friend(plan, users))
    html = render_approval_page(pending.desk.open(pending.approval_id, pending.link), brand, action_url="/a")
    assert 'Arrives <span data-testid="delivery">2026-11-28 to 2026-12-01</span>' in html
    assert '<span class="ok" data-testid="deadline">(on time)</span>' in html


def _to_friend(plan: Plan, users: UserDirectory) -> Plan:
    profile = users.get("user-1")
    assert profile is not None
    friend = profile.recipient("friend-beijing")
    assert friend is not None
    steps = [
        step.model_copy(update={"args": step.args.model_copy(update={"recipientId": friend.id})})
        if step.action.value == "fulfillment.select"
        else step
        for step in plan.steps
    ]
    summary = plan.summary.model_copy(update={"recipient": friend.recipient, "recipientId": friend.id})
    return plan.model_copy(update={"steps": steps, "summary": summary})


def test_a_budget_is_held_against_a_dollar_plan_at_the_brands_rate(merchant, brand, users):
    dollars = socks_plan(merchant, brand, users)
    # The fake shop sells these socks in yuan; the validator reads the plan's own numbers here.
    price = usd("9.00")
    items = [item.model_copy(update={"unitPrice": price}) for item in dollars.summary.items]
    shipping = dollars.summary.shipping.model_copy(update={"price": usd("0.00")})
    steps = [
        step.model_copy(
            update={"args": step.args.model_copy(update={"currency": "USD"}), "estimatedCost": price}
        )
        if step.action.value == "checkout.create"
        else step.model_copy(
            update={"args": step.args.model_copy(update={"amount": price}), "estimatedCost": price}
        )
        if step.action.value == "payment.complete"
        else step.model_copy(update={"estimatedCost": usd("0.00")})
        for step in dollars.steps
    ]

    def with_budget(budget_yuan: str) -> Plan:
        summary = dollars.summary.model_copy(
            update={"items": items, "shipping": shipping, "subtotal": price, "total": price,
                    "budget": cny(budget_yuan)}
        )  # fmt: skip
        return dollars.model_copy(update={"currency": "USD", "steps": steps, "summary": summary})

    over = verdict_on(with_budget("63.89"), merchant, brand, users, GoalContext(budget=cny("63.89")))
    within = verdict_on(with_budget("63.90"), merchant, brand, users, GoalContext(budget=cny("63.90")))

    assert reasons(over)["goal.budget"] == "9.00 USD (63.90 CNY) is over the budget of 63.89 CNY"
    assert "goal.budget" not in reasons(within)


def test_a_plan_for_another_merchant_than_the_shopper_named_is_denied(merchant, brand, users):
    plan = socks_plan(merchant, brand, users)
    asked_elsewhere = verdict_on(plan, merchant, brand, users, GoalContext(merchantId="sandbox-outlet"))
    asked_here = verdict_on(plan, merchant, brand, users, GoalContext(merchantId="sandbox-merchant"))

    assert asked_elsewhere.tier is RiskTier.DENY
    assert (
        reasons(asked_elsewhere)["plan.merchant"]
        == "the plan buys from another merchant than the shopper asked"
    )
    assert asked_here.tier is RiskTier.AUTO
