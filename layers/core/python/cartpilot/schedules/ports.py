"""The schedule store: where schedules and their occurrences are kept (DynamoDB on AWS)."""

from __future__ import annotations

from typing import Protocol

from cartpilot.schedules.model import Occurrence, ScheduleRecord


class ScheduleAlreadyExists(RuntimeError):
    """A schedule with this id is already stored."""


class ScheduleStore(Protocol):
    def create(self, record: ScheduleRecord) -> None:
        """Stores a new schedule; ``ScheduleAlreadyExists`` when its id is taken."""
        ...

    def get(self, schedule_id: str) -> ScheduleRecord | None: ...

    def of_user(self, user_id: str, *, client_id: str, limit: int) -> list[ScheduleRecord]:
        """The user's schedules made through ``client_id``, newest first, at most ``limit``."""
        ...

    def due(self, now: str, *, limit: int) -> list[str]:
        """Ids of schedules whose next occurrence is at or before ``now`` (or one is being fired)."""
        ...

    def pause(self, schedule_id: str, *, updated_at: str) -> bool:
        """SCHEDULED -> PAUSED; False when it was not SCHEDULED."""
        ...

    def resume(
        self, schedule_id: str, *, next_at: str | None, skipped: list[Occurrence], updated_at: str
    ) -> bool:
        """PAUSED -> SCHEDULED (FINISHED when ``next_at`` is None), recording the skipped occurrences.
        False when it was not PAUSED or an occurrence is still being recorded."""
        ...

    def cancel(self, schedule_id: str, *, updated_at: str) -> bool:
        """SCHEDULED or PAUSED -> CANCELLED; False otherwise. Nothing fires after it."""
        ...

    def claim_occurrence(self, schedule_id: str, at: str) -> bool:
        """Claims the occurrence at ``at`` for firing: only while SCHEDULED with ``at`` next, or when
        this very occurrence was claimed before (a retry after a crash finishes it)."""
        ...

    def record_occurrence(
        self, schedule_id: str, occurrence: Occurrence, *, next_at: str | None, updated_at: str
    ) -> bool:
        """Appends the claimed occurrence, moves to ``next_at`` (FINISHED when None) and drops the
        claim; False when the claim was already recorded (a second firing)."""
        ...
