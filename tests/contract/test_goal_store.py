"""GoalStore: what the ledger, the handlers and the undo window rely on, for the fake and DynamoDB."""

from __future__ import annotations

import functools

import pytest

from cartpilot.commerce.errors import PlanIntegrityError
from cartpilot.goals.lifecycle import ALLOWED_FROM, InvalidTransition, may_move
from cartpilot.goals.model import GoalRecord, GoalStatus, MalformedPlan
from cartpilot.goals.ports import GoalAlreadyExists, GoalNotFound, GoalStore
from cartpilot.plans.model import Plan, hash_plan_document
from cartpilot.plans.verdicts import RiskTier, Verdict
from tests.contract.backends import GoalStoreBackend
from tests.contract.racing import race
from tests.contract.samples import LATER, bare_goal, full_goal, malformed_plan_document, seed_plan, step

LATEST = "2026-11-25T08:10:00+00:00"


def test_create_then_get_round_trips_every_typed_field(goals: GoalStoreBackend):
    record = full_goal("g-full")
    goals.store.create(record)

    got = goals.store.get("g-full")

    assert got == record
    assert got.model_dump(mode="json") == record.model_dump(mode="json")
    assert isinstance(got.plan, Plan) and got.current_plan() == seed_plan()
    assert isinstance(got.verdict, Verdict) and got.verdict.tier is RiskTier.APPROVAL
    assert got.approval is not None and got.approval.dropped == ["s2"]
    assert got.priceCheck is not None and got.priceCheck.items == record.priceCheck.items  # type: ignore[union-attr]
    assert got.receipt is not None and got.receipt.total == seed_plan().summary.total
    assert [s.stepId for s in got.steps] == ["s1", "s4"] and got.steps[0].summary["lines"] == [1, 2.5, None]
    assert got.auditSeq == 7 and isinstance(got.auditSeq, int)
    assert goals.store.require("g-full") == record


def test_a_bare_goal_round_trips_with_its_defaults(goals: GoalStoreBackend):
    record = bare_goal("g-bare")
    goals.store.create(record)
    got = goals.store.require("g-bare")
    assert got == record
    assert (got.plan, got.verdict, got.steps, got.auditSeq) == (None, None, [], None)


def test_a_goal_is_created_once(goals: GoalStoreBackend):
    goals.store.create(bare_goal("g-once"))
    with pytest.raises(GoalAlreadyExists):
        goals.store.create(full_goal("g-once"))
    assert goals.store.require("g-once") == bare_goal("g-once")


def test_an_unknown_goal_is_none_and_require_raises_goal_not_found(goals: GoalStoreBackend):
    goals.store.create(bare_goal("g-known"))
    assert goals.store.get("g-unknown") is None
    with pytest.raises(GoalNotFound):
        goals.store.require("g-unknown")


@pytest.mark.parametrize("target", list(ALLOWED_FROM))
def test_a_status_changes_only_from_a_status_the_lifecycle_allows(
    goals: GoalStoreBackend, target: GoalStatus
):
    for origin in GoalStatus:
        goal_id = f"g-{origin.value.lower()}"
        before = bare_goal(goal_id, origin)
        goals.store.create(before)
        if may_move(origin, target):
            goals.store.update(goal_id, status=target, updated_at=LATER, failure=f"moved from {origin}")
            after = goals.store.require(goal_id)
            assert (after.status, after.updatedAt, after.failure) == (target, LATER, f"moved from {origin}")
        else:
            with pytest.raises(InvalidTransition):
                goals.store.update(goal_id, status=target, updated_at=LATER, failure="must not be written")
            assert goals.store.require(goal_id) == before, f"{origin} -> {target} changed the goal"


def test_a_move_to_a_status_nothing_leads_to_is_refused_and_changes_nothing(goals: GoalStoreBackend):
    # RECEIVED is where goals start; the lifecycle table has no row for it, so no store can move
    # a goal there.
    assert set(GoalStatus) - set(ALLOWED_FROM) == {GoalStatus.RECEIVED}
    goals.store.create(bare_goal("g-planning", GoalStatus.PLANNING))
    before = goals.store.require("g-planning")
    with pytest.raises(InvalidTransition):
        goals.store.update("g-planning", status=GoalStatus.RECEIVED, updated_at=LATER, failure="x")
    assert goals.store.require("g-planning") == before


