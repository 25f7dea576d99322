"""Runs a brand's policy tests (``brands/<brand>/policy-tests.yaml``): orders in, verdicts out.

Each case describes an order compactly; the runner builds the full plan from it (checkout,
shipping, payment, with the merchant's prices agreeing) and puts it through the same
``validate_plan`` a real goal goes through, so a case fails when the policies, the schema,
the request the validator builds or the validator's hygiene checks change behaviour.

A compliance team runs them with ``cartpilot policy test BRAND`` or, where only the core
package is installed, ``python -m cartpilot.brands.policy_tests BRAND [--brands-dir DIR]``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cartpilot.brands.activity import RecentActivity
from cartpilot.brands.config import BrandConfig, BrandConfigError, brand_dir, load_brand, load_yaml_model
from cartpilot.brands.users import UserProfile, directory_for
from cartpilot.commerce.ports import Address, ProductVariant, Recipient
from cartpilot.goals.model import GoalContext
from cartpilot.kernel.money import Money, total_of
from cartpilot.plans.model import (
    CheckoutCreateArgs,
    CheckoutCreateStep,
    FulfillmentSelectArgs,
    FulfillmentSelectStep,
    LineRef,
    MerchantTerms,
    PaymentCompleteArgs,
    PaymentCompleteStep,
    Plan,
    PlanItem,
    PlannerInfo,
    PlanSummary,
    ShippingChoice,
)
from cartpilot.plans.validation import ValidationInput, validate_plan
from cartpilot.plans.verdicts import RiskTier, Verdict

POLICY_TESTS_FILE = "policy-tests.yaml"

# The address a case ships to with ``recipient: new``: one no sandbox user has saved.
NEW_RECIPIENT = Recipient(
    name="Policy Test Recipient",
    phone="+86 130 0000 0000",
    address=Address(line1="1 Test Avenue", city="Guangzhou", region="GD", postalCode="510000", country="CN"),
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class CaseItem(_Strict):
    item: str = Field(min_length=1, max_length=80)
    category: str = Field(min_length=1)
    categoryPath: str | None = Field(
        default=None,
        description='The merchant\'s category path ("Home & Garden > Kitchen > Kitchen Knives"); default: category',
    )
    price: int = Field(ge=0, description="Unit price in minor units")
    quantity: int = Field(default=1, ge=1, le=20)


class CaseRecent(_Strict):
    orders: int = Field(default=0, ge=0)
    spend: int = Field(default=0, ge=0, description="Minor units of the brand's currency")


class CaseExpectation(_Strict):
    tier: RiskTier
    reasons: list[str]
    approver: Literal["user", "staff"] | None = None
    stepUp: bool | None = Field(default=None, description="Whether approving also needs a one-time code")


class PolicyTestCase(_Strict):
    name: str = Field(min_length=1)
    checks: str = Field(min_length=1, description="The policy this case is about")
    user: str = "user-1"
    items: list[CaseItem] = Field(min_length=1)
    shipping: int = Field(default=0, ge=0)
    recipient: str = "home"
    paymentMethod: str | None = None
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    merchant: str | None = Field(default=None, description="The plan's merchant; default: the brand's first")
    deliverBy: date | None = Field(default=None, description="The shopper's deadline, given in the request")
    promisedDelivery: bool = Field(
        default=True, description="False: the shipping option gives no delivery window"
    )
    recent: CaseRecent = CaseRecent()
    today: date | None = None
    expect: CaseExpectation


class PolicyTestFile(_Strict):
    today: date
    cases: list[PolicyTestCase] = Field(min_length=1)


@dataclass(frozen=True)
class CaseResult:
    case: PolicyTestCase
    verdict: Verdict | None
    problem: str | None  # None when the case passed

    @property
    def passed(self) -> bool:
        return self.problem is None


def policy_tests_path(brand: str, root: Path | None = None) -> Path:
    return brand_dir(brand, root) / POLICY_TESTS_FILE


def load_policy_tests(path: Path) -> PolicyTestFile:
    return load_yaml_model(path, PolicyTestFile)


def plan_for_case(case: PolicyTestCase, brand: BrandConfig, profile: UserProfile, today: date) -> Plan:
    """The plan a planner would have made for the case's order, consistent in every number."""
    currency = case.currency or brand.currency
    items = [
        PlanItem(
            itemId=line.item,
            productId=line.item,
            title=_title(line),
            category=line.category,
            quantity=line.quantity,
            unitPrice=Money(amount_minor=line.price, currency=currency),
        )
        for line in case.items
    ]
    subtotal = total_of([item.unitPrice.times(item.quantity) for item in items], currency)
    shipping_price = Money(amount_minor=case.shipping, currency=currency)
    total = subtotal + shipping_price
    if case.recipient == "new":
        recipient_id, recipient = "context", NEW_RECIPIENT
    else:
        saved = profile.recipient(case.recipient)
        if saved is None:
            raise BrandConfigError(
                f"case {case.name!r}: {case.user} has no saved recipient {case.recipient!r}"
            )
        recipient_id, recipient = saved.id, saved.recipient
    default_method = profile.default_payment_method()
    payment_method = case.paymentMethod or (default_method.id if default_method else "pm_none")
    handler = next(iter(brand.paymentHandlers), "com.cartpilot.sandbox_tokenizer")
    return Plan(
        planId="p-policy-test",
        goalId="g-policy-test",
        userId=profile.userId,
        goal=case.name,
        brand=brand.name,
        currency=currency,
        merchant=MerchantTerms(
            id=case.merchant or brand.merchants[0].id,
            ucpVersion="2026-04-08",
            paymentHandler=handler,
            paymentHandlerId="policy-test",
            undo="cancel",
        ),
        planner=PlannerInfo(kind="rules", promptVersion="policy-test"),
        steps=[
            CheckoutCreateStep(
                id="s1",
                args=CheckoutCreateArgs(
                    lines=[LineRef(itemId=item.itemId, quantity=item.quantity) for item in items],
                    currency=currency,
                ),
                permissions=["checkout:create"],
                estimatedCost=subtotal,
                justification="Open a checkout for the case's items.",
            ),
            FulfillmentSelectStep(
                id="s2",
                args=FulfillmentSelectArgs(optionId="standard", recipientId=recipient_id),
                permissions=["checkout:update"],
                estimatedCost=shipping_price,
                justification="Ship with standard shipping.",
            ),
            PaymentCompleteStep(
                id="s3",
                requiresConfirmation=True,
                args=PaymentCompleteArgs(paymentMethodId=payment_method, amount=total),
                permissions=["payment:charge"],
                estimatedCost=total,
                justification="Pay for the order.",
            ),
        ],
        summary=PlanSummary(
            items=items,
            shipping=ShippingChoice(
                optionId="standard",
                title="Standard",
                price=shipping_price,
                earliestDelivery=today + timedelta(days=3) if case.promisedDelivery else None,
                latestDelivery=today + timedelta(days=6) if case.promisedDelivery else None,
            ),
            subtotal=subtotal,
            total=total,
            recipient=recipient,
            recipientId=recipient_id,
            deliverBy=case.deliverBy,
        ),
        createdAt=f"{today.isoformat()}T00:00:00.000Z",
    )


