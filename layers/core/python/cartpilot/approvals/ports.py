"""Where approvals and their task tokens are kept."""

from __future__ import annotations

from typing import Protocol

from cartpilot.approvals.model import Approval, ApprovalStatus, DroppedStep


class ApprovalAlreadyExists(RuntimeError):
    pass


class ApprovalStore(Protocol):
    def create(self, approval: Approval, task_token: str) -> None:
        """Stores a new approval and the task token that resumes its flow; never overwrites
        (``ApprovalAlreadyExists``)."""
        ...

    def get(self, approval_id: str) -> Approval | None: ...

    def task_token(self, approval_id: str) -> str:
        """The flow's task token; it never leaves the backend."""
        ...

    def decide(
        self,
        approval_id: str,
        status: ApprovalStatus,
        *,
        decided_at: str,
        decided_by: str,
        approved_plan_hash: str | None = None,
        dropped: list[DroppedStep] | None = None,
    ) -> Approval:
        """Records the decision if, and only if, none was recorded before; raises ``AlreadyDecided``
        (carrying the recorded decision) otherwise, and ``LookupError`` for an unknown approval.
        The decision is recorded with ``delivery = PENDING``: it has not reached the flow yet."""
        ...

    def mark_delivered(self, approval_id: str, *, delivered_at: str) -> bool:
        """The flow took the recorded decision: ``delivery = DELIVERED``, with a conditional write
        that holds only while a decision is recorded and pending delivery. False when it was not
        (already delivered by a concurrent sender, expired, or never decided)."""
        ...

    def undelivered(self, *, decided_before: str) -> list[str]:
        """The ids of decisions recorded before ``decided_before`` (ISO 8601, UTC) and not yet
        delivered nor expired, oldest first: what the redelivery sweep sends."""
        ...

    def mark_expired(self, approval_id: str, *, decided_at: str) -> bool:
        """After the flow has stopped waiting: whatever was recorded, the link is dead. A decision
        the flow already took stands (False, nothing changed)."""
        ...
