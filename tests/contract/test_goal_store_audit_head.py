"""GoalStore: a change and the audit chain head move in one write, for the fake and DynamoDB."""

from __future__ import annotations

import pytest

from cartpilot.goals.lifecycle import InvalidTransition
from cartpilot.goals.model import GoalStatus
from cartpilot.goals.ports import AuditHead, GoalNotFound, GoalPosition
from tests.contract.backends import GoalStoreBackend
from tests.contract.samples import LATER, bare_goal, full_goal, step


def _head(goals: GoalStoreBackend, goal_id: str) -> tuple[int | None, str | None]:
    got = goals.store.require(goal_id)
    return got.auditSeq, got.auditHead


def test_the_position_is_the_status_and_the_audit_seq_of_the_head(goals: GoalStoreBackend):
    assert goals.store.position("g-unknown") is None
    goals.store.create(bare_goal("g-pos", GoalStatus.VALIDATING))
    assert goals.store.position("g-pos") == GoalPosition(status=GoalStatus.VALIDATING, auditSeq=None)
    goals.store.advance_audit_head("g-pos", seq=4, head="h4")
    assert goals.store.position("g-pos") == GoalPosition(status=GoalStatus.VALIDATING, auditSeq=4)


def test_a_status_move_carries_the_chain_head_in_the_same_update(goals: GoalStoreBackend):
    goals.store.create(bare_goal("g-move", GoalStatus.VALIDATING))
    goals.store.advance_audit_head("g-move", seq=1, head="h1")

    goals.store.update(
        "g-move", status=GoalStatus.EXECUTING, updated_at=LATER, audit=AuditHead(2, "h2"), failure="x"
    )

    got = goals.store.require("g-move")
    assert (got.status, got.failure, got.auditSeq, got.auditHead) == (GoalStatus.EXECUTING, "x", 2, "h2")


def test_a_refused_move_moves_neither_the_status_nor_the_chain_head(goals: GoalStoreBackend):
    goals.store.create(bare_goal("g-refused", GoalStatus.COMPLETED))
    goals.store.advance_audit_head("g-refused", seq=3, head="h3")
    with pytest.raises(InvalidTransition):
        goals.store.update(
            "g-refused", status=GoalStatus.EXECUTING, updated_at=LATER, audit=AuditHead(4, "h4")
        )
    assert goals.store.require("g-refused").status is GoalStatus.COMPLETED
    assert _head(goals, "g-refused") == (3, "h3")
    with pytest.raises(GoalNotFound):
        goals.store.update("g-unknown", updated_at=LATER, audit=AuditHead(1, "h1"), failure="x")


def test_a_change_behind_a_later_chain_head_is_written_and_the_head_stays(goals: GoalStoreBackend):
    goals.store.create(bare_goal("g-behind", GoalStatus.VALIDATING))
    # A concurrent record was pointed at first: this change's record is older.
    goals.store.advance_audit_head("g-behind", seq=5, head="h5")

    goals.store.update(
        "g-behind", status=GoalStatus.EXECUTING, updated_at=LATER, audit=AuditHead(4, "h4"), failure="y"
    )

    got = goals.store.require("g-behind")
    assert (got.status, got.failure) == (GoalStatus.EXECUTING, "y")
    assert _head(goals, "g-behind") == (5, "h5")


def test_a_step_and_its_chain_head_are_one_write_and_a_redelivery_only_moves_the_head(
    goals: GoalStoreBackend,
):
    goals.store.create(full_goal("g-step", GoalStatus.EXECUTING))
    seq = goals.store.require("g-step").auditSeq or 0
    result = step("s9", checkoutId="cs-9")

    goals.store.append_step("g-step", result, LATER, audit=AuditHead(seq + 1, "h-next"))
    assert _head(goals, "g-step") == (seq + 1, "h-next")
    parts = goals.part_count("g-step")
    goals.store.append_step("g-step", result, LATER, audit=AuditHead(seq + 2, "h-again"))

    got = goals.store.require("g-step")
    assert [s.stepId for s in got.steps].count("s9") == 1 and got.steps[-1] == result
    assert (got.auditSeq, got.auditHead) == (seq + 2, "h-again")
    assert goals.part_count("g-step") == parts
