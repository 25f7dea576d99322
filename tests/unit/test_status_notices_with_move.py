"""An ending is queued to be told in the write that moves the goal when the outbox lives on the goal's
item, and by ``mark_due`` after it otherwise: either way exactly the endings are queued."""

from __future__ import annotations

import pytest

from cartpilot.audit.trail import AuditTrail
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.lifecycle import InvalidTransition
from cartpilot.goals.model import GoalStatus
from tests.contract.samples import bare_goal
from tests.fakes import InMemoryAuditRecords, InMemoryGoalStore
from tests.fakes.notices import InMemoryNoticeOutbox


class CountingOutbox(InMemoryNoticeOutbox):
    """Counts the outbox's own queueing writes (``mark_due``)."""

    def __init__(self) -> None:
        super().__init__()
        self.marked = 0

    def mark_due(self, goal_id: str, status: str, *, at: str) -> bool:
        self.marked += 1
        return super().mark_due(goal_id, status, at=at)


def _ledger(status: GoalStatus, *, shared: bool) -> tuple[GoalLedger, CountingOutbox]:
    store = InMemoryGoalStore()
    outbox = CountingOutbox()
    if shared:
        store.notices = outbox
    store.create(bare_goal("g-1", status))
    return GoalLedger(store, AuditTrail(InMemoryAuditRecords()), notices=outbox), outbox


@pytest.mark.parametrize("shared", [True, False], ids=["with-the-move", "after-the-move"])
def test_an_ending_is_queued_once_and_a_step_on_the_way_is_not(shared: bool) -> None:
    ledger, outbox = _ledger(GoalStatus.VALIDATING, shared=shared)
    ledger.transition("g-1", GoalStatus.EXECUTING, actor="executor", event="goal.executing")
    assert outbox.due("g-1") == []

    ledger.transition("g-1", GoalStatus.COMPLETED, actor="executor", event="order.completed")
    ledger.transition("g-1", GoalStatus.COMPLETED, actor="executor", event="order.completed")  # a retry

    assert outbox.due("g-1") == ["COMPLETED"] and ledger.store.require("g-1").status is GoalStatus.COMPLETED
    # With the move, the outbox writes nothing of its own; after it, one write per move.
    assert outbox.marked == (0 if shared else 2)


def test_a_move_the_lifecycle_refuses_queues_nothing() -> None:
    ledger, outbox = _ledger(GoalStatus.PLANNING, shared=True)
    with pytest.raises(InvalidTransition):
        ledger.transition("g-1", GoalStatus.COMPLETED, actor="executor", event="order.completed")
    assert outbox.due("g-1") == [] and outbox.due_goals() == []


def test_the_relay_tells_the_shopper_of_an_undo_queued_with_the_move() -> None:
    ledger, outbox = _ledger(GoalStatus.COMPLETED, shared=True)
    ledger.transition("g-1", GoalStatus.UNDONE, actor="undo", event="order.undone")
    assert outbox.due("g-1") == ["UNDONE+shopper"] and outbox.marked == 0

    assert outbox.claim("g-1", "UNDONE+shopper", now=1, until=100)
    outbox.mark_sent("g-1", "UNDONE+shopper")
    ledger.transition("g-1", GoalStatus.UNDONE, actor="undo", event="order.undone")  # a late retry
    assert outbox.due("g-1") == []
