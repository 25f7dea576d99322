"""Firing due occurrences: each one becomes a normal goal, through the same intake as ``POST /goals``.

The sweep (every minute on AWS, every second locally) asks the store for schedules whose next
occurrence is due and fires them one occurrence at a time:

1. claim the occurrence on the schedule (a conditional write: only while SCHEDULED and next);
2. submit its goal under a key derived from (schedule id, occurrence time), so a second firing
   (two sweeps, a retry after a crash) finds the same goal and starts no second order flow;
3. record the occurrence with its goal id and move to the next one (conditional on the claim).

A crash between 1 and 3 leaves the claim, which keeps the schedule in the sweep's index: the next
sweep finishes the same occurrence, even if the shopper paused or cancelled in between (the claim
came first). Occurrences missed while the sweep was down fire late, oldest first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cartpilot.audit.trail import AuditTrail
from cartpilot.brands.config import BrandConfig
from cartpilot.goals.intake import GoalIntake, IntakeError
from cartpilot.kernel.observability import logger
from cartpilot.schedules.model import Occurrence, OccurrenceStatus, ScheduleRecord
from cartpilot.schedules.ports import ScheduleStore
from cartpilot.schedules.recurrence import format_instant, next_occurrence, parse_instant

# Bounds one sweep's work, well inside the function's timeout; what is left waits for the next.
MAX_SCHEDULES_PER_SWEEP = 100
MAX_OCCURRENCES_PER_SCHEDULE = 5


@dataclass
class SweepReport:
    fired: int = 0
    refused: int = 0
    failed: int = 0


def occurrence_key(schedule_id: str, at: str) -> str:
    """The Idempotency-Key of an occurrence's goal: one goal per (schedule, occurrence time)."""
    return f"{schedule_id}@{at}"


class OccurrenceFiring:
    def __init__(
        self,
        *,
        store: ScheduleStore,
        intake: GoalIntake,
        audit: AuditTrail,
        brand: BrandConfig,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._intake = intake
        self._audit = audit
        self._brand = brand
        self._clock = clock

    def sweep(self) -> SweepReport:
        report = SweepReport()
        now = format_instant(self._clock())
        for schedule_id in self._store.due(now, limit=MAX_SCHEDULES_PER_SWEEP):
            try:
                self._fire_schedule(schedule_id, now, report)
            except Exception:  # one schedule's trouble must not hold up the others; its claim stays
                report.failed += 1
                logger.exception("an occurrence could not be fired", extra={"scheduleId": schedule_id})
        return report

    def _fire_schedule(self, schedule_id: str, now: str, report: SweepReport) -> None:
        for _ in range(MAX_OCCURRENCES_PER_SCHEDULE):
            record = self._store.get(schedule_id)
            if record is None:
                return
            at = record.firing or record.nextAt
            if at is None or (record.firing is None and at > now):
                return
            if not self._store.claim_occurrence(schedule_id, at):
                return  # paused, cancelled, or another sweep moved it on
            occurrence = self._start_goal(record, at)
            upcoming = next_occurrence(record.definition, after=parse_instant(at))
            recorded = self._store.record_occurrence(
                schedule_id,
                occurrence,
                next_at=format_instant(upcoming) if upcoming is not None else None,
                updated_at=format_instant(self._clock()),
            )
            if not recorded:
                return  # a concurrent sweep recorded this same occurrence (and the same goal)
            if occurrence.status is OccurrenceStatus.STARTED:
                report.fired += 1
            else:
                report.refused += 1
            self._audit.append(
                schedule_id,
                actor="scheduler",
                event="schedule.occurrence",
                status=occurrence.status.value,
                detail=occurrence.model_dump(mode="json", exclude_none=True),
            )

    def _start_goal(self, record: ScheduleRecord, at: str) -> Occurrence:
        client = next((c for c in self._brand.apiClients if c.id == record.clientId), None)
        if client is None:
            return Occurrence(at=at, status=OccurrenceStatus.REFUSED, reason="CLIENT_NOT_LISTED")
        try:
            accepted = self._intake.submit(
                record.goal_request(),
                occurrence_key(record.scheduleId, at),
                client=client,
                schedule_id=record.scheduleId,
            )
        except IntakeError as exc:
            # The brand no longer lets this client act for the user, or the user is gone: the
            # occurrence is recorded as refused, and the schedule moves on.
            return Occurrence(at=at, status=OccurrenceStatus.REFUSED, reason=exc.code)
        return Occurrence(at=at, goalId=accepted.goalId)
