"""Every change to a goal is a status update plus an audit record, written together here."""

from __future__ import annotations

from typing import Any

from cartpilot.audit.chain import AuditRecord
from cartpilot.audit.trail import AuditTrail
from cartpilot.goals.model import GoalStatus
from cartpilot.goals.ports import GoalStore
from cartpilot.kernel.clock import utc_now_iso


class GoalLedger:
    def __init__(self, store: GoalStore, audit: AuditTrail) -> None:
        self.store = store
        self.audit = audit

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
