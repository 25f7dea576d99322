"""The schedule store in memory, with the DynamoDB adapter's conditional moves (tests/contract checks both)."""

from __future__ import annotations

import copy
import threading
from typing import Any

from cartpilot.schedules.model import Occurrence, ScheduleRecord, ScheduleStatus
from cartpilot.schedules.ports import ScheduleAlreadyExists


class InMemoryScheduleStore:
    def __init__(self) -> None:
        self._items: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()

    def _record(self, schedule_id: str) -> ScheduleRecord | None:
        item = self._items.get(schedule_id)
        return ScheduleRecord.model_validate(copy.deepcopy(item)) if item is not None else None

    def _save(self, record: ScheduleRecord) -> None:
        self._items[record.scheduleId] = record.model_dump(mode="json", exclude_none=True)

    def create(self, record: ScheduleRecord) -> None:
        with self._lock:
            if record.scheduleId in self._items:
                raise ScheduleAlreadyExists(record.scheduleId)
            self._save(record)

    def get(self, schedule_id: str) -> ScheduleRecord | None:
        with self._lock:
            return self._record(schedule_id)

    def of_user(self, user_id: str, *, client_id: str, limit: int) -> list[ScheduleRecord]:
        with self._lock:
            records = [r for r in (self._record(i) for i in self._items) if r is not None]
        mine = [r for r in records if r.userId == user_id and r.clientId == client_id]
        return sorted(mine, key=lambda r: r.createdAt, reverse=True)[:limit]

    def due(self, now: str, *, limit: int) -> list[str]:
        with self._lock:
            records = [r for r in (self._record(i) for i in self._items) if r is not None]
        # The adapter's sparse index: SCHEDULED with a next occurrence, or one being fired.
        swept = [
            r
            for r in records
            if r.nextAt is not None and (r.status is ScheduleStatus.SCHEDULED or r.firing is not None)
        ]
        return [r.scheduleId for r in sorted(swept, key=lambda r: r.nextAt or "") if (r.nextAt or "") <= now][
            :limit
        ]

    def _move(self, schedule_id: str, allowed: set[ScheduleStatus], **fields: Any) -> bool:
        with self._lock:
            record = self._record(schedule_id)
            if record is None or record.status not in allowed:
                return False
            self._save(record.model_copy(update=fields))
            return True

    def pause(self, schedule_id: str, *, updated_at: str) -> bool:
        return self._move(
            schedule_id, {ScheduleStatus.SCHEDULED}, status=ScheduleStatus.PAUSED, updatedAt=updated_at
        )

    def resume(
        self, schedule_id: str, *, next_at: str | None, skipped: list[Occurrence], updated_at: str
    ) -> bool:
        with self._lock:
            record = self._record(schedule_id)
            if record is None or record.status is not ScheduleStatus.PAUSED or record.firing is not None:
                return False
            status = ScheduleStatus.SCHEDULED if next_at is not None else ScheduleStatus.FINISHED
            self._save(
                record.model_copy(
                    update={
                        "status": status,
                        "nextAt": next_at,
                        "occurrences": [*record.occurrences, *skipped],
                        "updatedAt": updated_at,
                    }
                )
            )
            return True

    def cancel(self, schedule_id: str, *, updated_at: str) -> bool:
        return self._move(
            schedule_id,
            {ScheduleStatus.SCHEDULED, ScheduleStatus.PAUSED},
            status=ScheduleStatus.CANCELLED,
            updatedAt=updated_at,
        )

    def claim_occurrence(self, schedule_id: str, at: str) -> bool:
        with self._lock:
            record = self._record(schedule_id)
            if record is None:
                return False
            claimable = (
                record.status is ScheduleStatus.SCHEDULED and record.nextAt == at and record.firing is None
            )
            if not (claimable or record.firing == at):
                return False
            self._save(record.model_copy(update={"firing": at}))
            return True

    def record_occurrence(
        self, schedule_id: str, occurrence: Occurrence, *, next_at: str | None, updated_at: str
    ) -> bool:
        with self._lock:
            record = self._record(schedule_id)
            if record is None or record.firing != occurrence.at:
                return False
            status = record.status
            if status is ScheduleStatus.SCHEDULED and next_at is None:
                status = ScheduleStatus.FINISHED
            self._save(
                record.model_copy(
                    update={
                        "firing": None,
                        "nextAt": next_at,
                        "status": status,
                        "occurrences": [*record.occurrences, occurrence],
                        "updatedAt": updated_at,
                    }
                )
            )
            return True
