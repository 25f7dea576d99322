"""Checks a plan before anything runs: is it well formed, is it true, and is it allowed.

A plan is untrusted input (a model or a shopper's words may have shaped it), so
the validator re-derives every number and checks every reference it can against
the user's profile, the shopper's structured request and the merchant's current
prices. The brand's Cedar policies (``brands/<brand>/policies.cedar``) then decide
the risk tier: run it, ask the shopper, ask harder, ask staff, or refuse.

No free text has a say: the goal's words, product titles and step justifications
never reach the policies, so words can make a verdict stricter (a different plan)
but never more lenient.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from pydantic import ValidationError

from cartpilot.brands.activity import LimitReached, OrderCounters, RecentActivity
from cartpilot.brands.config import BrandConfig
from cartpilot.brands.policy import PolicyDecision, evaluate_plan
from cartpilot.brands.rates import NoCurrencyRate, in_brand_currency
from cartpilot.brands.users import UserDirectory, UserProfile
from cartpilot.commerce.errors import PlanIntegrityError
from cartpilot.commerce.ports import ProductVariant, ShippingOption
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.model import GoalContext, GoalStatus, MalformedPlan, PriceCheck
from cartpilot.kernel.clock import today, utc_now, utc_now_iso
from cartpilot.kernel.money import Money, total_of
from cartpilot.kernel.observability import metrics
from cartpilot.plans.mandate_check import MandateGuard
from cartpilot.plans.model import (
    ACTION_ORDER,
    Action,
    AddItemsStep,
    CheckoutCreateStep,
    PaymentCompleteStep,
    Plan,
    ShippingChoice,
    hash_plan_document,
)
from cartpilot.plans.reservations import release_for_goal, reserve_for_goal
from cartpilot.plans.verdicts import Finding, RiskTier, Verdict, route_for, stricter
from cartpilot.rollout.gate import RolloutGate
from cartpilot.rollout.planned_only import hold_back

# What each action may be granted; a step claiming more is refused.
STEP_PERMISSIONS: dict[Action, frozenset[str]] = {
    Action.CHECKOUT_CREATE: frozenset({"checkout:create"}),
    Action.CHECKOUT_ADD_ITEMS: frozenset({"checkout:update"}),
    Action.FULFILLMENT_SELECT: frozenset({"checkout:update"}),
    Action.PAYMENT_COMPLETE: frozenset({"payment:charge"}),
}
# Only extras may be dropped by an approver; the order itself cannot lose its checkout or payment.
OPTIONAL_ACTIONS = frozenset({Action.CHECKOUT_ADD_ITEMS})


@dataclass(frozen=True)
class ValidationInput:
    plan: Plan
    brand: BrandConfig
    profile: UserProfile
    current_items: list[ProductVariant]
    today: date
    # Orders the user completed in the last 24 hours; validate_goal reads them from the counters.
    recent: RecentActivity = field(default_factory=RecentActivity)
    # The shopper's structured request, when known: the plan may not stray from it.
    context: GoalContext | None = None
    # The price check the current items came from: whether the merchant's checkout was asked.
    price_check: PriceCheck | None = None


def _deny(policy: str, message: str) -> Finding:
    return Finding(policyId=policy, tier=RiskTier.DENY, message=message)


def check_structure(plan: Plan, profile: UserProfile) -> list[Finding]:
    """Hygiene: the plan's steps, references and arithmetic agree with each other."""
    findings: list[Finding] = []
    ids = [step.id for step in plan.steps]
    if len(set(ids)) != len(ids):
        findings.append(_deny("plan.step-ids", "two steps share an id"))
    positions = [ACTION_ORDER.index(step.action) for step in plan.steps]
    if positions != sorted(positions) or Counter(step.action for step in plan.steps).most_common(1)[0][1] > 1:
        findings.append(_deny("plan.step-order", "steps are out of the allowed order or repeated"))
    actions = {step.action for step in plan.steps}
    for required in (Action.CHECKOUT_CREATE, Action.FULFILLMENT_SELECT, Action.PAYMENT_COMPLETE):
        if required not in actions:
            findings.append(_deny("plan.step-missing", f"the plan has no {required.value} step"))
    if plan.userId != profile.userId:
        findings.append(_deny("plan.user", "the plan was made for another user"))
    for step in plan.steps:
        # The executor runs only mutating steps: a payment marked otherwise would be skipped unseen.
        if not step.mutates:
            findings.append(
                _deny("plan.step-flags", f"step {step.id} ({step.action.value}) claims not to mutate")
            )
        if step.optional and step.action not in OPTIONAL_ACTIONS:
            findings.append(
                _deny("plan.step-flags", f"step {step.id} ({step.action.value}) cannot be optional")
            )
        extra = set(step.permissions) - STEP_PERMISSIONS[step.action]
        if extra:
            findings.append(_deny("plan.permissions", f"step {step.id} asks for {', '.join(sorted(extra))}"))

    summary = plan.summary
    currencies = {plan.currency, summary.total.currency, summary.shipping.price.currency}
    currencies |= {item.unitPrice.currency for item in summary.items}
    if summary.tax is not None:
        currencies.add(summary.tax.currency)
    if len(currencies) != 1:
        findings.append(_deny("plan.currency", "the plan mixes currencies"))
        return findings
    subtotal = total_of([item.unitPrice.times(item.quantity) for item in summary.items], plan.currency)
    tax = summary.tax or Money.zero(plan.currency)
    if subtotal != summary.subtotal or subtotal + summary.shipping.price + tax != summary.total:
        findings.append(
            _deny("plan.arithmetic", "the plan's total is not the sum of its items, shipping and tax")
        )

    planned_lines = Counter[tuple[str, int]]()
    for step in plan.steps:
        if isinstance(step, CheckoutCreateStep | AddItemsStep):
            planned_lines.update((line.itemId, line.quantity) for line in step.args.lines)
        if isinstance(step, CheckoutCreateStep) and step.args.currency != plan.currency:
            findings.append(_deny("plan.currency", "the checkout currency differs from the plan's"))
        if step.action is Action.FULFILLMENT_SELECT and (
            step.args.optionId != summary.shipping.optionId or step.args.recipientId != summary.recipientId
        ):
            findings.append(_deny("plan.shipping", "the shipping step does not match the plan summary"))
        if step.action is Action.PAYMENT_COMPLETE:
            if step.args.amount != summary.total:
                findings.append(_deny("plan.payment-amount", "the payment amount is not the plan's total"))
            if not profile.owns_payment_method(step.args.paymentMethodId):
                findings.append(_deny("plan.payment-method", "the payment method is not one of the user's"))
    summary_lines = Counter((item.itemId, item.quantity) for item in summary.items)
    if planned_lines != summary_lines:
        findings.append(_deny("plan.items", "the checkout steps do not buy exactly the items in the summary"))

    if summary.recipientId != "context":
        saved = profile.recipient(summary.recipientId)
        if saved is None or saved.recipient != summary.recipient:
            findings.append(_deny("plan.recipient", "the recipient is not one the user has saved"))
    return findings


