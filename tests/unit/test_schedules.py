"""Scheduled and recurring goals on the fakes: which schedules are taken, what the desk changes, and how
the occurrence sweep turns each due occurrence into exactly one goal, whatever fires twice or crashes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cartpilot.brands.access import ApiClient
from cartpilot.brands.config import BrandConfig
from cartpilot.brands.users import UserDirectory
from cartpilot.goals.intake import GoalIntake, IntakeError
from cartpilot.goals.ledger import GoalLedger
from cartpilot.schedules.ap2 import mandate_from_claims, verify_open_mandate
from cartpilot.schedules.desk import ScheduleDesk, ScheduleRefused
from cartpilot.schedules.firing import OccurrenceFiring
from cartpilot.schedules.mandate import Mandate, verify_signed_mandate
from cartpilot.schedules.model import GoalSubmission, OccurrenceStatus, ScheduleSpec, ScheduleStatus
from cartpilot.schedules.recurrence import (
    MAX_OCCURRENCES,
    ScheduleRejected,
    check_schedule,
    next_occurrence,
    occurrences,
)
from tests.fakes import FakeWorkflow, InMemoryGoalStore
from tests.fakes.plan_signing import LocalPlanSigner
from tests.fakes.schedules import InMemoryScheduleStore
from tests.unit.stages import fake_ledger

NOW = datetime(2027, 1, 10, 8, 0, tzinfo=UTC)
ASSISTANT = ApiClient(id="assistant", principals=["arn:aws:iam::123456789012:user/assistant"], users="all")
PARTNER = ApiClient(id="partner", principals=["arn:aws:iam::123456789012:user/partner"], users=["user-5"])
MANDATE = {
    "maxPerOccurrence": {"amount_minor": 30_000, "currency": "CNY"},
    "maxTotal": {"amount_minor": 90_000, "currency": "CNY"},
}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class Schedules:
    """A desk and a sweep over the same fakes, with a clock the test moves."""

    def __init__(self, brand: BrandConfig, users: UserDirectory, *, store: Any = None) -> None:
        self.ledger: GoalLedger = fake_ledger()
        self.workflow = FakeWorkflow()
        self.store = store or InMemoryScheduleStore()
        self.clock = Clock()
        self.signer = LocalPlanSigner()
        self.intake = GoalIntake(ledger=self.ledger, workflow=self.workflow, brand=brand, users=users)
        self.desk = ScheduleDesk(
            store=self.store,
            goals=self.ledger.store,
            intake=self.intake,
            audit=self.ledger.audit,
            brand=brand,
            signer=lambda: self.signer,
            clock=self.clock,
        )
        self.firing = OccurrenceFiring(
            store=self.store, intake=self.intake, audit=self.ledger.audit, brand=brand, clock=self.clock
        )

    def create(
        self, schedule: dict[str, Any], *, mandate: dict[str, Any] | None = None, key: str = "k1"
    ) -> str:
        body: dict[str, Any] = {"userId": "user-1", "goal": "Buy coffee beans", "schedule": schedule}
        if mandate is not None:
            body["mandate"] = mandate
        return self.desk.create(GoalSubmission.model_validate(body), key, client=ASSISTANT).scheduleId

    def goals(self) -> list[str]:
        store = self.ledger.store
        assert isinstance(store, InMemoryGoalStore)
        return store.goal_ids()


@pytest.fixture
def schedules(brand: BrandConfig, users: UserDirectory) -> Schedules:
    return Schedules(brand, users)


def monthly(count: int = 3) -> dict[str, Any]:
    return {"rrule": f"FREQ=MONTHLY;COUNT={count}", "start": (NOW + timedelta(days=1)).isoformat()}


# --- recurrence rules ---------------------------------------------------------------------------


def test_a_monthly_rule_expands_in_utc_from_an_offset_start():
    spec = ScheduleSpec(
        rrule="FREQ=MONTHLY;BYMONTHDAY=1", start="2027-02-01T09:00:00+08:00", until="2027-04-30T00:00:00Z"
    )

    assert [o.isoformat() for o in occurrences(spec)] == [
        "2027-02-01T01:00:00+00:00",
        "2027-03-01T01:00:00+00:00",
        "2027-04-01T01:00:00+00:00",
    ]
    assert check_schedule(spec, NOW).isoformat() == "2027-02-01T01:00:00+00:00"
    assert next_occurrence(spec, after=datetime(2027, 2, 1, 1, tzinfo=UTC)) == datetime(
        2027, 3, 1, 1, tzinfo=UTC
    )
    assert next_occurrence(spec, after=datetime(2027, 4, 1, 1, tzinfo=UTC)) is None


@pytest.mark.parametrize(
    ("rule", "why"),
    [
        ("FREQ=HOURLY;COUNT=3", "at most one purchase a day"),
        ("FREQ=DAILY;BYHOUR=8,20;COUNT=4", "at least a day apart"),
        ("FREQ=WEEKLY", "must end"),
        (f"FREQ=DAILY;COUNT={MAX_OCCURRENCES + 1}", "at most"),
        ("FREQ=YEARLY;COUNT=8", "within five years"),
        ("FREQ=DAILY;UNTIL=20270301T000000Z;COUNT=2", "not both"),
        ("FREQ=DAILY;UNTIL=20270301T000000", "not a valid"),
        ("FREQ=DAILY;COUNT=2;X-NAME=1", "not one this API accepts"),
        ("FREQ=DAILY;COUNT=2\nRDATE:20270301T000000Z", "one RRULE value"),
        ("FREQ=DAILY;BYDAY=XX;COUNT=2", "not a valid"),
    ],
)
def test_rules_that_do_not_fit_shopping_are_refused(rule: str, why: str):
    spec = ScheduleSpec(rrule=rule, start="2027-02-01T09:00:00+08:00")
    with pytest.raises(ScheduleRejected, match=why):
        check_schedule(spec, NOW)


def test_a_recurrence_entirely_in_the_past_and_a_one_off_long_past_are_refused():
    with pytest.raises(ScheduleRejected, match="no occurrence from now on"):
        check_schedule(ScheduleSpec(rrule="FREQ=DAILY;COUNT=2", start="2026-01-01T00:00:00Z"), NOW)
    with pytest.raises(ScheduleRejected, match="in the past"):
        check_schedule(ScheduleSpec(at=NOW - timedelta(hours=1)), NOW)
    # A minute late (a slow client) still runs, at once.
    assert check_schedule(ScheduleSpec(at=NOW - timedelta(minutes=1)), NOW) == NOW - timedelta(minutes=1)


@pytest.mark.parametrize(
    "schedule",
    [
        {"at": "2027-02-01T09:00:00"},
        {"at": "2027-02-01T09:00:00Z", "rrule": "FREQ=DAILY;COUNT=2", "start": "2027-02-01T09:00:00Z"},
        {"rrule": "FREQ=DAILY;COUNT=2"},
        {"start": "2027-02-01T09:00:00Z"},
        {},
    ],
)
def test_a_schedule_is_one_at_or_one_rrule_with_start_and_explicit_offsets(schedule: dict[str, Any]):
    with pytest.raises(ValueError):
        ScheduleSpec.model_validate(schedule)


def test_a_recurrence_needs_a_mandate_and_a_mandate_needs_a_schedule():
    with pytest.raises(ValueError, match="needs a mandate"):
        GoalSubmission.model_validate({"userId": "user-1", "goal": "Buy coffee", "schedule": monthly()})
    with pytest.raises(ValueError, match="only for a scheduled goal"):
        GoalSubmission.model_validate({"userId": "user-1", "goal": "Buy coffee", "mandate": MANDATE})


def test_a_goal_without_a_schedule_keeps_its_fingerprint():
    body = {"userId": "user-1", "goal": "Buy coffee"}
    submission = GoalSubmission.model_validate(body)
    assert submission.fingerprint() == submission.goal_request().fingerprint()
    scheduled = GoalSubmission.model_validate(body | {"schedule": {"at": "2027-02-01T09:00:00Z"}})
    assert scheduled.fingerprint() != submission.fingerprint()


# --- the desk -----------------------------------------------------------------------------------


def test_creating_signs_the_mandate_for_this_schedule_and_notes_it_in_the_audit(schedules: Schedules):
    schedule_id = schedules.create(monthly(), mandate=MANDATE)

    record = schedules.store.get(schedule_id)
    assert record is not None and record.status is ScheduleStatus.SCHEDULED
    assert record.nextAt == "2027-01-11T08:00:00Z" and record.occurrences == []
    assert record.signedMandate is not None and record.signedMandate.scheduleId == schedule_id
    assert verify_signed_mandate(record.signedMandate, schedules.signer.verifier())
    [created] = schedules.ledger.audit.records(schedule_id)
    assert created.event == "schedule.created"
    assert created.detail["signature"]["kid"] == schedules.signer.kid
    assert schedules.goals() == []


def test_the_same_key_finds_the_same_schedule_and_another_body_is_refused(schedules: Schedules):
    first = schedules.create({"at": "2027-02-01T09:00:00Z"})
    assert schedules.create({"at": "2027-02-01T09:00:00Z"}) == first
    with pytest.raises(ScheduleRefused) as refused:
        schedules.create({"at": "2027-02-02T09:00:00Z"})
    assert refused.value.status == 422 and refused.value.code == "IDEMPOTENCY_KEY_REUSED"
    assert len(schedules.ledger.audit.records(first)) == 1


def test_a_refused_schedule_stores_nothing(schedules: Schedules, brand: BrandConfig):
    bad = [
        ({"at": "2020-01-01T00:00:00Z"}, None, "INVALID_SCHEDULE"),
        (monthly(), {**MANDATE, "merchants": ["elsewhere"]}, "INVALID_MANDATE"),
    ]
    for schedule, mandate, code in bad:
        with pytest.raises(ScheduleRefused) as refused:
            schedules.create(schedule, mandate=mandate, key=f"k-{code}")
        assert refused.value.status == 422 and refused.value.code == code
    submission = GoalSubmission.model_validate(
        {"userId": "user-1", "goal": "Buy coffee", "schedule": {"at": "2027-02-01T09:00:00Z"}}
    )
    with pytest.raises(IntakeError) as not_allowed:
        schedules.desk.create(submission, "k-partner", client=PARTNER)
    assert not_allowed.value.status == 403
    assert schedules.store.due("2099-01-01T00:00:00Z", limit=10) == []
    assert schedules.goals() == []


def test_another_client_sees_no_schedule(schedules: Schedules):
    schedule_id = schedules.create(monthly(), mandate=MANDATE)
    for act in (schedules.desk.view, schedules.desk.pause, schedules.desk.resume, schedules.desk.cancel):
        with pytest.raises(ScheduleRefused) as refused:
            act(schedule_id, PARTNER)
        assert refused.value.status == 404
    with pytest.raises(ScheduleRefused):
        schedules.desk.view("../../etc", ASSISTANT)
    record = schedules.store.get(schedule_id)
    assert record is not None and record.status is ScheduleStatus.SCHEDULED


def test_the_user_list_holds_only_this_clients_schedules_and_refuses_a_user_it_may_not_act_for(
    schedules: Schedules,
):
    first = schedules.create(monthly(), mandate=MANDATE)
    schedules.clock.now = NOW + timedelta(minutes=1)
    second = schedules.create({"at": "2027-02-01T09:00:00Z"}, key="k2")

    listed = schedules.desk.of_user("user-1", ASSISTANT)
    assert [view.scheduleId for view in listed.schedules] == [second, first]
    assert listed.schedules[1].mandate is not None
    assert schedules.desk.of_user("user-5", PARTNER).schedules == []
    with pytest.raises(ScheduleRefused) as refused:
        schedules.desk.of_user("user-1", PARTNER)
    assert (refused.value.status, refused.value.code) == (403, "USER_NOT_ALLOWED")


def test_the_schedules_audit_verifies_and_shows_the_mandates_signature(schedules: Schedules):
    schedule_id = schedules.create(monthly(), mandate=MANDATE)
    schedules.desk.pause(schedule_id, ASSISTANT)

    trail = schedules.desk.audit(schedule_id, ASSISTANT, schedules.signer.verifier())

    assert [r.event for r in trail.records] == ["schedule.created", "schedule.paused"]
    assert trail.records[0].detail["signature"]["kid"] == schedules.signer.kid
    assert trail.verification.valid
    with pytest.raises(ScheduleRefused) as refused:
        schedules.desk.audit(schedule_id, PARTNER, schedules.signer.verifier())
    assert refused.value.status == 404


def test_the_exported_mandate_is_the_signed_one_with_the_schedules_recurrence(schedules: Schedules):
    schedule_id = schedules.create(monthly(4), mandate=MANDATE)

    exported = schedules.desk.export_mandate(schedule_id, ASSISTANT)

    claims = verify_open_mandate(exported.token, schedules.signer.registry.all())
    assert mandate_from_claims(claims) == Mandate.model_validate(MANDATE)
    assert {"type": "payment.agent_recurrence", "frequency": "MONTHLY", "max_occurrences": 4} in claims[
        "delegate_payload"
    ][0]["constraints"]
    record = schedules.store.get(schedule_id)
    assert record is not None and record.signedMandate is not None
    assert claims["mandate_ref"]["mandate_hash"] == record.signedMandate.audit_detail()["mandateHash"]
    with pytest.raises(ScheduleRefused) as other:
        schedules.desk.export_mandate(schedule_id, PARTNER)
    assert other.value.status == 404 and other.value.code == "SCHEDULE_NOT_FOUND"
    plain = schedules.create({"at": "2027-02-01T09:00:00Z"}, key="k-plain")
    with pytest.raises(ScheduleRefused) as none:
        schedules.desk.export_mandate(plain, ASSISTANT)
    assert none.value.status == 404 and none.value.code == "MANDATE_NOT_FOUND"


# --- firing -------------------------------------------------------------------------------------


def test_a_due_occurrence_becomes_one_goal_carrying_the_schedule(schedules: Schedules):
    schedule_id = schedules.create(monthly(), mandate=MANDATE)
    assert schedules.firing.sweep().fired == 0

    schedules.clock.now = NOW + timedelta(days=1)
    report = schedules.firing.sweep()
    again = schedules.firing.sweep()

    assert (report.fired, again.fired) == (1, 0)
    [goal_id] = schedules.goals()
    goal = schedules.ledger.store.require(goal_id)
    assert goal.scheduleId == schedule_id and goal.clientId == "assistant" and goal.goal == "Buy coffee beans"
    assert list(schedules.workflow.started) == [goal_id]
    view = schedules.desk.view(schedule_id, ASSISTANT)
    assert [(o.at, o.goalId) for o in view.occurrences] == [("2027-01-11T08:00:00Z", goal_id)]
    assert view.nextAt == "2027-02-11T08:00:00Z"
    assert [r.event for r in schedules.ledger.audit.records(schedule_id)] == [
        "schedule.created",
        "schedule.occurrence",
    ]


def test_a_crash_between_claim_and_record_is_finished_by_the_next_sweep_with_the_same_goal(
    schedules: Schedules,
):
    schedule_id = schedules.create(monthly(), mandate=MANDATE)
    schedules.clock.now = NOW + timedelta(days=1)
    original = schedules.store.record_occurrence

    def crash(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("the function timed out")

    schedules.store.record_occurrence = crash  # type: ignore[method-assign]
    assert schedules.firing.sweep().failed == 1
    [goal_id] = schedules.goals()
    # Cancelled in between: the claimed occurrence (whose goal exists) is still recorded, nothing more.
    schedules.desk.cancel(schedule_id, ASSISTANT)
    schedules.store.record_occurrence = original  # type: ignore[method-assign]

    assert schedules.firing.sweep().fired == 1
    assert schedules.goals() == [goal_id]
    record = schedules.store.get(schedule_id)
    assert record is not None and record.status is ScheduleStatus.CANCELLED
    assert [o.goalId for o in record.occurrences] == [goal_id]
    schedules.clock.now = NOW + timedelta(days=100)
    assert schedules.firing.sweep().fired == 0 and schedules.goals() == [goal_id]


def test_pausing_skips_what_falls_while_paused(schedules: Schedules):
    schedule_id = schedules.create(monthly(3), mandate=MANDATE)
    schedules.desk.pause(schedule_id, ASSISTANT)
    schedules.clock.now = NOW + timedelta(days=40)
    assert schedules.firing.sweep().fired == 0

    view = schedules.desk.resume(schedule_id, ASSISTANT)

    assert view.status == "SCHEDULED"
    assert [(o.at, o.status) for o in view.occurrences] == [
        ("2027-01-11T08:00:00Z", OccurrenceStatus.SKIPPED),
        ("2027-02-11T08:00:00Z", OccurrenceStatus.SKIPPED),
    ]
    assert view.nextAt == "2027-03-11T08:00:00Z"
    schedules.clock.now = NOW + timedelta(days=60)
    assert schedules.firing.sweep().fired == 1
    assert schedules.desk.view(schedule_id, ASSISTANT).status == "FINISHED"
    assert len(schedules.goals()) == 1


@pytest.mark.parametrize("move", ["pause", "cancel"])
def test_the_same_move_made_at_once_by_another_request_answers_its_result(
    schedules: Schedules, monkeypatch: pytest.MonkeyPatch, move: str
):
    schedule_id = schedules.create(monthly(3), mandate=MANDATE)
    store_move = getattr(schedules.store, move)

    def another_request_first(schedule_id: str, **kwargs: Any) -> bool:
        # The parallel request's write lands between this request's read and its own write.
        assert store_move(schedule_id, **kwargs)
        return bool(store_move(schedule_id, **kwargs))

    monkeypatch.setattr(schedules.store, move, another_request_first)
    view = getattr(schedules.desk, move)(schedule_id, ASSISTANT)
    assert view.status == {"pause": "PAUSED", "cancel": "CANCELLED"}[move]


def test_missed_occurrences_fire_late_oldest_first_each_once(schedules: Schedules):
    schedule_id = schedules.create(monthly(3), mandate=MANDATE)
    schedules.clock.now = NOW + timedelta(days=70)

    assert schedules.firing.sweep().fired == 3
    view = schedules.desk.view(schedule_id, ASSISTANT)
    assert [o.at for o in view.occurrences] == sorted(o.at for o in view.occurrences)
    assert len({o.goalId for o in view.occurrences}) == 3 and view.status == "FINISHED"


def test_an_occurrence_the_client_may_no_longer_make_is_recorded_as_refused(
    schedules: Schedules, brand: BrandConfig, users: UserDirectory
):
    schedule_id = schedules.create(monthly(2), mandate=MANDATE)
    narrowed = brand.model_copy(update={"apiClients": [PARTNER]})
    firing = OccurrenceFiring(
        store=schedules.store,
        intake=schedules.intake,
        audit=schedules.ledger.audit,
        brand=narrowed,
        clock=schedules.clock,
    )
    schedules.clock.now = NOW + timedelta(days=1)

    report = firing.sweep()

    assert (report.fired, report.refused) == (0, 1)
    [occurrence] = schedules.desk.view(schedule_id, ASSISTANT).occurrences
    assert occurrence.status is OccurrenceStatus.REFUSED and occurrence.reason == "CLIENT_NOT_LISTED"
    assert schedules.goals() == []
