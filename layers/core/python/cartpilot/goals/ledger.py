"""Every change to a goal is a status update plus an audit record, written together here."""

from __future__ import annotations

from typing import Any

from cartpilot.audit.chain import AuditRecord
from cartpilot.audit.privacy import scrub_text
from cartpilot.audit.trail import AuditTrail
from cartpilot.goals.handoff import checked_continue_url, origin_of
from cartpilot.goals.model import GoalStatus
from cartpilot.goals.ports import GoalStore
from cartpilot.goals.reasons import ReasonCode, shopper_reason
from cartpilot.kernel.clock import utc_now_iso
from cartpilot.notifications.ports import NoticeOutbox
from cartpilot.notifications.status_notices import TOLD_STATUSES, notice_token, relay_tells_shopper


class GoalLedger:
    def __init__(self, store: GoalStore, audit: AuditTrail, notices: NoticeOutbox | None = None) -> None:
        self.store = store
        self.audit = audit
        # Where an ending is queued to be told (``notifications.status_notices``); None tells nobody.
        self.notices = notices

    def transition(
        self,
        goal_id: str,
        status: GoalStatus,
        *,
        actor: str,
        event: str,
        detail: dict[str, Any] | None = None,
        plan_hash: str | None = None,
        **fields: Any,
    ) -> AuditRecord:
        """Moves the goal (refused unless the move is allowed), then records why.

        The status is written first: if the audit append then fails, the Lambda fails,
        Step Functions retries, and the re-entrant transition records it on the retry.
        """
        self.store.update(goal_id, status=status, updated_at=utc_now_iso(), **fields)
        if self.notices is not None and status in TOLD_STATUSES:
            # Queued here, after the status and before its record, so no path that ends a goal
            # goes untold; a retried transition finds the notice queued or told and adds nothing.
            token = notice_token(status, shopper=relay_tells_shopper(status, event))
            self.notices.mark_due(goal_id, token, at=utc_now_iso())
        return self.note(goal_id, actor=actor, event=event, status=status, detail=detail, plan_hash=plan_hash)

    def note(
        self,
        goal_id: str,
        *,
        actor: str,
        event: str,
        status: GoalStatus | None = None,
        detail: dict[str, Any] | None = None,
        plan_hash: str | None = None,
    ) -> AuditRecord:
        record = self.audit.append(
            goal_id,
            actor=actor,
            event=event,
            status=status.value if status else None,
            plan_hash=plan_hash,
            detail=detail,
        )
        self.store.advance_audit_head(goal_id, seq=record.seq, head=record.hash)
        return record

    def hand_off(
        self,
        goal_id: str,
        continue_url: str,
        reason: str,
        *,
        actor: str = "executor",
        plan_hash: str | None = None,
    ) -> AuditRecord | None:
        """Ends a running goal ``HANDED_OFF``: the merchant needs the shopper to finish the checkout
        at ``continue_url`` (checkout ``requires_escalation``). The step that met the escalation calls
        this, then re-raises, and the flow tells the shopper without undoing the session.

        Raises ``UnusableContinueUrl`` for a URL no shopper should be sent to (the goal is unchanged,
        and the flow undoes the steps as after any failure), ``InvalidTransition`` unless the goal is
        executing. A repeated call for a goal already handed off records nothing; None then.
        """
        url = checked_continue_url(continue_url)
        goal = self.store.require(goal_id)
        if goal.status is GoalStatus.HANDED_OFF and goal.continueUrl == url:
            return None
        # The merchant's words may quote what the shopper typed: masked, and kept for the audit only.
        why = scrub_text(reason)[:500] or "the merchant needs you to finish the checkout on its site"
        shown = shopper_reason(ReasonCode.FINISH_AT_MERCHANT)
        return self.transition(
            goal_id,
            GoalStatus.HANDED_OFF,
            actor=actor,
            event="goal.handed-off",
            plan_hash=plan_hash if plan_hash is not None else goal.planHash,
            detail={"reason": why, "merchant": origin_of(url)},
            continueUrl=url,
            failure=shown.message,
            reasonCode=shown.code.value,
        )