def test_an_update_without_a_status_sets_fields_in_any_status(goals: GoalStoreBackend):
    goals.store.create(bare_goal("g-final", GoalStatus.NEEDS_ATTENTION))
    goals.store.update("g-final", updated_at=LATER, failure="the merchant is down")
    got = goals.store.require("g-final")
    assert (got.status, got.failure, got.updatedAt) == (
        GoalStatus.NEEDS_ATTENTION,
        "the merchant is down",
        LATER,
    )


def test_a_plan_hash_condition_that_holds_lets_the_update_through(goals: GoalStoreBackend):
    plan = seed_plan()
    goals.store.create(bare_goal("g-hash", GoalStatus.VALIDATING, plan=plan, planHash=plan.plan_hash()))
    goals.store.update(
        "g-hash",
        status=GoalStatus.AWAITING_APPROVAL,
        updated_at=LATER,
        condition_plan_hash=plan.plan_hash(),
        approvedPlanHash=plan.plan_hash(),
    )
    got = goals.store.require("g-hash")
    assert (got.status, got.approvedPlanHash) == (GoalStatus.AWAITING_APPROVAL, plan.plan_hash())


@pytest.mark.parametrize("status", [None, GoalStatus.AWAITING_APPROVAL])
def test_a_plan_hash_condition_that_fails_changes_nothing(goals: GoalStoreBackend, status: GoalStatus | None):
    plan = seed_plan()
    goals.store.create(bare_goal("g-hash", GoalStatus.VALIDATING, plan=plan, planHash=plan.plan_hash()))
    goals.store.create(bare_goal("g-no-hash", GoalStatus.VALIDATING))
    for goal_id in ("g-hash", "g-no-hash"):
        before = goals.store.require(goal_id)
        with pytest.raises(InvalidTransition):
            goals.store.update(
                goal_id,
                status=status,
                updated_at=LATER,
                condition_plan_hash="sha256:" + "0" * 64,
                approvedPlanHash="sha256:" + "0" * 64,
            )
        assert goals.store.require(goal_id) == before


@pytest.mark.parametrize(
    "change",
    [
        {"failure": "x"},
        {"status": GoalStatus.PLANNING, "failure": "x"},
        {"status": GoalStatus.FAILED, "condition_plan_hash": "sha256:any"},
    ],
    ids=["fields", "status", "status-and-plan-hash"],
)
def test_an_update_of_an_unknown_goal_raises_goal_not_found_and_creates_nothing(
    goals: GoalStoreBackend, change: dict[str, object]
):
    with pytest.raises(GoalNotFound):
        goals.store.update("g-unknown", updated_at=LATER, **change)  # type: ignore[arg-type]
    assert goals.store.get("g-unknown") is None
    goals.store.create(bare_goal("g-unknown"))  # the id is still free


def test_none_clears_a_field_and_leaves_the_others(goals: GoalStoreBackend):
    goals.store.create(full_goal("g-clear", GoalStatus.EXECUTING))
    goals.store.update(
        "g-clear", updated_at=LATEST, plan=None, planHash=None, verdict=None, approval=None, receipt=None,
        priceCheck=None, undoUntil=None, failure=None, executionArn=None,
    )  # fmt: skip
    got = goals.store.require("g-clear")
    cleared = ("plan", "planHash", "verdict", "approval", "receipt", "priceCheck", "undoUntil", "failure")
    assert {name: getattr(got, name) for name in (*cleared, "executionArn")} == dict.fromkeys(
        (*cleared, "executionArn")
    )
    kept = full_goal("g-clear", GoalStatus.EXECUTING)
    assert (got.steps, got.approvedPlanHash, got.auditSeq, got.context) == (
        kept.steps, kept.approvedPlanHash, kept.auditSeq, kept.context,
    )  # fmt: skip
    assert got.updatedAt == LATEST
    with pytest.raises(PlanIntegrityError):
        got.current_plan()


def test_an_update_takes_models_or_plain_values(goals: GoalStoreBackend):
    plan = seed_plan()
    goals.store.create(bare_goal("g-models", GoalStatus.PLANNING))
    full = full_goal("g-models")
    goals.store.update(
        "g-models",
        updated_at=LATER,
        plan=plan.model_dump(mode="json"),
        planHash=plan.plan_hash(),
        verdict=full.verdict,
        priceCheck=full.priceCheck.model_dump(mode="json"),  # type: ignore[union-attr]
        steps=full.steps,
        receipt=full.receipt,
    )
    got = goals.store.require("g-models")
    assert got.plan == plan and got.verdict == full.verdict and got.priceCheck == full.priceCheck
    assert got.steps == full.steps and got.receipt == full.receipt


