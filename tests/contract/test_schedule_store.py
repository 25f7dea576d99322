"""ScheduleStore: what schedule intake and the occurrence sweep rely on, for the fake and DynamoDB.

The moves are conditional: an occurrence is claimed once, recorded once, and a cancelled or paused
schedule leaves the sweep's index, except while an occurrence claimed before is still being fired.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest

from cartpilot.goals.model import GoalContext
from cartpilot.schedules.model import (
    Occurrence,
    OccurrenceStatus,
    ScheduleRecord,
    ScheduleSpec,
    ScheduleStatus,
)
from cartpilot.schedules.ports import ScheduleAlreadyExists, ScheduleStore
from cartpilot_local.resources import table_names
from tests.contract.racing import race
from tests.fakes.schedules import InMemoryScheduleStore

BRAND = "contract"
FIRST, SECOND, THIRD = "2027-01-01T01:00:00Z", "2027-02-01T01:00:00Z", "2027-03-01T01:00:00Z"
NOW = "2027-01-01T01:00:30Z"
STAMP = "2027-01-01T01:00:31.000Z"


@pytest.fixture(params=["fake", "dynamodb"])
def new_store(request: pytest.FixtureRequest) -> Callable[[], ScheduleStore]:
    """A store; calling again gives another instance over the same storage (another container)."""
    if request.param == "fake":
        fake = InMemoryScheduleStore()
        return lambda: fake
    request.getfixturevalue("aws")
    from cartpilot.adapters.aws.schedules_table import DynamoDBScheduleStore

    def another() -> ScheduleStore:
        return DynamoDBScheduleStore(boto3.resource("dynamodb").Table(table_names(BRAND)["schedules"]))

    return another


@pytest.fixture
def store(new_store: Callable[[], ScheduleStore]) -> ScheduleStore:
    return new_store()


def schedule(schedule_id: str = "s-contract", **fields: Any) -> ScheduleRecord:
    values: dict[str, Any] = {
        "scheduleId": schedule_id,
        "brand": BRAND,
        "clientId": "assistant",
        "userId": "user-1",
        "goal": "Buy coffee beans",
        "context": GoalContext(),
        "definition": ScheduleSpec(rrule="FREQ=MONTHLY;COUNT=3", start=FIRST),
        "status": ScheduleStatus.SCHEDULED,
        "requestHash": "h",
        "createdAt": STAMP,
        "updatedAt": STAMP,
        "nextAt": FIRST,
    }
    return ScheduleRecord(**(values | fields))


def fired(at: str, goal_id: str) -> Occurrence:
    return Occurrence(at=at, goalId=goal_id)


def test_create_then_get_round_trips_and_a_second_create_is_refused(store: ScheduleStore):
    record = schedule()
    store.create(record)

    assert store.get("s-contract") == record
    assert store.get("s-missing") is None
    with pytest.raises(ScheduleAlreadyExists):
        store.create(schedule(goal="something else"))
    assert store.get("s-contract") == record


def test_of_user_lists_the_users_schedules_of_one_client_newest_first(store: ScheduleStore):
    store.create(schedule("s-old", createdAt="2027-01-01T00:00:00.000Z"))
    store.create(schedule("s-new", createdAt="2027-01-03T00:00:00.000Z"))
    store.create(schedule("s-cancelled", createdAt="2027-01-02T00:00:00.000Z"))
    assert store.cancel("s-cancelled", updated_at=STAMP)
    store.create(schedule("s-other-client", clientId="another-client"))
    store.create(schedule("s-other-user", userId="user-2"))

    listed = store.of_user("user-1", client_id="assistant", limit=10)
    assert [r.scheduleId for r in listed] == ["s-new", "s-cancelled", "s-old"]
    # Whole records, whatever their status, as ``get`` reads them.
    assert listed[1] == store.get("s-cancelled")
    assert [r.scheduleId for r in store.of_user("user-1", client_id="assistant", limit=2)] == [
        "s-new",
        "s-cancelled",
    ]
    assert [r.scheduleId for r in store.of_user("user-2", client_id="assistant", limit=10)] == [
        "s-other-user"
    ]
    assert store.of_user("user-1", client_id="nobody", limit=10) == []
    assert store.of_user("user-9", client_id="assistant", limit=10) == []


def test_due_lists_only_active_schedules_whose_next_occurrence_has_come(store: ScheduleStore):
    store.create(schedule("s-due"))
    store.create(schedule("s-later", nextAt=SECOND))
    store.create(schedule("s-paused"))
    store.create(schedule("s-cancelled"))
    assert store.pause("s-paused", updated_at=STAMP)
    assert store.cancel("s-cancelled", updated_at=STAMP)

    assert store.due(NOW, limit=10) == ["s-due"]
    assert sorted(store.due(SECOND, limit=10)) == ["s-due", "s-later"]


def test_an_occurrence_is_claimed_only_when_next_and_recorded_once(store: ScheduleStore):
    store.create(schedule())

    assert not store.claim_occurrence("s-contract", SECOND)
    assert store.claim_occurrence("s-contract", FIRST)
    # A retry after a crash may claim the same occurrence again, to finish it.
    assert store.claim_occurrence("s-contract", FIRST)
    assert store.record_occurrence("s-contract", fired(FIRST, "g-1"), next_at=SECOND, updated_at=STAMP)
    assert not store.record_occurrence("s-contract", fired(FIRST, "g-2"), next_at=SECOND, updated_at=STAMP)

    record = store.get("s-contract")
    assert record is not None
    assert record.occurrences == [fired(FIRST, "g-1")] and record.nextAt == SECOND and record.firing is None
    assert not store.claim_occurrence("s-contract", FIRST)
    assert store.due(NOW, limit=10) == []


def test_the_last_occurrence_finishes_the_schedule(store: ScheduleStore):
    store.create(schedule(nextAt=THIRD))
    assert store.claim_occurrence("s-contract", THIRD)
    assert store.record_occurrence("s-contract", fired(THIRD, "g-3"), next_at=None, updated_at=STAMP)

    record = store.get("s-contract")
    assert record is not None and record.status is ScheduleStatus.FINISHED and record.nextAt is None
    assert store.due("2099-01-01T00:00:00Z", limit=10) == []
    assert not store.pause("s-contract", updated_at=STAMP) and not store.cancel(
        "s-contract", updated_at=STAMP
    )


def test_a_cancel_during_a_firing_lets_that_occurrence_be_recorded_and_nothing_after(store: ScheduleStore):
    store.create(schedule())
    assert store.claim_occurrence("s-contract", FIRST)

    assert store.cancel("s-contract", updated_at=STAMP)
    # The claimed occurrence is still the sweep's to finish (its goal may exist already).
    assert store.due(NOW, limit=10) == ["s-contract"]
    assert store.record_occurrence("s-contract", fired(FIRST, "g-1"), next_at=SECOND, updated_at=STAMP)

    record = store.get("s-contract")
    assert record is not None and record.status is ScheduleStatus.CANCELLED
    assert record.occurrences == [fired(FIRST, "g-1")]
    assert store.due("2099-01-01T00:00:00Z", limit=10) == []
    assert not store.claim_occurrence("s-contract", SECOND)


def test_resume_records_the_skipped_occurrences_and_moves_on(store: ScheduleStore):
    store.create(schedule())
    assert not store.resume("s-contract", next_at=SECOND, skipped=[], updated_at=STAMP)
    assert store.pause("s-contract", updated_at=STAMP)
    assert not store.pause("s-contract", updated_at=STAMP)
    assert not store.claim_occurrence("s-contract", FIRST)

    skipped = [Occurrence(at=FIRST, status=OccurrenceStatus.SKIPPED)]
    assert store.resume("s-contract", next_at=SECOND, skipped=skipped, updated_at=STAMP)

    record = store.get("s-contract")
    assert record is not None and record.status is ScheduleStatus.SCHEDULED
    assert record.occurrences == skipped and record.nextAt == SECOND
    assert store.due(SECOND, limit=10) == ["s-contract"]


def test_two_sweeps_racing_record_one_occurrence(new_store: Callable[[], ScheduleStore]):
    new_store().create(schedule())

    def fire() -> bool:
        store = new_store()
        if not store.claim_occurrence("s-contract", FIRST):
            return False
        return store.record_occurrence("s-contract", fired(FIRST, "g-1"), next_at=SECOND, updated_at=STAMP)

    results = race([fire] * 4)

    assert sorted(results) == [False, False, False, True]
    record = new_store().get("s-contract")
    assert record is not None and record.occurrences == [fired(FIRST, "g-1")]
