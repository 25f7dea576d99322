"""Schedules: a goal to run later (``at``) or again and again (an RRULE), and what each occurrence did."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from cartpilot.goals.model import GoalContext, GoalRequest
from cartpilot.schedules.mandate import Mandate, SignedMandate


class ScheduleStatus(StrEnum):
    SCHEDULED = "SCHEDULED"
    # Occurrences that fall while paused are skipped, not made up later (see README, "Schedules").
    PAUSED = "PAUSED"
    CANCELLED = "CANCELLED"
    # Every occurrence has fired (or was skipped): nothing is left to run.
    FINISHED = "FINISHED"


class ScheduleSpec(BaseModel):
    """The body's ``schedule``: ``{"at"}`` once, or ``{"rrule", "start", "until"}`` again and again.

    Times need an explicit UTC offset and are kept to whole seconds (the stored form).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    at: AwareDatetime | None = Field(
        default=None, description="One-off: when the goal runs (ISO 8601 with offset)"
    )
    rrule: str | None = Field(
        default=None,
        min_length=6,
        max_length=300,
        description="Recurrence: an RFC 5545 RRULE value, at most daily, e.g. FREQ=MONTHLY;BYMONTHDAY=1",
    )
    start: AwareDatetime | None = Field(
        default=None, description="Recurrence: the first occurrence (DTSTART)"
    )
    until: AwareDatetime | None = Field(default=None, description="Recurrence: nothing runs after this time")

    @field_validator("at", "start", "until")
    @classmethod
    def _whole_seconds(cls, moment: datetime | None) -> datetime | None:
        return None if moment is None else moment.replace(microsecond=0)

    @model_validator(mode="after")
    def _one_form(self) -> ScheduleSpec:
        recurring = self.rrule is not None or self.start is not None or self.until is not None
        if self.at is not None and recurring:
            raise ValueError("give either at, or rrule with start (and until), not both")
        if self.at is None and (self.rrule is None or self.start is None):
            raise ValueError("give at for a one-off, or rrule and start for a recurrence")
        return self

    @property
    def recurring(self) -> bool:
        return self.rrule is not None


class GoalSubmission(GoalRequest):
    """The body of ``POST /goals``: a goal, and optionally when to run it and what it may spend.

    Without ``schedule`` it is a goal that runs now. A recurrence needs a ``mandate``.
    """

    schedule: ScheduleSpec | None = None
    mandate: Mandate | None = None

    @model_validator(mode="after")
    def _mandate_goes_with_a_schedule(self) -> GoalSubmission:
        if self.mandate is not None and self.schedule is None:
            raise ValueError("mandate is only for a scheduled goal (give schedule too)")
        if self.schedule is not None and self.schedule.recurring and self.mandate is None:
            raise ValueError("a recurring schedule needs a mandate (maxPerOccurrence, maxTotal)")
        return self

    def goal_request(self) -> GoalRequest:
        return GoalRequest(userId=self.userId, goal=self.goal, context=self.context)

    def fingerprint(self) -> str:
        # A goal that runs now keeps the fingerprint it always had, so replays across releases match.
        if self.schedule is None and self.mandate is None:
            return self.goal_request().fingerprint()
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def new_schedule_id() -> str:
    """A random schedule id (104 bits), like goal ids: nothing can be read from it or guessed."""
    return f"s-{secrets.token_hex(13)}"


class OccurrenceStatus(StrEnum):
    # A goal was created for it and its order flow started.
    STARTED = "STARTED"
    # It fell while the schedule was paused.
    SKIPPED = "SKIPPED"
    # Intake refused it (the client may no longer act for the user, the user is gone): see ``reason``.
    REFUSED = "REFUSED"


class Occurrence(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    at: str
    goalId: str | None = None
    status: OccurrenceStatus = OccurrenceStatus.STARTED
    reason: str | None = None


class ScheduleRecord(BaseModel):
    """A schedule as stored."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    scheduleId: str
    brand: str
    clientId: str
    userId: str
    goal: str
    context: GoalContext
    definition: ScheduleSpec
    # The mandate as signed at creation (``schedules.mandate.sign_mandate``): bound to this schedule,
    # user and client; verified before an occurrence may run within it.
    signedMandate: SignedMandate | None = None
    status: ScheduleStatus
    requestHash: str
    createdAt: str
    updatedAt: str
    # The next occurrence not yet handled (UTC, ``recurrence.format_instant``); None when none is left.
    nextAt: str | None = None
    # The occurrence being fired: claimed before its goal is created, cleared once it is recorded.
    firing: str | None = None
    occurrences: list[Occurrence] = []

    @property
    def mandate(self) -> Mandate | None:
        return None if self.signedMandate is None else self.signedMandate.mandate

    def goal_request(self) -> GoalRequest:
        return GoalRequest(userId=self.userId, goal=self.goal, context=self.context)


class ScheduleAccepted(BaseModel):
    """What ``POST /goals`` answers for a scheduled goal."""

    model_config = ConfigDict(defer_build=True)

    scheduleId: str
    status: str
    links: dict[str, str]


class MandateSummary(BaseModel):
    model_config = ConfigDict(defer_build=True)

    maxPerOccurrence: dict[str, Any]
    maxTotal: dict[str, Any]
    merchants: list[str] | None = None
    categories: list[str] | None = None
    # The plan-signing key that signed it (published at GET /audit/keys).
    signatureKeyId: str


class ScheduleView(BaseModel):
    """What ``GET /schedules/{id}`` shows."""

    model_config = ConfigDict(defer_build=True)

    scheduleId: str
    status: str
    userId: str
    goal: str
    schedule: dict[str, Any]
    nextAt: str | None
    occurrences: list[Occurrence]
    mandate: MandateSummary | None = None
    createdAt: str
    updatedAt: str


def schedule_links(schedule_id: str) -> dict[str, str]:
    base = f"/schedules/{schedule_id}"
    return {"self": base, "pause": f"{base}/pause", "resume": f"{base}/resume", "cancel": base}


def schedule_view(record: ScheduleRecord) -> ScheduleView:
    mandate = None
    if record.signedMandate is not None:
        limits = record.signedMandate.mandate
        mandate = MandateSummary(
            maxPerOccurrence=limits.maxPerOccurrence.model_dump(mode="json"),
            maxTotal=limits.maxTotal.model_dump(mode="json"),
            merchants=limits.merchants,
            categories=limits.categories,
            signatureKeyId=record.signedMandate.signature.kid,
        )
    return ScheduleView(
        scheduleId=record.scheduleId,
        status=record.status.value,
        userId=record.userId,
        goal=record.goal,
        schedule=record.definition.model_dump(mode="json", exclude_none=True),
        nextAt=record.nextAt if record.status in (ScheduleStatus.SCHEDULED, ScheduleStatus.PAUSED) else None,
        occurrences=record.occurrences,
        mandate=mandate,
        createdAt=record.createdAt,
        updatedAt=record.updatedAt,
    )