def test_what_is_stored_is_a_copy(goals: GoalStoreBackend):
    document = seed_plan().model_dump(mode="json")
    goals.store.create(bare_goal("g-copy", GoalStatus.PLANNING))
    goals.store.update("g-copy", updated_at=LATER, plan=document)
    document["goal"] = "changed after the update"
    got = goals.store.require("g-copy")
    assert got.plan == seed_plan()
    got.steps.append(step("s9"))
    assert goals.store.require("g-copy").steps == []


def test_append_step_records_each_step_once_and_a_retry_replaces_it(goals: GoalStoreBackend):
    goals.store.create(bare_goal("g-steps", GoalStatus.EXECUTING))
    goals.store.append_step("g-steps", step("s1", status="FAILED", attempt=1), "2026-11-25T08:01:00+00:00")
    goals.store.append_step("g-steps", step("s2", checkoutId="cs-1"), "2026-11-25T08:02:00+00:00")
    goals.store.append_step("g-steps", step("s1", attempt=2), "2026-11-25T08:03:00+00:00")

    got = goals.store.require("g-steps")
    by_id = {s.stepId: s for s in got.steps}
    assert sorted(s.stepId for s in got.steps) == ["s1", "s2"]
    assert (by_id["s1"].status, by_id["s1"].summary) == ("DONE", {"attempt": 2})
    assert by_id["s2"].summary == {"checkoutId": "cs-1"}
    assert (got.status, got.updatedAt) == (GoalStatus.EXECUTING, "2026-11-25T08:03:00+00:00")
    with pytest.raises(GoalNotFound):
        goals.store.append_step("g-unknown", step("s1"), LATER)


def test_the_audit_head_never_moves_backwards(goals: GoalStoreBackend):
    goals.store.create(bare_goal("g-audit"))
    goals.store.advance_audit_head("g-audit", seq=1, head="h1")
    goals.store.advance_audit_head("g-audit", seq=3, head="h3")
    goals.store.advance_audit_head("g-audit", seq=2, head="h2")
    goals.store.advance_audit_head("g-audit", seq=3, head="h3-again")
    got = goals.store.require("g-audit")
    assert (got.auditSeq, got.auditHead) == (3, "h3")
    goals.store.advance_audit_head("g-audit", seq=4, head="h4")
    assert (goals.store.require("g-audit").auditSeq, goals.store.require("g-audit").auditHead) == (4, "h4")


def test_advancing_the_audit_head_of_an_unknown_goal_does_nothing(goals: GoalStoreBackend):
    goals.store.advance_audit_head("g-unknown", seq=1, head="h1")
    assert goals.store.get("g-unknown") is None
    goals.store.create(bare_goal("g-unknown"))


def test_the_undo_token_is_kept_off_the_record_and_clears_with_none(goals: GoalStoreBackend):
    goals.store.create(bare_goal("g-undo", GoalStatus.COMPLETED))
    assert goals.store.undo_token("g-undo") is None
    goals.store.update("g-undo", updated_at=LATER, undoToken="task-token-secret")
    assert goals.store.undo_token("g-undo") == "task-token-secret"
    assert "task-token-secret" not in goals.store.require("g-undo").model_dump_json()
    goals.store.update("g-undo", updated_at=LATEST, undoToken=None)
    assert goals.store.undo_token("g-undo") is None
    assert goals.store.undo_token("g-unknown") is None


def test_an_undo_is_claimed_once_until_the_claim_is_released(goals: GoalStoreBackend):
    goals.store.create(bare_goal("g-undo", GoalStatus.COMPLETED))
    assert goals.store.claim_undo("g-undo", LATER) is True
    assert goals.store.claim_undo("g-undo", LATEST) is False
    goals.store.release_undo_claim("g-undo")
    assert goals.store.claim_undo("g-undo", LATEST) is True
    assert goals.store.claim_undo("g-undo", LATEST) is False
    assert goals.store.require("g-undo") == bare_goal("g-undo", GoalStatus.COMPLETED)


