"""What the goal lifecycle needs from the outside: a store, the workflow engine, a way to tell people."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from cartpilot.goals.model import GoalRecord, GoalStatus, StepResult


class GoalNotFound(LookupError):
    pass


class GoalAlreadyExists(RuntimeError):
    pass


class GoalPartMissing(LookupError):
    """The goal's record refers to a part (its plan, a step's result, ...) that storage no longer
    holds: the goal cannot be read whole, and is not read as if the part had never existed."""


class GoalPartConflict(RuntimeError):
    """A write-once part of the goal is stored with other content than this write carries: the
    stored one stays, and the write is refused."""


@dataclass(frozen=True)
class AuditHead:
    """The newest audit record a write points the goal's chain head at (``advance_audit_head``)."""

    seq: int
    hash: str


@dataclass(frozen=True)
class GoalPosition:
    """Where a goal stands, read from its head alone: its status and the audit record it points at."""

    status: GoalStatus
    auditSeq: int | None


@dataclass(frozen=True)
class SubmissionClaim:
    """Which goal a submission (a client's Idempotency-Key) is, and the body it came with."""

    goalId: str
    requestHash: str


class GoalStore(Protocol):
    """One record per goal. Updates with a ``status`` are refused (``InvalidTransition``) unless the
    lifecycle table allows the move from the stored status; every update needs the goal to exist.

    A record is stored as a small head and write-once parts (``goals.parts``): reads assemble it,
    and raise ``GoalPartMissing`` when a part it refers to is gone; a part is never overwritten
    (``GoalPartConflict`` when storage holds other content under its key)."""

    def create(self, record: GoalRecord) -> None:
        """Raises ``GoalAlreadyExists`` when a goal with this id is stored."""
        ...

    def claim_submission(self, key: str, goal_id: str, request_hash: str) -> SubmissionClaim:
        """Ties submission ``key`` to ``goal_id`` with a conditional write, unless an earlier attempt
        did: returns the claim that holds (this one, or the earlier one, never overwritten)."""
        ...

    def get(self, goal_id: str) -> GoalRecord | None: ...

    def position(self, goal_id: str) -> GoalPosition | None:
        """The goal's status and audit head position (a read of the head only); None when unknown."""
        ...

    def require(self, goal_id: str) -> GoalRecord:
        """Raises ``GoalNotFound``."""
        ...

    def update(
        self,
        goal_id: str,
        *,
        status: GoalStatus | None = None,
        updated_at: str,
        condition_plan_hash: str | None = None,
        audit: AuditHead | None = None,
        notice: str | None = None,
        **fields: Any,
    ) -> None:
        """Sets fields (models or plain values; ``None`` clears). With ``condition_plan_hash``, only
        while the stored plan hash is that one (``InvalidTransition`` otherwise). With ``audit``, the
        same write moves the audit chain head there, unless it already points at a later record
        (then only the fields are written): one write for a change and the record of it. With
        ``notice`` (a ``status_notices.notice_token``), the same write queues that status notice in
        the outbox kept on the goal (``NoticeOutbox.shares_items_with``), unless it was told already
        (a retried move: then it stays told and the rest is written)."""
        ...

    def append_step(
        self, goal_id: str, result: StepResult, updated_at: str, *, audit: AuditHead | None = None
    ) -> None:
        """Records an executed step once, replacing an earlier record of the same step (a retry);
        ``audit`` as for ``update``."""
        ...

    def advance_audit_head(self, goal_id: str, *, seq: int, head: str) -> None:
        """Remembers the newest audit record; never moves backwards."""
        ...

    def undo_token(self, goal_id: str) -> str | None:
        """The task token of the open undo window; kept off GoalRecord so no view can leak it."""
        ...

    def claim_undo(self, goal_id: str, requested_at: str) -> bool:
        """Records the first undo request; False when one was already recorded."""
        ...

    def release_undo_claim(self, goal_id: str) -> None: ...

    def claim_return_settlement(self, goal_id: str, settled_at: str) -> bool:
        """Records that the goal's return refund is being settled; False when it already was."""
        ...

    def release_return_settlement(self, goal_id: str) -> None: ...


class TaskTokenGone(Exception):
    """The workflow stopped waiting for this task token (timed out, finished, or unknown).

    Step Functions gives the same answer for a token that was already used, so after an attempt
    whose answer was lost, this does not prove the earlier attempt failed."""


class WorkflowUnavailable(Exception):
    """The workflow engine did not take the call (throttled, unavailable, unreachable); nothing
    is known to have happened, and the same call may be tried again."""


class Workflow(Protocol):
    """The order flow's engine (Step Functions on AWS and on the local stack)."""

    def start(self, name: str, flow_input: dict[str, Any]) -> str:
        """Starts the flow named ``name`` and returns its id; starting the same name again returns
        the same id and starts nothing."""
        ...

    def start_undo(self, name: str, flow_input: dict[str, Any]) -> str:
        """Starts the undo flow (a completed order's cancel or return) named ``name``, as ``start``
        does: the same name again starts nothing."""
        ...

    def succeed(self, task_token: str, output: dict[str, Any]) -> None:
        """Resumes a waiting task. Raises ``TaskTokenGone`` when nothing waits for the token, and
        ``WorkflowUnavailable`` when the engine could not be reached (the call may be repeated)."""
        ...

    def fail(self, task_token: str, *, error: str, cause: str) -> None:
        """Fails a waiting task. Raises ``TaskTokenGone`` when nothing waits for the token, and
        ``WorkflowUnavailable`` when the engine could not be reached (the call may be repeated)."""
        ...


class Notifier(Protocol):
    """Tells a shopper or approver something (SNS on AWS; the outbox on the local stack).

    The message carries what the recipient needs (a link, a total, an order id) and no more;
    addresses and phone numbers never leave in a notification.
    """

    def send(self, *, kind: str, goal_id: str, user_id: str, subject: str, body: dict[str, Any]) -> str: ...