def check_prices(plan: Plan, current_items: list[ProductVariant], tolerance_percent: int) -> list[Finding]:
    """Truth: every item exists, is in stock, and costs what the plan says (within tolerance)."""
    findings: list[Finding] = []
    current = {variant.id: variant for variant in current_items}
    for item in plan.summary.items:
        variant = current.get(item.itemId)
        if variant is None:
            findings.append(_deny("merchant.item", f"{item.itemId} is not sold by the merchant"))
            continue
        if variant.stock < item.quantity:
            findings.append(_deny("merchant.stock", f"{variant.title} is out of stock"))
        if variant.price.currency != item.unitPrice.currency:
            findings.append(_deny("merchant.price", f"{variant.title} is priced in {variant.price.currency}"))
            continue
        allowed = variant.price.amount_minor * tolerance_percent // 100
        if abs(variant.price.amount_minor - item.unitPrice.amount_minor) > allowed:
            findings.append(
                _deny(
                    "merchant.price",
                    f"{variant.title} costs {variant.price.format()}, the plan says {item.unitPrice.format()}",
                )
            )
        if variant.title != item.title:
            # The approver reads the title: it must be the merchant's, not words a planner chose.
            findings.append(_deny("merchant.title", f"{item.itemId} is not called what the plan says"))
        if variant.category != item.category:
            findings.append(_deny("merchant.category", f"{variant.title} is not in category {item.category}"))
    return findings


