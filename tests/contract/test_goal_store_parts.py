"""GoalStore's layout: a small head and write-once parts, for the fake and DynamoDB alike."""

from __future__ import annotations

import pytest

from cartpilot.goals.model import GoalStatus, MalformedPlan
from cartpilot.goals.ports import GoalPartConflict, GoalPartMissing
from cartpilot.plans.model import hash_plan_document
from tests.contract.backends import GoalStoreBackend
from tests.contract.samples import LATER, bare_goal, full_goal, malformed_plan_document, seed_plan, step

LATEST = "2026-11-25T08:10:00+00:00"
# Every audit record moves the head: under 1 KB, each of those writes is one write unit.
WRITE_UNIT = 1024


def test_a_goal_built_up_update_by_update_reads_back_as_created_whole(goals: GoalStoreBackend):
    whole = full_goal("g-whole", GoalStatus.EXECUTING)
    goals.store.create(
        bare_goal("g-whole", GoalStatus.EXECUTING).model_copy(
            update={"context": whole.context, "goal": whole.goal}
        )
    )
    goals.store.update("g-whole", updated_at=LATER, plan=whole.plan, planHash=whole.planHash)
    goals.store.update("g-whole", updated_at=LATER, verdict=whole.verdict, priceCheck=whole.priceCheck)
    for result in whole.steps:
        goals.store.append_step("g-whole", result, LATER)
    goals.store.update(
        "g-whole",
        updated_at=LATER,
        **whole.model_dump(
            exclude={"goalId", "status", "plan", "verdict", "priceCheck", "steps", "updatedAt"}
        ),
    )
    assert goals.store.require("g-whole") == whole.model_copy(update={"updatedAt": LATER})


def test_the_head_stays_under_one_write_unit_whatever_the_plan_and_steps(goals: GoalStoreBackend):
    goals.store.create(full_goal("g-small", GoalStatus.EXECUTING))
    for n in range(6):
        goals.store.append_step("g-small", step(f"s{n}", lines=list(range(50))), LATER)
    goals.store.update("g-small", updated_at=LATER, undoToken="t" * 2000, undoUntil=LATEST)
    goals.store.advance_audit_head("g-small", seq=99, head="sha256:" + "f" * 64)
    assert goals.head_size("g-small") < WRITE_UNIT


def test_a_part_is_written_once_and_a_write_of_the_same_content_adds_nothing(goals: GoalStoreBackend):
    goals.store.create(full_goal("g-once", GoalStatus.VALIDATING))
    stored = goals.part_count("g-once")
    plan = full_goal("g-once").plan
    goals.store.update("g-once", updated_at=LATER, plan=plan)
    goals.store.update("g-once", updated_at=LATEST, plan=plan)
    goals.store.append_step("g-once", step("s4", checkoutId="cs-1"), LATER)
    goals.store.append_step("g-once", step("s4", checkoutId="cs-1"), LATER)
    # The plan was stored at creation already; the step result is one new part, written once.
    assert goals.part_count("g-once") == stored + 1
    assert goals.store.require("g-once").plan == plan


def test_a_new_value_is_a_new_part_and_the_head_moves_to_it(goals: GoalStoreBackend):
    goals.store.create(full_goal("g-new", GoalStatus.VALIDATING))
    stored = goals.part_count("g-new")
    replanned = seed_plan().model_copy(update={"planId": "p-replanned"})
    goals.store.update("g-new", updated_at=LATER, plan=replanned, planHash=replanned.plan_hash())
    assert goals.part_count("g-new") == stored + 1
    got = goals.store.require("g-new")
    assert got.plan == replanned and got.planHash == replanned.plan_hash()


def test_a_stored_part_is_never_overwritten(goals: GoalStoreBackend):
    goals.store.create(full_goal("g-kept", GoalStatus.VALIDATING))
    plan = full_goal("g-kept").plan
    document = malformed_plan_document()
    # Someone rewrites the stored plan part in place; writing the original plan again must not
    # silently take that key back: the conditional write is refused, and what is stored stays.
    goals.edit("g-kept", plan=document)
    with pytest.raises(GoalPartConflict):
        goals.store.update("g-kept", updated_at=LATEST, plan=plan)
    got = goals.store.require("g-kept")
    assert isinstance(got.plan, MalformedPlan) and got.plan.document == document
    assert got.updatedAt != LATEST


@pytest.mark.parametrize("field", ["plan", "verdict", "receipt", "goal", "steps"])
def test_a_missing_part_is_an_error_not_an_empty_field(goals: GoalStoreBackend, field: str):
    goals.store.create(full_goal("g-lost"))
    goals.drop_part("g-lost", field)
    with pytest.raises(GoalPartMissing):
        goals.store.get("g-lost")
    with pytest.raises(GoalPartMissing):
        goals.store.require("g-lost")


def test_clearing_a_part_field_drops_the_reference_and_nothing_else(goals: GoalStoreBackend):
    goals.store.create(full_goal("g-clear"))
    goals.store.update("g-clear", updated_at=LATER, undoToken="token-1")
    assert goals.store.undo_token("g-clear") == "token-1"
    goals.store.update("g-clear", updated_at=LATER, undoToken=None, receipt=None)
    got = goals.store.require("g-clear")
    assert goals.store.undo_token("g-clear") is None and got.receipt is None
    assert got == full_goal("g-clear").model_copy(update={"receipt": None})


def test_a_large_plan_document_round_trips(goals: GoalStoreBackend):
    document = malformed_plan_document()
    # Far past what the head may hold, well inside one DynamoDB item (400 KB).
    document["notes"] = ["付款前再确认一次库存与价格。" * 20] * 300
    goals.store.create(bare_goal("g-large", GoalStatus.PLANNING))
    goals.store.update("g-large", updated_at=LATER, plan=document, planHash=hash_plan_document(document))
    got = goals.store.require("g-large")
    assert isinstance(got.plan, MalformedPlan) and got.plan.document == document
    assert goals.head_size("g-large") < WRITE_UNIT


def test_a_failed_status_change_leaves_the_goal_as_it_was(goals: GoalStoreBackend):
    goals.store.create(full_goal("g-refused", GoalStatus.COMPLETED))
    before = goals.store.require("g-refused")
    replanned = seed_plan().model_copy(update={"planId": "p-late"})
    with pytest.raises(Exception, match="cannot move"):
        goals.store.update("g-refused", status=GoalStatus.PLANNING, updated_at=LATEST, plan=replanned)
    # The new plan's part may be stored, but the goal never refers to it.
    assert goals.store.require("g-refused") == before
