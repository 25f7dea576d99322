"""The approval stage: park the flow's task token, sign a link, and send it to the approver: the shopper,
or for a staff approval the brand's staff channel, the shopper being told only that staff will review."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from cartpilot.approvals.links import LinkClaims, sign_approval_link
from cartpilot.approvals.model import Approval, confirmation_phrase, new_approval_id
from cartpilot.approvals.ports import ApprovalStore
from cartpilot.approvals.staff import (
    STAFF_APPROVER,
    announce_staff_approval,
    is_staff_approval,
    staff_base_url,
)
from cartpilot.audit.snapshots import PlanSigner, signed_plan_detail
from cartpilot.brands.config import BrandConfig
from cartpilot.commerce.errors import PlanIntegrityError
from cartpilot.goals.events import ApprovalRequested
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.model import ApprovalSummary, GoalStatus
from cartpilot.goals.ports import Notifier
from cartpilot.kernel.clock import utc_now, utc_now_iso
from cartpilot.kernel.keyring import KeySource
from cartpilot.kernel.observability import logger
from cartpilot.plans.verdicts import RiskTier


def request_approval(
    goal_id: str,
    plan_hash: str,
    task_token: str,
    *,
    ledger: GoalLedger,
    approvals: ApprovalStore,
    keys: KeySource,
    signer: PlanSigner,
    notifier: Notifier,
    brand: BrandConfig,
    base_url: str,
    staff_notifier: Notifier | None = None,
) -> ApprovalRequested:
    goal = ledger.store.require(goal_id)
    if goal.verdict is None or goal.planHash != plan_hash:
        raise PlanIntegrityError("approval requested for a plan that is not the goal's current plan")
    plan = goal.current_plan()
    verdict = goal.verdict
    now = utc_now()
    approval = Approval(
        approvalId=new_approval_id(),
        goalId=goal_id,
        planId=plan.planId,
        planHash=plan_hash,
        tier=verdict.tier,
        approver=STAFF_APPROVER if verdict.approver == "staff" else goal.userId,
        total=plan.summary.total,
        expiresAt=int((now + timedelta(seconds=brand.approvalLinkTtlSeconds)).timestamp()),
        reasons=[reason for reason in verdict.reasons if reason.tier is not RiskTier.AUTO],
        createdAt=utc_now_iso(),
        # Staff decide on an IAM-signed route and the shopper holds no link: the code is the
        # shopper's proof, so it is asked of shopper approvals.
        stepUp=verdict.stepUp and verdict.approver != "staff",
    )
    approvals.create(approval, task_token)
    keyring = keys.keyring()
    link = sign_approval_link(
        staff_base_url(base_url) if is_staff_approval(approval) else base_url,
        LinkClaims(
            approval_id=approval.approvalId,
            expires_at=approval.expiresAt,
            plan_hash=plan_hash,
            approver=approval.approver,
            tier=approval.tier.value,
        ),
        keyring,
    )
    ledger.transition(
        goal_id,
        GoalStatus.AWAITING_APPROVAL,
        actor="approval",
        event="approval.requested",
        plan_hash=plan_hash,
        detail={
            "approvalId": approval.approvalId,
            "tier": approval.tier.value,
            "approver": approval.approver,
            "linkExpiresAt": approval.expiresAt,
            "stepUp": approval.stepUp,
            # The plan the approver is about to see, vouched for with the plan-signing key.
            **signed_plan_detail(goal_id, plan, signer),
        },
        approval=ApprovalSummary(
            approvalId=approval.approvalId, status=approval.status.value, tier=approval.tier
        ),
    )
    body: dict[str, Any] = {"link": link, "total": plan.summary.total.format(), "tier": approval.tier.value}
    if approval.tier is RiskTier.STRONG_APPROVAL:
        body["phrase"] = confirmation_phrase(plan.summary.total)
    if approval.stepUp:
        body["stepUp"] = True
    if is_staff_approval(approval):
        announce_staff_approval(
            goal_id, goal.userId, plan.summary.total, body,
            staff_notifier=staff_notifier, shopper_notifier=notifier, brand=brand,
        )  # fmt: skip
    else:
        notifier.send(
            kind="approval_request",
            goal_id=goal_id,
            user_id=goal.userId,
            subject=f"Approve your order of {plan.summary.total.format()}",
            body=body,
        )
    logger.info(
        "approval requested",
        extra={"approvalId": approval.approvalId, "goalId": goal_id, "tier": approval.tier.value},
    )
    return ApprovalRequested(approvalId=approval.approvalId)