def check_session(plan: Plan, price_check: PriceCheck | None) -> list[Finding]:
    """Truth from the merchant's checkout: it takes the plan's lines and offers its shipping."""
    if price_check is None or not price_check.sessionChecked or price_check.planId != plan.planId:
        return []
    if price_check.refusal is not None:
        return [
            _deny("merchant.checkout", f"the merchant's checkout refused the order: {price_check.refusal}")
        ]
    if price_check.shippingOptions is not None:
        return check_shipping(plan.summary.shipping, price_check.shippingOptions)
    if price_check.shippingOffered is False:
        shipping = plan.summary.shipping
        return [
            _deny(
                "merchant.shipping",
                f"the merchant no longer offers {shipping.title} at {shipping.price.format()}",
            )
        ]
    return []


def check_shipping(chosen: ShippingChoice, offered: Sequence[ShippingOption]) -> list[Finding]:
    """The plan's shipping is an option the merchant offers now, at its price and with its window.

    A plan is untrusted: a same-day window, a cheaper price or a free option the merchant does not
    offer would make the order look faster or cheaper than it is (and pass a deadline or a budget).
    The option is found by the merchant's id for it, else by its title (ids may differ between the
    merchant's sessions); everything the approver reads about it must then be the merchant's.
    """
    option = next((o for o in offered if o.id == chosen.optionId), None) or next(
        (o for o in offered if o.title == chosen.title), None
    )
    if option is None:
        return [_deny("merchant.shipping", f"the merchant does not offer {chosen.title} for this order")]
    findings: list[Finding] = []
    if option.title != chosen.title:
        findings.append(
            _deny("merchant.shipping", f"the merchant calls this option {option.title}, not {chosen.title}")
        )
    if option.price != chosen.price:
        findings.append(
            _deny(
                "merchant.shipping",
                f"the merchant charges {option.price.format()} for {option.title}, "
                f"the plan says {chosen.price.format()}",
            )
        )
    if (option.earliestDelivery, option.latestDelivery) != (chosen.earliestDelivery, chosen.latestDelivery):
        findings.append(
            _deny(
                "merchant.shipping",
                f"{option.title} delivers {_window(option.earliestDelivery, option.latestDelivery)}, "
                f"the plan says {_window(chosen.earliestDelivery, chosen.latestDelivery)}",
            )
        )
    return findings


def _window(earliest: date | None, latest: date | None) -> str:
    if earliest is None and latest is None:
        return "with no promised date"
    return f"between {earliest.isoformat() if earliest else 'now'} and {latest.isoformat() if latest else 'later'}"


def check_request(plan: Plan, brand: BrandConfig, context: GoalContext | None) -> list[Finding]:
    """The plan serves this brand and keeps to what the shopper asked for in structured fields.

    A recipient the user has not saved may only come from the request's ``context``: an
    address a planner lifted from the goal's words (or a product description) is refused.
    """
    findings: list[Finding] = []
    summary = plan.summary
    if plan.brand != brand.name:
        findings.append(_deny("plan.brand", "the plan was made for another brand"))
    if context is None:
        return findings
    if context.merchantId is not None and plan.merchant.id != context.merchantId:
        findings.append(_deny("plan.merchant", "the plan buys from another merchant than the shopper asked"))
    if context.recipient is not None:
        if summary.recipient != context.recipient:
            findings.append(
                _deny("plan.recipient", "the plan does not ship to the recipient the shopper gave")
            )
    elif summary.recipientId == "context":
        findings.append(_deny("plan.recipient", "the plan ships to an address the shopper did not give"))
    payment = next((step for step in plan.steps if isinstance(step, PaymentCompleteStep)), None)
    if context.paymentMethodId is not None and (
        payment is None or payment.args.paymentMethodId != context.paymentMethodId
    ):
        findings.append(_deny("plan.payment-method", "the plan does not pay the way the shopper asked"))
    if context.budget is not None and summary.budget != context.budget:
        findings.append(_deny("plan.budget", "the plan dropped or changed the shopper's budget"))
    if context.deliverBy is not None and summary.deliverBy != context.deliverBy:
        findings.append(_deny("plan.deliver-by", "the plan dropped or changed the shopper's deadline"))
    return findings


