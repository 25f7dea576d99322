"""Checks a plan before anything runs: is it well formed, is it true, and is it allowed.

A plan is untrusted input (a model or a shopper's words may have shaped it), so
the validator re-derives every number and checks every reference it can against
the user's profile and the merchant's current prices. Policy limits then decide
the risk tier: run it, ask the shopper, ask harder, ask staff, or refuse.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date

from cartpilot.brands import BrandConfig
from cartpilot.clock import today, utc_now_iso
from cartpilot.commerce import ProductVariant
from cartpilot.connectors.errors import PlanIntegrityError
from cartpilot.goals import GoalStatus
from cartpilot.ledger import GoalLedger
from cartpilot.money import total_of
from cartpilot.plans import ACTION_ORDER, Action, AddItemsStep, CheckoutCreateStep, Plan
from cartpilot.users import UserDirectory, UserProfile
from cartpilot.verdicts import Finding, RiskTier, Verdict, route_for, stricter


@dataclass(frozen=True)
class ValidationInput:
    plan: Plan
    brand: BrandConfig
    profile: UserProfile
    current_items: list[ProductVariant]
    today: date


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

    summary = plan.summary
    currencies = {plan.currency, summary.total.currency, summary.shipping.price.currency}
    currencies |= {item.unitPrice.currency for item in summary.items}
    if len(currencies) != 1:
        findings.append(_deny("plan.currency", "the plan mixes currencies"))
        return findings
    subtotal = total_of([item.unitPrice.times(item.quantity) for item in summary.items], plan.currency)
    if subtotal != summary.subtotal or subtotal + summary.shipping.price != summary.total:
        findings.append(_deny("plan.arithmetic", "the plan's total is not the sum of its items and shipping"))

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
        if variant.category != item.category:
            findings.append(_deny("merchant.category", f"{variant.title} is not in category {item.category}"))
    return findings


def check_policies(plan: Plan, brand: BrandConfig, profile: UserProfile, today: date) -> list[Finding]:
    """The brand's limits and thresholds: these decide who must approve."""
    findings: list[Finding] = []
    limits = brand.limits
    summary = plan.summary
    total = summary.total
    if total.currency != brand.currency:
        return [_deny("brand.currency", f"the brand trades in {brand.currency}")]
    if total.exceeds(limits.perOrder):
        findings.append(
            _deny(
                "limit.per-order",
                f"{total.format()} is above the per-order limit of {limits.perOrder.format()}",
            )
        )
    elif total.exceeds(limits.strongApprovalThreshold):
        findings.append(
            Finding(
                policyId="threshold.strong-approval",
                tier=RiskTier.STRONG_APPROVAL,
                message=f"{total.format()} is above {limits.strongApprovalThreshold.format()}: confirm by typing",
            )
        )
    elif total.exceeds(limits.confirmationThreshold):
        findings.append(
            Finding(
                policyId="threshold.confirmation",
                tier=RiskTier.APPROVAL,
                message=f"{total.format()} is above {limits.confirmationThreshold.format()}",
            )
        )
    if (
        summary.budget is not None
        and total.currency == summary.budget.currency
        and total.exceeds(summary.budget)
    ):
        findings.append(
            _deny("goal.budget", f"{total.format()} is over the budget of {summary.budget.format()}")
        )
    if summary.deliverBy is not None:
        if summary.shipping.latestDelivery > summary.deliverBy:
            findings.append(
                _deny(
                    "goal.deliver-by",
                    f"{summary.shipping.title} may arrive {summary.shipping.latestDelivery.isoformat()}, "
                    f"after the deadline {summary.deliverBy.isoformat()}",
                )
            )
        if summary.deliverBy < today:
            findings.append(_deny("goal.deliver-by", "the delivery deadline is in the past"))
    for item in summary.items:
        rule = brand.restrictedCategories.get(item.category)
        if rule == "deny":
            findings.append(
                _deny(
                    "category.restricted",
                    f"{item.title} is in a category this brand does not sell through its assistant",
                )
            )
        elif rule == "staff":
            findings.append(
                Finding(
                    policyId="category.staff-approval",
                    tier=RiskTier.APPROVAL,
                    message=f"{item.title} needs staff approval",
                )
            )
    if summary.recipientId == "context":
        findings.append(
            Finding(
                policyId="recipient.new",
                tier=RiskTier.APPROVAL,
                message="ships to a recipient the user has not saved",
            )
        )
    elif summary.recipientId != profile.home.id:
        findings.append(
            Finding(
                policyId="recipient.not-home",
                tier=RiskTier.APPROVAL,
                message=f"ships to {summary.recipient.address.city}, not to the user's own address",
            )
        )
    if profile.trustLevel == 0:
        findings.append(
            Finding(policyId="user.new-account", tier=RiskTier.APPROVAL, message="the account is new")
        )
    return findings


def validate_plan(given: ValidationInput) -> Verdict:
    plan = given.plan
    findings = check_structure(plan, given.profile)
    findings += check_prices(plan, given.current_items, given.brand.priceTolerancePercent)
    findings += check_policies(plan, given.brand, given.profile, given.today)
    tier = RiskTier.AUTO
    for finding in findings:
        tier = stricter(tier, finding.tier)
    staff = any(finding.policyId == "category.staff-approval" for finding in findings)
    return Verdict(
        planId=plan.planId,
        planHash=plan.plan_hash(),
        tier=tier,
        route=route_for(tier),
        approver=None if tier in (RiskTier.AUTO, RiskTier.DENY) else ("staff" if staff else "user"),
        reasons=findings,
        checkedAt=utc_now_iso(),
    )


def validate_goal(
    goal_id: str, plan_hash: str, *, ledger: GoalLedger, brand: BrandConfig, users: UserDirectory
) -> Verdict:
    """The validation stage: checks the stored plan against the stored price snapshot and records the verdict."""
    goal = ledger.store.require(goal_id)
    ledger.transition(goal_id, GoalStatus.VALIDATING, actor="validator", event="validation.started")
    if goal.plan is None:
        raise LookupError(f"goal {goal_id} has no plan")
    plan = Plan.model_validate(goal.plan)
    if plan.plan_hash() != plan_hash or goal.planHash != plan_hash:
        raise PlanIntegrityError("the stored plan is not the plan the flow is validating")
    profile = users.get(goal.userId)
    if profile is None:
        raise LookupError(f"user {goal.userId} has no profile")
    snapshot = goal.priceCheck or {}
    current_items = (
        [ProductVariant.model_validate(item) for item in snapshot.get("items", [])]
        if snapshot.get("planId") == plan.planId
        else []
    )
    verdict = validate_plan(
        ValidationInput(plan=plan, brand=brand, profile=profile, current_items=current_items, today=today())
    )
    ledger.note(
        goal_id,
        actor="validator",
        event="plan.validated",
        plan_hash=plan_hash,
        detail={
            "tier": verdict.tier.value,
            "reasons": [reason.model_dump(mode="json") for reason in verdict.reasons],
        },
    )
    ledger.store.update(goal_id, updated_at=verdict.checkedAt, verdict=verdict.model_dump(mode="json"))
    return verdict
