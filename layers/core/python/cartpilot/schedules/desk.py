"""Creating, showing, pausing, resuming and cancelling schedules, for the API client that owns them.

A schedule is taken in like a goal: the same checks of client and user (``GoalIntake.admit``), the
same claim of the client's Idempotency-Key (one schedule per key, whatever the retries), and a
random id. Its mandate is signed at creation, and every change lands in the schedule's own audit
chain (keyed by the schedule id). A client sees only its own schedules: another's is ``404``.

Pausing skips: an occurrence that falls while paused never runs, not even after resuming (a
shopper who paused the weekly coffee while away does not want four bags on return). Cancelling
is final.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from cartpilot.audit.public_keys import PlanSignatureVerifier
from cartpilot.audit.snapshots import PlanSigner
from cartpilot.audit.trail import AuditTrail
from cartpilot.brands.access import ApiClient
from cartpilot.brands.config import BrandConfig
from cartpilot.goals.intake import GoalIntake
from cartpilot.goals.model import submission_key
from cartpilot.goals.ports import GoalStore
from cartpilot.kernel.errors import Refusal
from cartpilot.schedules.ap2 import export_open_mandate, recurrence_of
from cartpilot.schedules.mandate import MandateNotAllowed, check_mandate_for_brand, sign_mandate
from cartpilot.schedules.model import (
    GoalSubmission,
    Occurrence,
    OccurrenceStatus,
    ScheduleAccepted,
    ScheduleRecord,
    ScheduleStatus,
    ScheduleView,
    new_schedule_id,
    schedule_links,
    schedule_view,
)
from cartpilot.schedules.ports import ScheduleAlreadyExists, ScheduleStore
from cartpilot.schedules.records import (
    USER_SCHEDULES_LIMIT,
    MandateExport,
    ScheduleAuditView,
    ScheduleList,
    schedule_audit_view,
)
from cartpilot.schedules.recurrence import (
    ScheduleRejected,
    check_schedule,
    format_instant,
    frequency_of,
    next_occurrence,
    occurrences,
)

_SCHEDULE_ID = re.compile(r"s-[0-9a-f]{26}")


class ScheduleRefused(Refusal):
    """Refused by the schedule desk."""


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ScheduleDesk:
    def __init__(
        self,
        *,
        store: ScheduleStore,
        goals: GoalStore,
        intake: GoalIntake,
        audit: AuditTrail,
        brand: BrandConfig,
        signer: Callable[[], PlanSigner],
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._goals = goals
        self._intake = intake
        self._audit = audit
        self._brand = brand
        # Called only for a schedule with a mandate: the KMS key is not needed otherwise.
        self._signer = signer
        self._clock = clock

    def create(
        self, submission: GoalSubmission, idempotency_key: str, *, client: ApiClient
    ) -> ScheduleAccepted:
        if submission.schedule is None:
            raise ValueError("create is for a submission with a schedule")
        request = submission.goal_request()
        self._intake.admit(request, client)
        now = self._clock()
        try:
            first = check_schedule(submission.schedule, now)
        except ScheduleRejected as exc:
            raise ScheduleRefused(422, "INVALID_SCHEDULE", str(exc)) from None
        if submission.mandate is not None:
            try:
                check_mandate_for_brand(submission.mandate, self._brand)
            except MandateNotAllowed as exc:
                raise ScheduleRefused(422, "INVALID_MANDATE", str(exc)) from None
        fingerprint = submission.fingerprint()
        # The client's key space is shared with goals: a key names one submission, goal or schedule.
        claim = self._goals.claim_submission(
            submission_key(self._brand.name, client.id, idempotency_key), new_schedule_id(), fingerprint
        )
        if claim.requestHash != fingerprint:
            raise ScheduleRefused(
                422, "IDEMPOTENCY_KEY_REUSED", "this Idempotency-Key was used with a different request"
            )
        schedule_id = claim.goalId
        existing = self._store.get(schedule_id)
        if existing is not None:
            # A retry: finish what an interrupted attempt left (its audit record), change nothing else.
            self._note_created(existing)
            return self._accepted(existing)
        signed = None
        if submission.mandate is not None:
            signed = sign_mandate(
                submission.mandate,
                schedule_id=schedule_id,
                user_id=request.userId,
                client_id=client.id,
                signer=self._signer(),
                signed_at=now,
            )
        stamp = _iso(now)
        record = ScheduleRecord(
            scheduleId=schedule_id,
            brand=self._brand.name,
            clientId=client.id,
            userId=request.userId,
            goal=request.goal,
            context=request.context,
            definition=submission.schedule,
            signedMandate=signed,
            status=ScheduleStatus.SCHEDULED,
            requestHash=fingerprint,
            createdAt=stamp,
            updatedAt=stamp,
            nextAt=format_instant(first),
        )
        try:
            self._store.create(record)
        except ScheduleAlreadyExists:
            # A concurrent retry of the same submission stored it first: the same schedule.
            stored = self._store.get(schedule_id)
            if stored is None:
                raise
            record = stored
        self._note_created(record)
        return self._accepted(record)

    def _note_created(self, record: ScheduleRecord) -> None:
        if self._audit.records(record.scheduleId):
            return
        signed = record.signedMandate
        self._audit.append(
            record.scheduleId,
            actor=f"user:{record.userId}",
            event="schedule.created",
            status=ScheduleStatus.SCHEDULED.value,
            detail={
                "client": record.clientId,
                "goal": record.goal,
                "schedule": record.definition.model_dump(mode="json", exclude_none=True),
                "firstAt": record.nextAt,
                **(signed.audit_detail() if signed is not None else {}),
            },
        )

    @staticmethod
    def _accepted(record: ScheduleRecord) -> ScheduleAccepted:
        return ScheduleAccepted(
            scheduleId=record.scheduleId, status=record.status.value, links=schedule_links(record.scheduleId)
        )

    def _owned(self, schedule_id: str, client: ApiClient) -> ScheduleRecord:
        record = self._store.get(schedule_id) if _SCHEDULE_ID.fullmatch(schedule_id) else None
        # Another client's schedule looks exactly like one that does not exist.
        if record is None or record.clientId != client.id or record.brand != self._brand.name:
            raise ScheduleRefused(404, "SCHEDULE_NOT_FOUND", f"no schedule {schedule_id}")
        return record

    def view(self, schedule_id: str, client: ApiClient) -> ScheduleView:
        return schedule_view(self._owned(schedule_id, client))

    def of_user(self, user_id: str, client: ApiClient) -> ScheduleList:
        """The user's schedules made through this client; ``403`` for a user it may not act for."""
        if not client.may_act_for(user_id):
            raise ScheduleRefused(403, "USER_NOT_ALLOWED", f"this client may not act for user {user_id}")
        records = self._store.of_user(user_id, client_id=client.id, limit=USER_SCHEDULES_LIMIT)
        mine = [schedule_view(record) for record in records if record.brand == self._brand.name]
        return ScheduleList(userId=user_id, schedules=mine)

    def audit(
        self, schedule_id: str, client: ApiClient, verifier: PlanSignatureVerifier
    ) -> ScheduleAuditView:
        record = self._owned(schedule_id, client)
        return schedule_audit_view(record.scheduleId, self._audit, verifier)

    def export_mandate(self, schedule_id: str, client: ApiClient) -> MandateExport:
        """The mandate signed at creation, as an AP2 open mandate SD-JWT signed with the plan-signing key."""
        record = self._owned(schedule_id, client)
        if record.signedMandate is None:
            raise ScheduleRefused(404, "MANDATE_NOT_FOUND", f"schedule {schedule_id} has no mandate")
        recurrence = None
        if record.definition.recurring:
            recurrence = recurrence_of(frequency_of(record.definition), len(occurrences(record.definition)))
        token = export_open_mandate(record.signedMandate, self._brand, self._signer(), recurrence=recurrence)
        return MandateExport(scheduleId=record.scheduleId, token=token)

    def pause(self, schedule_id: str, client: ApiClient) -> ScheduleView:
        record = self._owned(schedule_id, client)
        if record.status is ScheduleStatus.PAUSED:
            return schedule_view(record)
        if not self._store.pause(schedule_id, updated_at=_iso(self._clock())):
            return self._refuse_move(schedule_id, "pause", ScheduleStatus.PAUSED, client)
        self._note(record, client, "schedule.paused", ScheduleStatus.PAUSED)
        return self.view(schedule_id, client)

    def resume(self, schedule_id: str, client: ApiClient) -> ScheduleView:
        record = self._owned(schedule_id, client)
        if record.status is ScheduleStatus.SCHEDULED:
            return schedule_view(record)
        if record.status is not ScheduleStatus.PAUSED:
            return self._refuse_move(schedule_id, "resume", ScheduleStatus.SCHEDULED, client)
        now = self._clock().replace(microsecond=0)
        # Occurrences that fell while paused are skipped, and listed as skipped.
        skipped: list[Occurrence] = []
        if record.nextAt is not None:
            for moment in occurrences(record.definition):
                stamp = format_instant(moment)
                if record.nextAt <= stamp and moment < now:
                    skipped.append(Occurrence(at=stamp, status=OccurrenceStatus.SKIPPED))
        upcoming = next_occurrence(record.definition, from_=now) if record.nextAt is not None else None
        next_at = format_instant(upcoming) if upcoming is not None else None
        if not self._store.resume(schedule_id, next_at=next_at, skipped=skipped, updated_at=_iso(now)):
            raise ScheduleRefused(
                409, "SCHEDULE_BUSY", "an occurrence of this schedule is being recorded; try again shortly"
            )
        status = ScheduleStatus.SCHEDULED if next_at is not None else ScheduleStatus.FINISHED
        self._note(
            record,
            client,
            "schedule.resumed",
            status,
            {"skipped": [o.at for o in skipped], "nextAt": next_at},
        )
        return self.view(schedule_id, client)

    def cancel(self, schedule_id: str, client: ApiClient) -> ScheduleView:
        record = self._owned(schedule_id, client)
        if record.status is ScheduleStatus.CANCELLED:
            return schedule_view(record)
        if not self._store.cancel(schedule_id, updated_at=_iso(self._clock())):
            return self._refuse_move(schedule_id, "cancel", ScheduleStatus.CANCELLED, client)
        self._note(record, client, "schedule.cancelled", ScheduleStatus.CANCELLED)
        return self.view(schedule_id, client)

    def _refuse_move(
        self, schedule_id: str, verb: str, target: ScheduleStatus, client: ApiClient
    ) -> ScheduleView:
        current = self._store.get(schedule_id)
        if current is not None and current.status is target:
            # A parallel request made the same move first: twice is harmless, at once as well.
            return self.view(schedule_id, client)
        status = current.status.value if current is not None else "gone"
        raise ScheduleRefused(409, "SCHEDULE_NOT_ACTIVE", f"cannot {verb} a schedule that is {status}")

    def _note(
        self,
        record: ScheduleRecord,
        client: ApiClient,
        event: str,
        status: ScheduleStatus,
        detail: dict[str, object] | None = None,
    ) -> None:
        self._audit.append(
            record.scheduleId,
            actor=f"client:{client.id}",
            event=event,
            status=status.value,
            detail=detail or {},
        )