def check_goal_constraints(plan: Plan, today: date, brand: BrandConfig | None = None) -> list[Finding]:
    """The shopper's own limits: the budget and the delivery deadline.

    The budget is in the brand's currency; a plan priced in another is compared at the brand's
    rate, rounded up. A shipping option without a delivery window never counts as on time: with a
    deadline, the shopper decides whether to risk it (the approval page says no date is promised).
    """
    findings: list[Finding] = []
    summary = plan.summary
    if summary.budget is not None:
        findings += _check_budget(summary.total, summary.budget, brand)
    if summary.deliverBy is not None:
        shipping = summary.shipping
        if shipping.latestDelivery is None:
            findings.append(
                Finding(
                    policyId="goal.deliver-by-unpromised",
                    tier=RiskTier.APPROVAL,
                    message=f"{shipping.title} promises no delivery date: it may arrive after "
                    f"the deadline {summary.deliverBy.isoformat()}",
                )
            )
        elif not shipping.arrives_by(summary.deliverBy):
            findings.append(
                _deny(
                    "goal.deliver-by",
                    f"{shipping.title} may arrive {shipping.latestDelivery.isoformat()}, "
                    f"after the deadline {summary.deliverBy.isoformat()}",
                )
            )
        if summary.deliverBy < today:
            findings.append(_deny("goal.deliver-by", "the delivery deadline is in the past"))
    return findings


def _check_budget(total: Money, budget: Money, brand: BrandConfig | None) -> list[Finding]:
    compared = total
    if total.currency != budget.currency and brand is not None and budget.currency == brand.currency:
        # Without a rate the policies deny the plan; here it stays a currency mismatch.
        with contextlib.suppress(NoCurrencyRate):
            compared = in_brand_currency(total, brand)
    if compared.currency != budget.currency:
        return [_deny("goal.budget", f"the budget is in {budget.currency}, the plan in {total.currency}")]
    if compared.exceeds(budget):
        shown = total.format() if compared is total else f"{total.format()} ({compared.format()})"
        return [_deny("goal.budget", f"{shown} is over the budget of {budget.format()}")]
    return []


def check_policies(
    plan: Plan,
    brand: BrandConfig,
    profile: UserProfile,
    today: date,
    recent: RecentActivity | None = None,
    current_items: Sequence[ProductVariant] = (),
) -> PolicyDecision:
    """The brand's Cedar policies: limits, thresholds, categories, recipients, velocity, merchants.

    Restricted categories are read from the merchant's items (the price check), every level of their
    category paths: a planner's or a merchant's own category name cannot slip past the brand's keys.
    """
    merchant_categories = {variant.id: (variant.category, *variant.categoryPath) for variant in current_items}
    return evaluate_plan(plan, profile, brand, recent or RecentActivity(), today, merchant_categories)


