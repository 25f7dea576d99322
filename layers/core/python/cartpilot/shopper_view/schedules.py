"""The shopper's schedules on their page: every schedule of the goal's shopper made through the goal's
API client, from the schedule store.

The goal's own schedule (when it is an occurrence of one) comes first, read directly; the rest follow
newest first. Another client's schedules of the same shopper are never shown: the page is the
client's to hand on. Running schedules show their next few occurrences.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from cartpilot.goals.model import GoalRecord
from cartpilot.schedules.model import ScheduleRecord, ScheduleStatus
from cartpilot.schedules.ports import ScheduleStore
from cartpilot.schedules.recurrence import occurrences
from cartpilot.shopper_view.desk import ScheduleLine

NEXT_SHOWN = 3
# A page, not an archive: the newest schedules are the ones a shopper acts on.
LISTED = 20


class GoalSchedules:
    """``ScheduleSource`` over the schedule store; the store is built on first use."""

    def __init__(self, store: Callable[[], ScheduleStore], clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock

    def schedules_of(self, goal: GoalRecord) -> list[ScheduleLine]:
        if goal.clientId is None:
            return []
        store = self._store()

        def mine(record: ScheduleRecord | None) -> bool:
            return record is not None and record.userId == goal.userId and record.clientId == goal.clientId

        own = store.get(goal.scheduleId) if goal.scheduleId is not None else None
        records: list[ScheduleRecord] = []
        if own is not None and mine(own):
            records.append(own)
        for record in store.of_user(goal.userId, client_id=goal.clientId, limit=LISTED):
            if mine(record) and all(record.scheduleId != shown.scheduleId for shown in records):
                records.append(record)
        now = self._clock()
        return [schedule_line(record, now) for record in records[:LISTED]]


def schedule_line(record: ScheduleRecord, now: datetime) -> ScheduleLine:
    upcoming: list[str] = []
    if record.status is ScheduleStatus.SCHEDULED:
        upcoming = [
            moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
            for moment in occurrences(record.definition)
            if moment >= now
        ][:NEXT_SHOWN]
    return ScheduleLine(
        schedule_id=record.scheduleId, status=record.status.value, goal=record.goal, next_occurrences=upcoming
    )
