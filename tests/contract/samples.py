"""Records with every typed field filled in, as the flow leaves them."""

from __future__ import annotations

import functools
from datetime import date
from typing import Any

from cartpilot.approvals.model import Approval, ApprovalStatus
from cartpilot.brands.config import load_brand
from cartpilot.brands.users import directory_for
from cartpilot.commerce.ports import Address, Recipient
from cartpilot.goals.model import (
    ApprovalSummary,
    GoalContext,
    GoalRecord,
    GoalStatus,
    PriceCheck,
    Receipt,
    ReceiptLine,
    StepResult,
)
from cartpilot.plans.model import Plan
from cartpilot.plans.verdicts import Finding, RiskTier, Verdict
from tests.conftest import SEED_GOAL, make_plan
from tests.fakes import FakeMerchant, cny

CREATED = "2026-11-25T08:00:00+00:00"
LATER = "2026-11-25T08:05:00+00:00"


@functools.cache
def _seed_plan() -> tuple[Plan, FakeMerchant]:
    brand = load_brand("sandbox")
    merchant = FakeMerchant()
    return make_plan(merchant, brand, directory_for(brand), SEED_GOAL), merchant


def seed_plan() -> Plan:
    return _seed_plan()[0]


def malformed_plan_document() -> dict[str, Any]:
    """The seed plan with a step no plan may hold: it no longer fits the plan schema."""
    document = seed_plan().model_dump(mode="json")
    document["steps"][-1]["action"] = "payment.refund"
    return document


def step(step_id: str, *, status: str = "DONE", at: str = LATER, **summary: Any) -> StepResult:
    return StepResult(stepId=step_id, action="checkout.create", status=status, summary=summary, at=at)


def bare_goal(goal_id: str, status: GoalStatus = GoalStatus.RECEIVED, **fields: Any) -> GoalRecord:
    return GoalRecord(
        goalId=goal_id,
        userId="user-1",
        brand="sandbox",
        goal="running socks for me",
        context=GoalContext(),
        status=status,
        requestHash="sha256:request",
        createdAt=CREATED,
        updatedAt=CREATED,
        **fields,
    )


def full_goal(goal_id: str, status: GoalStatus = GoalStatus.COMPLETED) -> GoalRecord:
    """A goal with a value in every field GoalRecord types."""
    plan, merchant = _seed_plan()
    total = plan.summary.total
    return GoalRecord(
        goalId=goal_id,
        userId="user-1",
        brand="sandbox",
        goal=SEED_GOAL,
        context=GoalContext(
            recipient=Recipient(
                name="李雷",
                phone="+86 138 0000 0000",
                address=Address(line1="1 Chang'an Ave", city="北京", country="CN"),
            ),
            paymentMethodId="pm_card-1",
            budget=cny("1000.00"),
            deliverBy=date(2027, 2, 5),
        ),
        status=status,
        requestHash="sha256:request",
        createdAt=CREATED,
        updatedAt=LATER,
        executionArn="arn:aws:states:us-east-1:123456789012:execution:flow:" + goal_id,
        plan=plan,
        planHash=plan.plan_hash(),
        approvedPlanHash=plan.plan_hash(),
        verdict=Verdict(
            planId=plan.planId,
            planHash=plan.plan_hash(),
            tier=RiskTier.APPROVAL,
            route="approve",
            approver="user",
            reasons=[Finding(policyId="spend.per-order", tier=RiskTier.APPROVAL, message="over 500.00 CNY")],
            checkedAt=LATER,
        ),
        approval=ApprovalSummary(
            approvalId="a-contract", status="APPROVED", tier=RiskTier.APPROVAL, dropped=["s2"]
        ),
        priceCheck=PriceCheck(
            planId=plan.planId,
            checkedAt=LATER,
            items=merchant.catalog.lookup([item.itemId for item in plan.summary.items], plan.currency),
        ),
        steps=[
            step("s1", checkoutId="cs-1", total=total.model_dump(mode="json"), lines=[1, 2.5, None]),
            step("s4", orderId="o-1", note="已付款"),
        ],
        receipt=Receipt(
            orderId="o-1",
            checkoutId="cs-1",
            total=total,
            items=[ReceiptLine(title="Swift Runner", quantity=1, unitPrice=cny("699.00"))],
            recipient="李雷",
            deliveryEstimate="2027-02-01",
            merchantStatus="confirmed",
        ),
        undoUntil="2026-11-25T09:05:00+00:00",
        failure="none yet",
        auditHead="sha256:" + "a" * 64,
        auditSeq=7,
    )


def approval(approval_id: str, **fields: Any) -> Approval:
    values: dict[str, Any] = {
        "approvalId": approval_id,
        "goalId": "g-contract",
        "planId": "p-1",
        "planHash": "sha256:plan",
        "tier": RiskTier.STRONG_APPROVAL,
        "approver": "user-1",
        "total": cny("2499.00"),
        "expiresAt": 1_795_000_000,
        "status": ApprovalStatus.PENDING,
        "reasons": [Finding(policyId="spend.per-order", tier=RiskTier.STRONG_APPROVAL, message="over 2000")],
        "createdAt": CREATED,
    }
    return Approval(**{**values, **fields})