def test_an_undo_of_an_unknown_goal_is_not_claimed(goals: GoalStoreBackend):
    assert goals.store.claim_undo("g-unknown", LATER) is False
    assert goals.store.get("g-unknown") is None


def test_releasing_the_undo_claim_of_an_unknown_goal_creates_nothing(goals: GoalStoreBackend):
    goals.store.release_undo_claim("g-unknown")
    assert goals.store.get("g-unknown") is None
    goals.store.create(bare_goal("g-unknown"))


def test_racing_undo_requests_are_claimed_once(goals: GoalStoreBackend):
    goals.store.create(bare_goal("g-race", GoalStatus.COMPLETED))
    stores = [goals.another() for _ in range(8)]
    results = race([functools.partial(store.claim_undo, "g-race", f"2026-11-25T08:0{n}:00+00:00")
                    for n, store in enumerate(stores)])  # fmt: skip
    assert sorted(results) == [False] * 7 + [True]


def test_racing_status_changes_let_exactly_one_through(goals: GoalStoreBackend):
    # From AWAITING_APPROVAL each of these may happen, and none may follow another.
    targets = [GoalStatus.EXECUTING, GoalStatus.REJECTED, GoalStatus.EXPIRED]
    assert not any(may_move(a, b) for a in targets for b in targets if a is not b)
    goals.store.create(bare_goal("g-race", GoalStatus.AWAITING_APPROVAL))

    def move(store: GoalStore, target: GoalStatus) -> GoalStatus | None:
        try:
            store.update("g-race", status=target, updated_at=LATER, failure=target.value)
        except InvalidTransition:
            return None
        return target

    moves = [functools.partial(move, goals.another(), target) for target in targets]
    winners = [status for status in race(moves) if status is not None]
    assert len(winners) == 1
    got = goals.store.require("g-race")
    assert (got.status, got.failure) == (winners[0], winners[0].value)


def test_a_malformed_plan_document_comes_back_as_malformed_plan(goals: GoalStoreBackend):
    document = malformed_plan_document()
    goals.store.create(
        bare_goal("g-bad", GoalStatus.PLANNING, plan=document, planHash=hash_plan_document(document))
    )
    got = goals.store.require("g-bad")
    assert isinstance(got.plan, MalformedPlan) and got.plan.document == document
    assert got.planHash == hash_plan_document(document)
    with pytest.raises(PlanIntegrityError):
        got.current_plan()
    assert got.plan.schema_error().error_count() >= 1


def test_a_plan_edited_in_storage_comes_back_as_malformed_plan(goals: GoalStoreBackend):
    goals.store.create(full_goal("g-edited", GoalStatus.VALIDATING))
    document = malformed_plan_document()
    goals.edit("g-edited", plan=document)
    got = goals.store.require("g-edited")
    assert isinstance(got.plan, MalformedPlan) and got.plan.document == document
    # A malformed plan is kept as it is through later updates, never silently repaired.
    goals.store.update("g-edited", updated_at=LATEST, failure="denied: plan.schema")
    again = goals.store.require("g-edited")
    assert isinstance(again.plan, MalformedPlan) and again.plan.document == document
    goals.store.update("g-edited", updated_at=LATEST, plan=again.plan)
    assert goals.store.require("g-edited").plan == again.plan


def test_a_record_read_back_is_a_goal_record(goals: GoalStoreBackend):
    goals.store.create(bare_goal("g-type"))
    assert type(goals.store.get("g-type")) is GoalRecord


def test_the_first_claim_of_a_submission_holds_and_is_never_overwritten(goals: GoalStoreBackend):
    first = goals.store.claim_submission("assistant#k1", "g-first", "hash-1")
    later = goals.store.claim_submission("assistant#k1", "g-later", "hash-2")
    other = goals.store.claim_submission("partner#k1", "g-other", "hash-1")

    assert (first.goalId, first.requestHash) == ("g-first", "hash-1")
    assert (later.goalId, later.requestHash) == ("g-first", "hash-1")
    assert other.goalId == "g-other"
    # A claim is not a goal: the goal is created under the claimed id afterwards.
    assert goals.store.get("g-first") is None


def test_racing_claims_of_one_submission_agree_on_one_goal(goals: GoalStoreBackend):
    claims = race([
        functools.partial(goals.store.claim_submission, "assistant#race", f"g-{n}", "hash") for n in range(8)
    ])  # fmt: skip
    assert len({claim.goalId for claim in claims}) == 1