def validate_plan(given: ValidationInput) -> Verdict:
    plan = given.plan
    findings = check_structure(plan, given.profile)
    findings += check_request(plan, given.brand, given.context)
    findings += check_prices(plan, given.current_items, given.brand.priceTolerancePercent)
    findings += check_session(plan, given.price_check)
    findings += check_goal_constraints(plan, given.today, given.brand)
    decision = check_policies(
        plan, given.brand, given.profile, given.today, given.recent, given.current_items
    )
    findings += decision.findings
    tier = decision.tier
    for finding in findings:
        tier = stricter(tier, finding.tier)
    if tier is not RiskTier.AUTO:
        # The permit that would have let it run is no reason once something else spoke.
        findings = [finding for finding in findings if finding.tier is not RiskTier.AUTO]
    return Verdict(
        planId=plan.planId,
        planHash=plan.plan_hash(),
        tier=tier,
        route=route_for(tier),
        # A finding outside the policies (a deadline no option promises) asks the shopper.
        approver=None if tier in (RiskTier.AUTO, RiskTier.DENY) else decision.approver or "user",
        reasons=findings,
        checkedAt=utc_now_iso(),
        stepUp=decision.step_up and tier not in (RiskTier.AUTO, RiskTier.DENY),
    )


def refuse_plan_document(document: dict[str, Any], plan_hash: str, error: ValidationError) -> Verdict:
    """A plan that does not fit the plan schema (an unknown action, arguments out of range, extra
    fields) is denied with the places it broke, never with the values in them."""
    places = [
        # The error type, not its message: a message may quote the offending input back.
        f"{'.'.join(str(part) for part in problem['loc']) or 'plan'}: {problem['type']}"
        for problem in error.errors(include_input=False, include_url=False)[:5]
    ]
    return Verdict(
        planId=str(document.get("planId", "unknown")),
        planHash=plan_hash,
        tier=RiskTier.DENY,
        route="deny",
        reasons=[_deny("plan.schema", "the plan does not fit the plan schema: " + "; ".join(places))],
        checkedAt=utc_now_iso(),
    )


def validate_goal(
    goal_id: str,
    plan_hash: str,
    *,
    ledger: GoalLedger,
    brand: BrandConfig,
    users: UserDirectory,
    counters: OrderCounters,
    price_check: PriceCheck | None = None,
    mandates: MandateGuard | None = None,
    rollout: RolloutGate | None = None,
) -> Verdict:
    """The validation stage: checks the stored plan against the merchant's current prices (the
    catalog function's snapshot, stored here on the goal), the shopper's request and their orders
    in the last 24 hours, and records the verdict. An occurrence of a schedule is also held to the
    schedule's mandate (``plans.mandate_check``). With ``rollout``, a plan the brand's rollout holds
    back is routed "planned-only" (``rollout.planned_only``)."""
    # The catalog's snapshot is stored in the same write as the status.
    checked: dict[str, Any] = {"priceCheck": price_check} if price_check is not None else {}
    ledger.transition(
        goal_id, GoalStatus.VALIDATING, actor="validator", event="validation.started", **checked
    )
    goal = ledger.store.require(goal_id)
    plan = goal.plan
    if plan is None:
        raise LookupError(f"goal {goal_id} has no plan")
    if isinstance(plan, MalformedPlan):
        if hash_plan_document(plan.document) != plan_hash or goal.planHash != plan_hash:
            raise PlanIntegrityError("the stored plan is not the plan the flow is validating")
        verdict = refuse_plan_document(plan.document, plan_hash, plan.schema_error())
    else:
        if plan.plan_hash() != plan_hash or goal.planHash != plan_hash:
            raise PlanIntegrityError("the stored plan is not the plan the flow is validating")
        profile = users.get(goal.userId)
        if profile is None:
            raise LookupError(f"user {goal.userId} has no profile")
        snapshot = goal.priceCheck
        current_items = snapshot.items if snapshot is not None and snapshot.planId == plan.planId else []
        given = ValidationInput(
            plan=plan,
            brand=brand,
            profile=profile,
            current_items=current_items,
            today=today(),
            context=goal.context,
            price_check=snapshot,
        )
        verdict = _validate_and_reserve(goal_id, given, counters=counters, ledger=ledger)
        schedule_id = getattr(goal, "scheduleId", None)
        if schedule_id:
            verdict = _hold_to_mandate(goal_id, schedule_id, given, verdict, mandates, counters, ledger)
    held: dict[str, Any] = {}
    if rollout is not None:
        verdict, planned_only = hold_back(
            goal_id, goal.userId, verdict, gate=rollout, ledger=ledger, counters=counters
        )
        if planned_only is not None:
            held["plannedOnly"] = planned_only
    ledger.note(
        goal_id,
        actor="validator",
        event="plan.validated",
        plan_hash=plan_hash,
        detail={
            "tier": verdict.tier.value,
            "reasons": [reason.model_dump(mode="json") for reason in verdict.reasons],
            **{name: value.model_dump(mode="json") for name, value in held.items()},
        },
        updated_at=verdict.checkedAt,
        verdict=verdict,
        **held,
    )
    if verdict.denied:
        metrics.add_metric(name="GoalsDenied", unit="Count", value=1)
    return verdict


