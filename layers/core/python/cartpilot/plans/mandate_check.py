"""Holds an occurrence of a schedule to the schedule's standing mandate before anything runs.

An occurrence goal carries ``scheduleId``. Its schedule's mandate is read and its signature verified
against the published plan-signing keys first: a mandate changed in storage (a larger budget, another
merchant) blocks the occurrence. Then the plan must be within every constraint (per occurrence,
merchant, categories, execution window) and its total must fit what is left of ``maxTotal``, held
atomically (``plans.mandate_budget``). Outside the mandate the plan is never run on the mandate's
authority: it needs a fresh approval, with the reason on the approval page. The mandate only ever
makes a verdict stricter: a plan the brand's policies deny stays denied, one they send to approval
still goes there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from cartpilot.brands.categories import key_matches
from cartpilot.brands.config import BrandConfig
from cartpilot.brands.rates import NoCurrencyRate, in_brand_currency
from cartpilot.commerce.ports import ProductVariant
from cartpilot.goals.ledger import GoalLedger
from cartpilot.kernel.money import Money
from cartpilot.plans.mandate_budget import MandateBudget, MandateBudgetExhausted
from cartpilot.plans.model import Plan
from cartpilot.plans.verdicts import Finding, RiskTier, Verdict, route_for, stricter
from cartpilot.schedules.mandate import Mandate, SignedMandate, verify_signed_mandate
from cartpilot.schedules.model import ScheduleRecord

if TYPE_CHECKING:
    # Built by the caller when a schedule's mandate is checked: the validator starts without cryptography.
    from cartpilot.audit.public_keys import PlanSignatureVerifier


class ScheduleReader(Protocol):
    def get(self, schedule_id: str) -> ScheduleRecord | None: ...


def _approval(policy: str, message: str) -> Finding:
    return Finding(policyId=policy, tier=RiskTier.APPROVAL, message=message)


def signed_mandate_of(record: ScheduleRecord) -> SignedMandate | None:
    """The schedule's signed mandate, when it is bound to this very schedule, user and client (the
    signature covers those; a mandate moved onto another schedule or user is refused here)."""
    signed = record.signedMandate
    if signed is None:
        return None
    if (signed.scheduleId, signed.userId, signed.clientId) != (
        record.scheduleId,
        record.userId,
        record.clientId,
    ):
        return None
    return signed


def _item_categories(plan: Plan, current_items: Sequence[ProductVariant]) -> dict[str, tuple[str, ...]]:
    """Each item's categories as the merchant gives them (every path level), else the plan's."""
    merchant = {variant.id: (variant.category, *variant.categoryPath) for variant in current_items}
    return {item.itemId: merchant.get(item.itemId, (item.category,)) for item in plan.summary.items}


def mandate_findings(
    plan: Plan,
    mandate: Mandate,
    brand: BrandConfig,
    *,
    now: datetime,
    current_items: Sequence[ProductVariant] = (),
) -> list[Finding]:
    """Where the plan falls outside the mandate (the budget's remainder is checked when held)."""
    findings: list[Finding] = []
    total = plan.summary.total
    try:
        over = in_brand_currency(total, brand).exceeds(in_brand_currency(mandate.maxPerOccurrence, brand))
    except NoCurrencyRate:
        findings.append(
            _approval("mandate.currency", f"the mandate cannot be applied to a plan in {total.currency}")
        )
    else:
        if over:
            findings.append(
                _approval(
                    "mandate.per-occurrence",
                    f"{total.format()} is over the standing mandate's "
                    f"{mandate.maxPerOccurrence.format()} per occurrence",
                )
            )
    if mandate.merchants is not None and plan.merchant.id not in mandate.merchants:
        findings.append(
            _approval("mandate.merchant", f"the standing mandate does not cover merchant {plan.merchant.id}")
        )
    if mandate.categories is not None:
        categories = _item_categories(plan, current_items)
        for item in plan.summary.items:
            paths = categories[item.itemId]
            if not any(key_matches(word, path) for word in mandate.categories for path in paths):
                findings.append(
                    _approval(
                        "mandate.category",
                        f"{item.title} is not in the standing mandate's categories "
                        f"({', '.join(mandate.categories)})",
                    )
                )
    window = mandate.executionWindow
    if window is not None and not window.contains(now):
        findings.append(
            _approval("mandate.window", "this occurrence is outside the standing mandate's window")
        )
    return findings


def _stricter_verdict(verdict: Verdict, findings: list[Finding]) -> Verdict:
    tier = verdict.tier
    for finding in findings:
        tier = stricter(tier, finding.tier)
    reasons = [*verdict.reasons, *findings]
    if tier is not RiskTier.AUTO:
        reasons = [reason for reason in reasons if reason.tier is not RiskTier.AUTO]
    approver = None if tier in (RiskTier.AUTO, RiskTier.DENY) else verdict.approver or "user"
    return verdict.model_copy(
        update={"tier": tier, "route": route_for(tier), "approver": approver, "reasons": reasons}
    )


class MandateGuard:
    """The validator's check of an occurrence against its schedule's mandate."""

    def __init__(
        self,
        *,
        schedules: ScheduleReader,
        budget: MandateBudget,
        verifier: Callable[[], PlanSignatureVerifier],
        brand: BrandConfig,
        clock: Callable[[], datetime],
    ) -> None:
        # The execution window is judged on the schedules' clock, the one that fired the occurrence.
        self._clock = clock
        self._schedules = schedules
        self._budget = budget
        self._verifier = verifier
        self._brand = brand

    def judge(
        self,
        goal_id: str,
        user_id: str,
        schedule_id: str,
        plan: Plan,
        verdict: Verdict,
        *,
        ledger: GoalLedger,
        current_items: Sequence[ProductVariant] = (),
    ) -> Verdict:
        """The verdict with the mandate's say added; holds the plan's total when it is within it."""
        findings, detail = self._findings(
            goal_id, user_id, schedule_id, plan, verdict, self._clock(), current_items
        )
        if verdict.denied or findings:
            # Nothing runs on the mandate's authority: a hold from an earlier validation goes back.
            self._budget.release(goal_id)
        if detail is not None:
            detail["within"] = not findings
            detail["reasons"] = [finding.model_dump(mode="json") for finding in findings]
            ledger.note(
                goal_id, actor="validator", event="mandate.checked", plan_hash=verdict.planHash, detail=detail
            )
        return _stricter_verdict(verdict, findings) if findings else verdict

    def _findings(
        self,
        goal_id: str,
        user_id: str,
        schedule_id: str,
        plan: Plan,
        verdict: Verdict,
        now: datetime,
        current_items: Sequence[ProductVariant],
    ) -> tuple[list[Finding], dict[str, Any] | None]:
        record = self._schedules.get(schedule_id)
        if record is None or record.userId != user_id or record.brand != self._brand.name:
            return [_approval("mandate.schedule", "the schedule of this occurrence cannot be found")], None
        if record.signedMandate is None:
            return [], None  # a one-off schedule without a mandate: the brand's policies alone decide
        signed = signed_mandate_of(record)
        detail: dict[str, Any] = {"scheduleId": schedule_id}
        if signed is None or not verify_signed_mandate(signed, self._verifier()):
            denial = Finding(
                policyId="mandate.signature",
                tier=RiskTier.DENY,
                message="the schedule's mandate does not match the mandate signed at its creation",
            )
            return [denial], detail
        detail["signature"] = signed.signature.model_dump(mode="json")
        mandate = signed.mandate
        findings = mandate_findings(plan, mandate, self._brand, now=now, current_items=current_items)
        if findings or verdict.denied:
            return findings, detail
        amount = in_brand_currency(plan.summary.total, self._brand)
        max_total = in_brand_currency(mandate.maxTotal, self._brand)
        try:
            self._budget.reserve(schedule_id, goal_id, amount, max_total)
        except MandateBudgetExhausted:
            spent = self._budget.spent(schedule_id, max_total.currency)
            left = max(max_total.amount_minor - spent.amount_minor, 0)
            remaining = Money(amount_minor=left, currency=max_total.currency).format()
            findings.append(
                _approval(
                    "mandate.budget",
                    f"{plan.summary.total.format()} is over what is left of the standing mandate's "
                    f"{mandate.maxTotal.format()} budget ({remaining} left)",
                )
            )
        else:
            detail["held"] = amount.model_dump(mode="json")
        return findings, detail
