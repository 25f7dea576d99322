"""GoalStore: a status move queues its notice in the outbox kept on the goal in the same write, for
the fake and DynamoDB; a refused move queues nothing, and a told notice is never queued again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from cartpilot.goals.lifecycle import InvalidTransition
from cartpilot.goals.model import GoalStatus
from cartpilot.goals.ports import AuditHead, GoalStore
from tests.contract.conftest import _in_aws, _table
from tests.contract.samples import LATER, bare_goal
from tests.fakes import InMemoryGoalStore
from tests.fakes.notices import InMemoryNoticeOutbox

NOW = 1_800_000_000


@dataclass
class GoalsWithOutbox:
    store: GoalStore
    outbox: Any
    # Another store over the same storage (another Lambda container).
    another: GoalStore


@pytest.fixture(params=["fake", "dynamodb"])
def kept(request: pytest.FixtureRequest) -> GoalsWithOutbox:
    if _in_aws(request) is None:
        store = InMemoryGoalStore()
        return GoalsWithOutbox(store=store, outbox=store.notices, another=store)
    from cartpilot.adapters.aws.goals_table import DynamoDBGoalStore
    from cartpilot.adapters.aws.notices_table import DynamoDBNoticeOutbox

    return GoalsWithOutbox(
        store=DynamoDBGoalStore(_table("goals")),
        outbox=DynamoDBNoticeOutbox(_table("goals")),
        another=DynamoDBGoalStore(_table("goals")),
    )


def _tell(kept: GoalsWithOutbox, goal_id: str, token: str) -> None:
    assert kept.outbox.claim(goal_id, token, now=NOW, until=NOW + 120)
    kept.outbox.mark_sent(goal_id, token)
    kept.outbox.settle(goal_id)


def test_the_outbox_shares_the_goal_items_of_its_own_store_only(kept: GoalsWithOutbox) -> None:
    assert kept.outbox.shares_items_with(kept.store) and kept.outbox.shares_items_with(kept.another)
    assert not InMemoryNoticeOutbox().shares_items_with(kept.store)
    assert not kept.outbox.shares_items_with(object())


def test_a_move_and_its_notice_are_one_update(kept: GoalsWithOutbox) -> None:
    kept.store.create(bare_goal("g-told", GoalStatus.EXECUTING))
    kept.store.advance_audit_head("g-told", seq=1, head="h1")

    kept.store.update(
        "g-told", status=GoalStatus.COMPLETED, updated_at=LATER, audit=AuditHead(2, "h2"), notice="COMPLETED"
    )

    got = kept.store.require("g-told")
    assert (got.status, got.auditSeq, got.auditHead, got.updatedAt) == (GoalStatus.COMPLETED, 2, "h2", LATER)
    assert kept.outbox.due_goals() == ["g-told"] and kept.outbox.due("g-told") == ["COMPLETED"]
    # The relay takes it as one queued by ``mark_due``, and the goal leaves the index once told.
    _tell(kept, "g-told", "COMPLETED")
    assert kept.outbox.due_goals() == [] and kept.outbox.due("g-told") == []


def test_a_refused_move_queues_no_notice(kept: GoalsWithOutbox) -> None:
    kept.store.create(bare_goal("g-refused", GoalStatus.PLANNING))
    with pytest.raises(InvalidTransition):
        kept.store.update(
            "g-refused",
            status=GoalStatus.COMPLETED,
            updated_at=LATER,
            audit=AuditHead(1, "h1"),
            notice="COMPLETED",
        )
    assert kept.store.require("g-refused").status is GoalStatus.PLANNING
    assert kept.outbox.due("g-refused") == [] and kept.outbox.due_goals() == []


def test_a_retried_move_queues_a_due_notice_once_and_a_told_one_never_again(kept: GoalsWithOutbox) -> None:
    kept.store.create(bare_goal("g-retry", GoalStatus.COMPLETED))
    for attempt in ("first", "retry"):
        kept.store.update(
            "g-retry", status=GoalStatus.UNDONE, updated_at=LATER, notice="UNDONE+shopper", failure=attempt
        )
    assert kept.outbox.due("g-retry") == ["UNDONE+shopper"]
    _tell(kept, "g-retry", "UNDONE+shopper")

    # A late retry of the move: the change is written, the notice stays told.
    kept.another.update(
        "g-retry", status=GoalStatus.UNDONE, updated_at=LATER, audit=AuditHead(3, "h3"),
        notice="UNDONE+shopper", failure="late",
    )  # fmt: skip
    got = kept.store.require("g-retry")
    assert (got.status, got.failure, got.auditSeq) == (GoalStatus.UNDONE, "late", 3)
    assert kept.outbox.due("g-retry") == [] and kept.outbox.due_goals() == []


def test_a_told_notice_and_a_later_chain_head_both_stay(kept: GoalsWithOutbox) -> None:
    kept.store.create(bare_goal("g-both", GoalStatus.COMPLETED))
    kept.store.update("g-both", status=GoalStatus.UNDONE, updated_at=LATER, notice="UNDONE+shopper")
    _tell(kept, "g-both", "UNDONE+shopper")
    kept.store.advance_audit_head("g-both", seq=7, head="h7")

    kept.store.update(
        "g-both", status=GoalStatus.UNDONE, updated_at=LATER, audit=AuditHead(5, "h5"),
        notice="UNDONE+shopper", failure="again",
    )  # fmt: skip

    got = kept.store.require("g-both")
    assert (got.failure, got.auditSeq, got.auditHead) == ("again", 7, "h7")
    assert kept.outbox.due("g-both") == []
    # Still refused where the lifecycle refuses, told notice or not.
    with pytest.raises(InvalidTransition):
        kept.store.update("g-both", status=GoalStatus.EXECUTING, updated_at=LATER, notice="UNDONE+shopper")