# Another goal of the shopper may take the room between reading the counters and reserving: the
# plan is judged again on the new counts (the policies then say which limit), a few times at most.
_RESERVE_ATTEMPTS = 3


def _validate_and_reserve(
    goal_id: str, given: ValidationInput, *, counters: OrderCounters, ledger: GoalLedger
) -> Verdict:
    """Judges the plan on the shopper's last 24 hours, then holds its total against the daily limits.

    The hold is what makes the limits hold under concurrency: the counters refuse, atomically, a
    reservation past a limit. A denied plan holds nothing (a re-validated goal gives its hold back).
    """
    plan = given.plan
    for _ in range(_RESERVE_ATTEMPTS):
        now = utc_now()
        # The goal's own hold (a retried validation, a re-planned goal) is not competition for itself.
        recent = counters.recent_activity(plan.userId, now=now, excluding=goal_id)
        verdict = validate_plan(replace(given, recent=recent))
        if verdict.denied:
            release_for_goal(
                goal_id, counters=counters, ledger=ledger, actor="validator", why="plan denied", at=now
            )
            return verdict
        try:
            reserve_for_goal(
                goal_id, plan.userId, plan.summary.total, brand=given.brand, counters=counters,
                ledger=ledger, actor="validator", now=now, plan_hash=verdict.planHash,
                # The verdict's record follows in this invocation and moves the chain head past it.
                move_head=False,
            )  # fmt: skip
        except LimitReached:
            continue
        return verdict
    return verdict.model_copy(
        update={
            "tier": RiskTier.DENY,
            "route": route_for(RiskTier.DENY),
            "approver": None,
            "reasons": [
                _deny("limit.reservation", "the shopper's other orders took the room left in today's limits")
            ],
        }
    )


def _hold_to_mandate(
    goal_id: str,
    schedule_id: str,
    given: ValidationInput,
    verdict: Verdict,
    mandates: MandateGuard | None,
    counters: OrderCounters,
    ledger: GoalLedger,
) -> Verdict:
    """An occurrence of a schedule: its mandate may only make the verdict stricter."""
    if mandates is None:
        # No way to read the mandate here: the occurrence is not run on its authority.
        reason = Finding(
            policyId="mandate.unchecked",
            tier=RiskTier.APPROVAL,
            message="the standing mandate of this occurrence could not be checked",
        )
        tier = stricter(verdict.tier, RiskTier.APPROVAL)
        return verdict.model_copy(
            update={
                "tier": tier,
                "route": route_for(tier),
                "approver": None if tier is RiskTier.DENY else verdict.approver or "user",
                "reasons": [*(r for r in verdict.reasons if r.tier is not RiskTier.AUTO), reason],
            }
        )
    judged = mandates.judge(
        goal_id, given.plan.userId, schedule_id, given.plan, verdict,
        ledger=ledger, current_items=given.current_items,
    )  # fmt: skip
    if judged.denied and not verdict.denied:
        release_for_goal(
            goal_id, counters=counters, ledger=ledger, actor="validator", why="mandate refused", at=utc_now()
        )
    return judged
