"""In-memory outbox of status notices and reminder queue, with the DynamoDB adapters' semantics."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from cartpilot.approvals.model import ApprovalStatus
from cartpilot.approvals.ports import ApprovalStore


@dataclass
class InMemoryNoticeOutbox:
    due_by_goal: dict[str, set[str]] = field(default_factory=dict)
    sent_by_goal: dict[str, set[str]] = field(default_factory=dict)
    leases_by_goal: dict[str, dict[str, int]] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def shares_items_with(self, goals: object) -> bool:
        """True for the in-memory goal store this outbox belongs to (``InMemoryGoalStore.notices``)."""
        return getattr(goals, "notices", None) is self

    def mark_due(self, goal_id: str, status: str, *, at: str) -> bool:
        return self.queue(goal_id, status)

    def queue(self, goal_id: str, status: str) -> bool:
        """What ``mark_due`` writes, and the goal store's status write given a notice writes with it."""
        with self._lock:
            if status in self.sent_by_goal.get(goal_id, set()):
                return False
            self.due_by_goal.setdefault(goal_id, set()).add(status)
            return True

    def due_goals(self) -> list[str]:
        with self._lock:
            return [goal_id for goal_id, due in self.due_by_goal.items() if due]

    def due(self, goal_id: str) -> list[str]:
        with self._lock:
            return sorted(self.due_by_goal.get(goal_id, set()))

    def claim(self, goal_id: str, status: str, *, now: int, until: int) -> bool:
        with self._lock:
            if status not in self.due_by_goal.get(goal_id, set()):
                return False
            leases = self.leases_by_goal.setdefault(goal_id, {})
            if leases.get(status, now) > now:
                return False
            leases[status] = until
            return True

    def mark_sent(self, goal_id: str, status: str) -> None:
        with self._lock:
            due = self.due_by_goal.get(goal_id, set())
            if status in due:
                due.discard(status)
                self.leases_by_goal.get(goal_id, {}).pop(status, None)
                self.sent_by_goal.setdefault(goal_id, set()).add(status)

    def release(self, goal_id: str, status: str, *, until: int) -> None:
        with self._lock:
            leases = self.leases_by_goal.get(goal_id, {})
            if leases.get(status) == until:
                del leases[status]

    def settle(self, goal_id: str) -> None:
        with self._lock:
            if not self.due_by_goal.get(goal_id):
                self.due_by_goal.pop(goal_id, None)


@dataclass
class InMemoryReminderQueue:
    """Every approval of ``approvals`` is queued when listed in ``queued`` (as creation queues it)."""

    approvals: ApprovalStore
    queued: set[str] = field(default_factory=set)

    def expiring_before(self, epoch_seconds: int) -> list[str]:
        found = []
        for approval_id in sorted(self.queued):
            approval = self.approvals.get(approval_id)
            if approval is not None and approval.expiresAt <= epoch_seconds:
                found.append(approval_id)
        return found

    def claim(self, approval_id: str, *, at: str) -> bool:
        approval = self.approvals.get(approval_id)
        if (
            approval_id not in self.queued
            or approval is None
            or approval.status is not ApprovalStatus.PENDING
        ):
            return False
        self.queued.discard(approval_id)
        return True

    def release(self, approval_id: str) -> None:
        self.queued.add(approval_id)

    def drop(self, approval_id: str) -> None:
        self.queued.discard(approval_id)
