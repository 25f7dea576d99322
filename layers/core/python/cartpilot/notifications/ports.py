"""What telling people needs from the outside: an outbox of due status notices, a queue of approval
reminders, and a mail service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Email:
    """One message to one address: both renderings, and what it is about (never logged: the address)."""

    to: str
    sender: str
    subject: str
    html: str
    text: str
    kind: str
    goal_id: str


class EmailSender(Protocol):
    def send(self, email: Email) -> str:
        """Sends the message and returns the mail service's message id."""
        ...


class NoticeOutbox(Protocol):
    """Status changes waiting to be told, kept on the goal's own item.

    A notice is queued with the status change that makes it due: in the same write where the outbox
    lives on the goal store's items, else by ``mark_due`` right after it. A relay ``claim``s one
    notice at a time with a lease (a conditional write: no other relay takes it while the lease
    runs), sends it, and only then ``mark_sent``s it. A relay that dies between claim and mark leaves the notice due under an
    expiring lease, so a later sweep sends it: delivery is at least once, and a send whose mark
    failed repeats (the message's ``noticeId`` is stable, so consumers can drop the repeat)."""

    def shares_items_with(self, goals: object) -> bool:
        """True when this outbox keeps its notices on ``goals``' own items: that goal store's status
        write then queues the notice in the same write (``GoalStore.update(notice=...)``) instead
        of a ``mark_due`` after it."""
        ...

    def mark_due(self, goal_id: str, status: str, *, at: str) -> bool:
        """False when this status was already told (a retried transition)."""
        ...

    def due_goals(self) -> list[str]: ...

    def due(self, goal_id: str) -> list[str]:
        """The notices of this goal waiting to be told (``status_notices.notice_token``)."""
        ...

    def claim(self, goal_id: str, status: str, *, now: int, until: int) -> bool:
        """Leases one due notice until ``until`` (epoch seconds); False when it is not due or another
        relay's lease is still running at ``now``."""
        ...

    def mark_sent(self, goal_id: str, status: str) -> None:
        """Moves a notice from due to told, after it was sent: it is never queued again."""
        ...

    def release(self, goal_id: str, status: str, *, until: int) -> None:
        """Gives up this relay's lease (the one ending at ``until``): sending failed, the next sweep
        tries again."""
        ...

    def settle(self, goal_id: str) -> None:
        """Takes the goal out of the outbox's index once nothing is due."""
        ...


class ReminderQueue(Protocol):
    """Pending approvals that may still need a reminder (a sparse index over the approval items)."""

    def expiring_before(self, epoch_seconds: int) -> list[str]: ...

    def claim(self, approval_id: str, *, at: str) -> bool:
        """Takes the approval out of the queue while it is still pending; False when it was not."""
        ...

    def release(self, approval_id: str) -> None: ...

    def drop(self, approval_id: str) -> None:
        """Takes a decided or expired approval out of the queue without a reminder."""
        ...
