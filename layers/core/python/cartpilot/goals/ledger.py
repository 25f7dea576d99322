"""Every change to a goal is a status update plus an audit record, written together here.

The record is appended first and the goal's update then points its chain head at it, in one write:
a goal item write per change instead of two. A writer stopped in between leaves a record the head
does not point at yet (the chain allows records past its head); the retried change finds that
record as the chain's newest and points at it instead of writing it again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from cartpilot.audit.chain import AuditRecord
from cartpilot.audit.privacy import scrub_text
from cartpilot.audit.trail import AuditTrail
from cartpilot.goals.handoff import checked_continue_url, origin_of
from cartpilot.goals.lifecycle import InvalidTransition, may_move
from cartpilot.goals.model import GoalStatus, StepResult
from cartpilot.goals.ports import AuditHead, GoalNotFound, GoalStore
from cartpilot.goals.reasons import ReasonCode, shopper_reason
from cartpilot.kernel.clock import utc_now_iso
from cartpilot.notifications.ports import NoticeOutbox
from cartpilot.notifications.status_notices import TOLD_STATUSES, notice_token, relay_tells_shopper


@dataclass
class DeferredHead:
    """The newest record noted for one goal while its head moves were held back
    (``GoalLedger.head_deferred``); ``fields()`` points the caller's own goal write at it."""

    goal_id: str
    record: AuditRecord | None = None

    def fields(self) -> dict[str, Any]:
        """``audit=...`` for ``GoalStore.update`` when a record waits for the head, else nothing."""
        if self.record is None:
            return {}
        return {"audit": AuditHead(seq=self.record.seq, hash=self.record.hash)}


# Per thread and task, so concurrent invocations in one process never share a held-back head.
_DEFERRED: ContextVar[DeferredHead | None] = ContextVar("deferred_audit_head", default=None)


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
        """Moves the goal (refused unless the move is allowed) and records why.

        The move is checked on the goal as read, then recorded, then written with its chain head
        under the lifecycle's condition. Should another writer move the goal in between, the
        condition refuses the write and a ``goal.transition-withdrawn`` record says the recorded
        move did not happen. If anything fails after the record, the Lambda fails, Step Functions
        retries, and the re-entrant transition completes with the record already written.
        """
        position = self.store.position(goal_id)
        if position is None:
            raise GoalNotFound(goal_id)
        if not may_move(position.status, status):
            raise InvalidTransition(
                f"goal {goal_id} is {position.status.value}; cannot move to {status.value}"
            )
        record = self.audit.append(
            goal_id,
            actor=actor,
            event=event,
            status=status.value,
            plan_hash=plan_hash,
            detail=detail,
            reuse_after=position.auditSeq or 0,
        )
        # An ending is queued to be told with the move itself where the outbox lives on the goal's
        # item, so no path that ends a goal goes untold and the notice costs no write of its own.
        token = None
        if self.notices is not None and status in TOLD_STATUSES:
            token = notice_token(status, shopper=relay_tells_shopper(status, event))
        with_move = (
            token is not None and self.notices is not None and self.notices.shares_items_with(self.store)
        )
        queued: dict[str, Any] = {"notice": token} if with_move else {}
        try:
            self.store.update(
                goal_id,
                status=status,
                updated_at=utc_now_iso(),
                audit=AuditHead(seq=record.seq, hash=record.hash),
                **queued,
                **fields,
            )
        except InvalidTransition:
            found = self.store.position(goal_id)
            self.note(
                goal_id,
                actor=actor,
                event="goal.transition-withdrawn",
                status=found.status if found is not None else None,
                plan_hash=plan_hash,
                detail={"seq": record.seq, "event": event, "status": status.value},
            )
            raise
        if token is not None and self.notices is not None and not with_move:
            # Elsewhere queued right after the status; a retried transition finds the notice queued
            # or told and adds nothing.
            self.notices.mark_due(goal_id, token, at=utc_now_iso())
        return record

    def note(
        self,
        goal_id: str,
        *,
        actor: str,
        event: str,
        status: GoalStatus | None = None,
        detail: dict[str, Any] | None = None,
        plan_hash: str | None = None,
        updated_at: str | None = None,
        move_head: bool = True,
        **fields: Any,
    ) -> AuditRecord:
        """Records an event; ``fields`` (as ``GoalStore.update`` takes them) are set on the goal in the
        write that points its chain head at the record (``updated_at``: when, now by default).

        ``move_head=False`` leaves the chain head where it is, for a caller whose next write of the
        goal (in the same invocation, or the flow's next step, which writes the goal whatever it
        meets) points it past this record: one goal write fewer. Stopped in between, the record
        follows the head, as after a stop between any record and its head."""
        record = self.audit.append(
            goal_id,
            actor=actor,
            event=event,
            status=status.value if status else None,
            plan_hash=plan_hash,
            detail=detail,
        )
        if fields:
            self.store.update(
                goal_id,
                updated_at=updated_at or utc_now_iso(),
                audit=AuditHead(seq=record.seq, hash=record.hash),
                **fields,
            )
        elif move_head:
            deferred = _DEFERRED.get()
            if deferred is not None and deferred.goal_id == goal_id:
                deferred.record = record
            else:
                self.store.advance_audit_head(goal_id, seq=record.seq, head=record.hash)
        return record

    @contextmanager
    def head_deferred(self, goal_id: str) -> Iterator[DeferredHead]:
        """Holds back the head moves of records noted for ``goal_id`` inside the block (by this
        caller or code it calls, such as a notifier auditing a delivery), for a caller that writes
        the goal right after and points its head there with ``DeferredHead.fields()``: one goal write
        fewer per such record. Should the block fail, the head is moved before the error goes on,
        as it would have been."""
        deferred = DeferredHead(goal_id)
        token = _DEFERRED.set(deferred)
        try:
            yield deferred
        except BaseException:
            _DEFERRED.reset(token)
            if deferred.record is not None:
                self.store.advance_audit_head(goal_id, seq=deferred.record.seq, head=deferred.record.hash)
            raise
        _DEFERRED.reset(token)

    def record_step(
        self,
        goal_id: str,
        result: StepResult,
        *,
        actor: str,
        event: str,
        plan_hash: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> AuditRecord:
        """Records an executed step and its audit record, the step's reference and the chain head in
        one goal write; a retry after a stop in between reuses the record already written."""
        position = self.store.position(goal_id)
        if position is None:
            raise GoalNotFound(goal_id)
        record = self.audit.append(
            goal_id,
            actor=actor,
            event=event,
            plan_hash=plan_hash,
            detail=detail,
            reuse_after=position.auditSeq or 0,
        )
        self.store.append_step(goal_id, result, result.at, audit=AuditHead(seq=record.seq, hash=record.hash))
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