def _title(line: CaseItem) -> str:
    return f"{line.item} ({line.category})"


def _merchant_items(case: PolicyTestCase, currency: str) -> list[ProductVariant]:
    """What the merchant would say about the case's items: the prices the case gives, in stock."""
    return [
        ProductVariant(
            id=line.item,
            productId=line.item,
            title=_title(line),
            price=Money(amount_minor=line.price, currency=currency),
            stock=line.quantity,
            category=line.category,
            categoryPath=tuple(
                level.strip() for level in (line.categoryPath or "").split(">") if level.strip()
            ),
        )
        for line in case.items
    ]


def run_case(case: PolicyTestCase, brand: BrandConfig, default_today: date) -> CaseResult:
    profile = directory_for(brand).get(case.user)
    if profile is None:
        return CaseResult(case, None, f"no user {case.user!r} in the brand's users")
    today = case.today or default_today
    try:
        plan = plan_for_case(case, brand, profile, today)
    except (BrandConfigError, ValidationError) as exc:
        return CaseResult(case, None, f"the case does not make a plan: {exc}")
    verdict = validate_plan(
        ValidationInput(
            plan=plan,
            brand=brand,
            profile=profile,
            current_items=_merchant_items(case, plan.currency),
            today=today,
            recent=RecentActivity(orders=case.recent.orders, spend_minor={brand.currency: case.recent.spend}),
            context=GoalContext(
                recipient=NEW_RECIPIENT if case.recipient == "new" else None, deliverBy=case.deliverBy
            ),
        )
    )
    return CaseResult(case, verdict, _mismatch(case.expect, verdict))


def _mismatch(expect: CaseExpectation, verdict: Verdict) -> str | None:
    got = sorted({reason.policyId for reason in verdict.reasons})
    wanted = sorted(set(expect.reasons))
    problems = []
    if verdict.tier is not expect.tier or got != wanted:
        problems.append(f"expected {expect.tier.value} {wanted}, got {verdict.tier.value} {got}")
    if expect.approver is not None and verdict.approver != expect.approver:
        problems.append(f"expected approver {expect.approver}, got {verdict.approver}")
    if expect.stepUp is not None and verdict.stepUp != expect.stepUp:
        problems.append(f"expected stepUp {expect.stepUp}, got {verdict.stepUp}")
    return "; ".join(problems) or None


def run_policy_tests(brand_name: str, root: Path | None = None) -> list[CaseResult]:
    """Every case of the brand's policy-tests.yaml, in file order."""
    brand = load_brand(brand_name, root)
    tests = load_policy_tests(policy_tests_path(brand_name, root))
    return [run_case(case, brand, tests.today) for case in tests.cases]


def describe(result: CaseResult) -> str:
    if result.passed and result.verdict is not None:
        reasons = ", ".join(sorted({reason.policyId for reason in result.verdict.reasons}))
        return f"PASS  {result.case.name}  [{result.verdict.tier.value}: {reasons}]"
    return f"FAIL  {result.case.name}  ({result.case.checks}): {result.problem}"


def report(brand_name: str, root: Path | None = None) -> int:
    """Prints every case; 0 when all pass, 1 when any fails, 2 when the brand's files are broken."""
    try:
        results = run_policy_tests(brand_name, root)
    except BrandConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{brand_name}: {len(results)} policy tests ({policy_tests_path(brand_name, root)})")
    for result in results:
        print(f"  {describe(result)}")
    failed = sum(1 for result in results if not result.passed)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cartpilot.brands.policy_tests", description=__doc__)
    parser.add_argument("brand", nargs="?", default="sandbox")
    parser.add_argument("--brands-dir", type=Path, default=None, help="where the brands live")
    args = parser.parse_args(argv)
    return report(args.brand, args.brands_dir)


if __name__ == "__main__":
    sys.exit(main())
