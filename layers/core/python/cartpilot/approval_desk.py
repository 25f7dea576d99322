"""What an approver's link can do: show the plan (never changing anything) and decide once."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import ClientError

from cartpilot.approvals import AlreadyDecided, Approval, ApprovalStatus, ApprovalStore, confirmation_phrase
from cartpilot.clock import utc_now, utc_now_iso
from cartpilot.goal_store import GoalRecord
from cartpilot.ledger import GoalLedger
from cartpilot.plans import Plan
from cartpilot.signing import KeySource, LinkClaims, LinkExpired, LinkInvalid, verify_approval_link
from cartpilot.verdicts import RiskTier

# Step Functions says these when the flow has stopped waiting for this token.
_TOKEN_GONE = {"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"}


class DeskError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class LinkParams:
    exp: str
    kid: str
    sig: str


@dataclass(frozen=True)
class ApprovalView:
    approval: Approval
    goal: GoalRecord
    plan: Plan
    phrase: str | None
    link: LinkParams
    outcome: str | None = None


class ApprovalDesk:
    def __init__(self, *, ledger: GoalLedger, approvals: ApprovalStore, keys: KeySource, sfn: Any) -> None:
        self._ledger = ledger
        self._approvals = approvals
        self._keys = keys
        self._sfn = sfn

    def open(self, approval_id: str, link: LinkParams) -> ApprovalView:
        """GET: verifies the link and shows the plan. Reads only; mail scanners open links."""
        approval = self._verified(approval_id, link)
        return self._view(approval, link)

    def decide(
        self, approval_id: str, link: LinkParams, decision: Literal["approve", "reject"], phrase: str | None
    ) -> ApprovalView:
        approval = self._verified(approval_id, link)
        if approval.status is not ApprovalStatus.PENDING:
            return self._view(approval, link, outcome="already-decided")
        if decision == "approve" and approval.tier is RiskTier.STRONG_APPROVAL:
            expected = confirmation_phrase(approval.total)
            if (phrase or "").strip() != expected:
                raise DeskError(422, "PHRASE_MISMATCH", f"type the confirmation phrase exactly: {expected}")
        status = ApprovalStatus.APPROVED if decision == "approve" else ApprovalStatus.REJECTED
        try:
            decided = self._approvals.decide(
                approval_id, status, decided_at=utc_now_iso(), decided_by=approval.approver
            )
        except AlreadyDecided as already:
            return self._view(already.approval, link, outcome="already-decided")
        try:
            self._resume_flow(decided)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in _TOKEN_GONE:
                raise
            self._approvals.mark_expired(approval_id, decided_at=utc_now_iso())
            self._ledger.note(
                decided.goalId,
                actor=f"approver:{decided.approver}",
                event="approval.too-late",
                plan_hash=decided.planHash,
                detail={"approvalId": approval_id},
            )
            raise DeskError(
                410, "APPROVAL_EXPIRED", "this approval is no longer waiting for a decision"
            ) from exc
        return self._view(decided, link, outcome=decided.status.value.lower())

    def _resume_flow(self, approval: Approval) -> None:
        goal_id = approval.goalId
        token = self._approvals.task_token(approval.approvalId)
        actor = f"approver:{approval.approver}"
        if approval.status is ApprovalStatus.APPROVED:
            goal = self._ledger.store.require(goal_id)
            plan = Plan.model_validate(goal.plan)
            self._ledger.store.update(
                goal_id,
                updated_at=utc_now_iso(),
                condition_plan_hash=approval.planHash,
                approvedPlanHash=approval.planHash,
                approval={
                    "approvalId": approval.approvalId,
                    "status": "APPROVED",
                    "tier": approval.tier.value,
                },
            )
            self._ledger.note(
                goal_id, actor=actor, event="approval.approved", plan_hash=approval.planHash,
                detail={"approvalId": approval.approvalId, "tier": approval.tier.value},
            )  # fmt: skip
            output = {"planId": plan.planId, "planHash": approval.planHash, "steps": plan.execution_steps()}
            self._sfn.send_task_success(taskToken=token, output=json.dumps(output))
        else:
            self._ledger.store.update(
                goal_id,
                updated_at=utc_now_iso(),
                approval={
                    "approvalId": approval.approvalId,
                    "status": "REJECTED",
                    "tier": approval.tier.value,
                },
            )
            self._ledger.note(
                goal_id, actor=actor, event="approval.rejected", plan_hash=approval.planHash,
                detail={"approvalId": approval.approvalId},
            )  # fmt: skip
            self._sfn.send_task_failure(
                taskToken=token, error="ApprovalRejected", cause="The approver said no."
            )

    def _verified(self, approval_id: str, link: LinkParams) -> Approval:
        approval = self._approvals.get(approval_id)
        if approval is None or not link.exp.isdigit():
            # An unknown id looks exactly like a forged link: nothing to learn from probing.
            raise DeskError(403, "LINK_INVALID", "this approval link is not valid")
        claims = LinkClaims(
            approval_id=approval_id,
            expires_at=int(link.exp),
            plan_hash=approval.planHash,
            approver=approval.approver,
            tier=approval.tier.value,
        )
        try:
            verify_approval_link(
                claims,
                kid=link.kid,
                sig=link.sig,
                keyring=self._keys.keyring(),
                now=int(utc_now().timestamp()),
            )
        except LinkInvalid as exc:
            raise DeskError(403, "LINK_INVALID", "this approval link is not valid") from exc
        except LinkExpired as exc:
            raise DeskError(410, "LINK_EXPIRED", "this approval link has expired") from exc
        return approval

    def _view(self, approval: Approval, link: LinkParams, outcome: str | None = None) -> ApprovalView:
        goal = self._ledger.store.require(approval.goalId)
        if goal.plan is None:
            raise DeskError(409, "NO_PLAN", "the goal has no plan")
        plan = Plan.model_validate(goal.plan)
        phrase = confirmation_phrase(approval.total) if approval.tier is RiskTier.STRONG_APPROVAL else None
        return ApprovalView(
            approval=approval, goal=goal, plan=plan, phrase=phrase, link=link, outcome=outcome
        )
