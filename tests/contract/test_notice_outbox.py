"""NoticeOutbox: a status change is told once, a failed send is told again, a dead relay's notice is
taken again once its lease runs out, and the index empties."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cartpilot.goals.model import GoalStatus
from cartpilot.goals.ports import GoalStore
from cartpilot.notifications.status_notices import NOTICE_LEASE_SECONDS, relay_status_notices
from tests.contract.conftest import _in_aws, _table
from tests.contract.samples import bare_goal
from tests.fakes import InMemoryGoalStore, RecordingNotifier
from tests.fakes.notices import InMemoryNoticeOutbox

AT = "2026-11-30T10:00:00.000Z"
NOW = 1_800_000_000
UNTIL = NOW + NOTICE_LEASE_SECONDS


@dataclass
class Outbox:
    outbox: Any
    goals: GoalStore


@pytest.fixture(params=["fake", "dynamodb"])
def backend(request: pytest.FixtureRequest) -> Outbox:
    record = bare_goal("g-1").model_copy(update={"status": GoalStatus.UNDONE})
    if _in_aws(request) is None:
        goals = InMemoryGoalStore()
        goals.create(record)
        return Outbox(InMemoryNoticeOutbox(), goals)
    from cartpilot.adapters.aws.goals_table import DynamoDBGoalStore
    from cartpilot.adapters.aws.notices_table import DynamoDBNoticeOutbox

    store = DynamoDBGoalStore(_table("goals"))
    store.create(record)
    return Outbox(DynamoDBNoticeOutbox(_table("goals")), store)


@pytest.fixture
def outbox(backend: Outbox) -> Any:
    return backend.outbox


def test_a_due_notice_is_claimed_once_and_never_queued_again(outbox: Any) -> None:
    assert outbox.mark_due("g-1", "UNDONE+shopper", at=AT)
    assert outbox.mark_due("g-1", "UNDONE+shopper", at=AT)  # a retried transition: still one
    assert outbox.due_goals() == ["g-1"] and outbox.due("g-1") == ["UNDONE+shopper"]

    assert outbox.claim("g-1", "UNDONE+shopper", now=NOW, until=UNTIL)
    assert not outbox.claim("g-1", "UNDONE+shopper", now=NOW + 1, until=UNTIL + 1)  # leased
    assert outbox.due("g-1") == ["UNDONE+shopper"]  # still due until it is marked sent
    outbox.mark_sent("g-1", "UNDONE+shopper")
    assert not outbox.claim("g-1", "UNDONE+shopper", now=UNTIL + 1, until=UNTIL + 100)
    assert not outbox.mark_due("g-1", "UNDONE+shopper", at=AT)  # told: a late retry queues nothing
    outbox.settle("g-1")
    assert outbox.due_goals() == [] and outbox.due("g-1") == []


def test_a_released_notice_is_due_again_and_the_goal_stays_indexed(outbox: Any) -> None:
    outbox.mark_due("g-1", "COMPLETED", at=AT)
    outbox.mark_due("g-1", "UNDONE+shopper", at=AT)
    assert outbox.claim("g-1", "COMPLETED", now=NOW, until=UNTIL)
    outbox.release("g-1", "COMPLETED", until=UNTIL)
    outbox.settle("g-1")  # something is still due: the goal stays in the index
    assert outbox.due_goals() == ["g-1"]
    assert sorted(outbox.due("g-1")) == ["COMPLETED", "UNDONE+shopper"]
    assert outbox.claim("g-1", "COMPLETED", now=NOW + 1, until=UNTIL + 1)  # free again at once


def test_an_expired_lease_is_taken_again_and_the_late_holder_cannot_free_the_new_one(outbox: Any) -> None:
    outbox.mark_due("g-1", "UNDONE+shopper", at=AT)
    assert outbox.claim("g-1", "UNDONE+shopper", now=NOW, until=UNTIL)
    assert not outbox.claim("g-1", "UNDONE+shopper", now=UNTIL - 1, until=UNTIL + 500)
    assert outbox.claim("g-1", "UNDONE+shopper", now=UNTIL, until=UNTIL + 500)  # the holder died
    outbox.release("g-1", "UNDONE+shopper", until=UNTIL)  # the first holder, late: not its lease now
    assert not outbox.claim("g-1", "UNDONE+shopper", now=UNTIL + 1, until=UNTIL + 600)


class RelayDied(BaseException):
    """The Lambda ends mid-send (a timeout kills the process): no ``except Exception`` runs."""


class DyingNotifier:
    def send(self, *, kind: str, goal_id: str, user_id: str, subject: str, body: dict[str, Any]) -> str:
        raise RelayDied


def _clock(at: int) -> Any:
    return lambda: datetime.fromtimestamp(at, UTC)


def test_a_notice_whose_relay_died_after_the_claim_is_sent_by_a_later_sweep(backend: Outbox) -> None:
    backend.outbox.mark_due("g-1", "UNDONE+shopper", at=AT)
    with pytest.raises(RelayDied):
        relay_status_notices(
            outbox=backend.outbox, goals=backend.goals, shopper=RecordingNotifier(), brand=DyingNotifier(),
            now=_clock(NOW),
        )  # fmt: skip

    brand, shopper = RecordingNotifier(), RecordingNotifier()
    # While the dead relay's lease runs, a sweep leaves the notice alone (the holder might be alive).
    early = relay_status_notices(
        outbox=backend.outbox, goals=backend.goals, shopper=shopper, brand=brand, now=_clock(NOW + 30)
    )
    assert early.told == [] and brand.sent == [] and backend.outbox.due("g-1") == ["UNDONE+shopper"]
    late = relay_status_notices(
        outbox=backend.outbox, goals=backend.goals, shopper=shopper, brand=brand,
        now=lambda: datetime.fromtimestamp(NOW, UTC) + timedelta(seconds=NOTICE_LEASE_SECONDS),
    )  # fmt: skip
    assert late.told == ["g-1:UNDONE"]
    assert [m["noticeId"] for m in brand.sent + shopper.sent] == ["g-1:UNDONE", "g-1:UNDONE"]
    assert backend.outbox.due("g-1") == [] and backend.outbox.due_goals() == []


def test_two_live_sweeps_racing_send_a_notice_once(backend: Outbox) -> None:
    backend.outbox.mark_due("g-1", "UNDONE+shopper", at=AT)
    brand, shopper = RecordingNotifier(), RecordingNotifier()

    class SweepingMidSend:
        """The second sweep runs while the first is sending (its lease alive)."""

        def __init__(self) -> None:
            self.inner: Any = None

        def send(self, **message: Any) -> str:
            if self.inner is None:
                self.inner = relay_status_notices(
                    outbox=backend.outbox, goals=backend.goals, shopper=shopper, brand=brand,
                    now=_clock(NOW + 5),
                )  # fmt: skip
            return str(brand.send(**message))

    racing = SweepingMidSend()
    first = relay_status_notices(
        outbox=backend.outbox, goals=backend.goals, shopper=shopper, brand=racing, now=_clock(NOW)
    )
    assert first.told == ["g-1:UNDONE"] and racing.inner.told == []
    assert [m["status"] for m in brand.sent] == ["UNDONE"] and len(shopper.sent) == 1
