"""The price-check stage, and what a client sees of a goal and of its audit trail."""

from __future__ import annotations

import pytest

from cartpilot.audit.chain import AuditRecord, hash_record_body
from cartpilot.audit.public_keys import PlanSignatureVerifier
from cartpilot.audit.trail import AuditTrail
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.model import GoalStatus, MalformedPlan
from cartpilot.goals.ports import GoalNotFound
from cartpilot.goals.undo import open_undo_window
from cartpilot.goals.views import GoalView, audit_view, goal_view
from cartpilot.plans.pricing import snapshot_current_prices
from tests.fakes import InMemoryAuditRecords, InMemoryGoalStore
from tests.fakes.merchant import cny
from tests.fakes.plan_signing import LocalPlanSigner
from tests.unit.stages import OrderFlow

UNDO_TOKEN = "undo-task-token-secret"


@pytest.fixture
def audit_records() -> InMemoryAuditRecords:
    return InMemoryAuditRecords()


@pytest.fixture
def waiting(merchant, brand, users, seed_plan, audit_records) -> OrderFlow:
    """The seed goal waiting for approval, on audit records the test can rewrite behind the trail's back."""
    flow = OrderFlow(
        brand=brand, users=users, merchant=merchant, plan=seed_plan,
        ledger=GoalLedger(InMemoryGoalStore(), AuditTrail(audit_records)),
    )  # fmt: skip
    merchant.shop.calls.clear()
    return flow.received().planned().validated("pending")


def snapshot(flow: OrderFlow, plan_id: str | None = None):
    return snapshot_current_prices(
        flow.goal_id,
        plan_id or flow.plan.planId,
        store=flow.ledger.store,
        merchants=lambda _id: flow.merchant,
    )


# --- the price check ------------------------------------------------------------------------------------


def test_the_price_check_reads_what_the_merchant_charges_now_for_each_item_once(flow: OrderFlow):
    flow.shop.reprice("shoe-a-42", cny("689.00"))
    before = (flow.goal(), flow.events())

    check = snapshot(flow)

    assert check.planId == flow.plan.planId and check.checkedAt.endswith("Z")
    assert [(item.id, item.price) for item in check.items] == [
        ("gift-wrap-standard", cny("20.00")),
        ("shoe-a-42", cny("689.00")),
    ]
    lookups = [call for call in flow.shop.calls if call.operation == "catalog.lookup"]
    assert [call.args for call in lookups] == [
        {"itemIds": ["gift-wrap-standard", "shoe-a-42"], "currency": "CNY"}
    ]
    # The catalog function may read the goal but writes nothing: the snapshot travels in the flow.
    assert (flow.goal(), flow.events()) == before
    assert flow.shop.writes() == []


def test_an_item_the_merchant_no_longer_sells_is_missing_from_the_snapshot(flow: OrderFlow):
    flow.shop.products = [product for product in flow.shop.products if product.id != "gift-wrap"]
    assert [item.id for item in snapshot(flow).items] == ["shoe-a-42"]


def test_the_price_check_is_only_for_the_goals_current_plan(flow: OrderFlow):
    with pytest.raises(LookupError, match="has no plan p-some-older-plan"):
        snapshot(flow, "p-some-older-plan")
    with pytest.raises(GoalNotFound):
        snapshot_current_prices(
            "g-nobody", flow.plan.planId, store=flow.ledger.store, merchants=lambda _id: flow.merchant
        )


def test_a_goal_without_a_plan_or_with_a_malformed_one_has_nothing_to_price(flow: OrderFlow):
    flow.ledger.store.overwrite(flow.goal_id, plan=None)
    with pytest.raises(LookupError, match="has no plan"):
        snapshot(flow)

    document = flow.plan.model_dump(mode="json")
    document["summary"]["items"] = []
    flow.ledger.store.overwrite(flow.goal_id, plan=document)
    assert isinstance(flow.goal().plan, MalformedPlan)
    with pytest.raises(LookupError, match="has no plan"):
        snapshot(flow)
    assert flow.shop.calls == []


# --- the goal as a client sees it --------------------------------------------------------------------------


def test_the_goal_view_never_shows_the_undo_token_or_the_audit_head(flow: OrderFlow):
    flow.completed()
    flow.workflow.wait_for(UNDO_TOKEN)
    open_undo_window(flow.goal_id, UNDO_TOKEN, ledger=flow.ledger)
    goal = flow.goal()
    assert goal.auditHead is not None and goal.auditSeq is not None

    view = goal_view(goal)
    shown = view.model_dump(mode="json")

    assert set(shown) == set(GoalView.model_fields) == {
        "goalId", "userId", "status", "goal", "plan", "planHash", "verdict", "approval", "steps",
        "receipt", "undoUntil", "continueUrl", "failure", "reason", "createdAt", "updatedAt",
        "returnId", "refund", "tracking", "scheduleId", "planSummary", "plannedOnly",
    }  # fmt: skip
    text = view.model_dump_json()
    for hidden in (UNDO_TOKEN, goal.auditHead, "undoToken", "auditHead", "auditSeq", "requestHash",
                   "executionArn", "undoRequestedAt", "returnSettledAt"):  # fmt: skip
        assert hidden not in text
    assert (view.status, view.receipt, view.undoUntil) == (GoalStatus.COMPLETED, goal.receipt, goal.undoUntil)
    assert [step.stepId for step in view.steps] == ["s1", "s2", "s3", "s4"]


def test_a_malformed_plan_is_shown_as_it_was_stored(flow: OrderFlow):
    document = flow.plan.model_dump(mode="json")
    document["steps"][-1]["action"] = "payment.refund"
    flow.ledger.store.overwrite(flow.goal_id, plan=document)
    shown = goal_view(flow.goal()).model_dump(mode="json")
    assert shown["plan"] == document


# --- the audit as a client sees it --------------------------------------------------------------------------


def test_an_untouched_chain_verifies_with_its_plan_signatures(waiting: OrderFlow):
    view = audit_view(waiting.goal(), waiting.ledger, waiting.signer.verifier())

    assert view.goalId == waiting.goal_id
    assert view.records == waiting.records()
    assert view.verification.valid and view.verification.problems == []
    assert view.verification.count == len(waiting.records()) == 3
    assert [(s.event, s.result) for s in view.verification.signatures] == [("approval.requested", "verified")]


def test_without_the_key_ring_signatures_are_listed_but_not_checked(waiting: OrderFlow):
    view = audit_view(waiting.goal(), waiting.ledger)
    assert view.verification.valid
    assert [s.result for s in view.verification.signatures] == ["not-checked"]


def test_a_record_altered_in_storage_is_reported(waiting: OrderFlow, audit_records: InMemoryAuditRecords):
    record = waiting.records()[0]
    audit_records.replace(record.model_copy(update={"detail": {"note": "nothing happened here"}}))

    view = audit_view(waiting.goal(), waiting.ledger)

    assert not view.verification.valid
    assert view.verification.problems == ["record 1 was altered after it was written"]
    assert view.records[0].detail == {"note": "nothing happened here"}  # shown as stored, flagged


def test_a_record_rewritten_with_a_fresh_hash_breaks_the_link_to_the_next(
    waiting: OrderFlow, audit_records: InMemoryAuditRecords
):
    original = waiting.records()[1]
    body = {**original.body(), "actor": "planner:someone-else"}
    audit_records.replace(AuditRecord(**body, hash=hash_record_body(body)))

    problems = audit_view(waiting.goal(), waiting.ledger).verification.problems
    assert problems == ["record 3 does not link to the record before it"]


def test_records_removed_from_the_end_are_reported(waiting: OrderFlow, audit_records: InMemoryAuditRecords):
    last = waiting.records()[-1]
    audit_records.delete(waiting.goal_id, last.seq)
    problems = audit_view(waiting.goal(), waiting.ledger).verification.problems
    assert problems == ["the chain head recorded on the goal is missing: records were removed"]


def test_a_record_removed_from_the_middle_is_reported(
    waiting: OrderFlow, audit_records: InMemoryAuditRecords
):
    audit_records.delete(waiting.goal_id, 2)
    problems = audit_view(waiting.goal(), waiting.ledger).verification.problems
    assert "record at position 2 has seq 3: a record is missing or moved" in problems
    assert "record 3 does not link to the record before it" in problems


def test_a_signature_the_backend_never_made_is_reported(waiting: OrderFlow):
    impostor = LocalPlanSigner()
    impostor.sign(b"publishes its key")
    # The same key id, published with another key.
    forged = PlanSignatureVerifier({waiting.signer.kid: impostor.registry.keys[impostor.kid]})
    view = audit_view(waiting.goal(), waiting.ledger, forged)
    assert not view.verification.valid
    assert [s.result for s in view.verification.signatures] == ["invalid"]
    assert any("does not match what the record shows" in p for p in view.verification.problems)


def test_a_signature_by_an_unpublished_key_is_a_failure(waiting: OrderFlow):
    view = audit_view(waiting.goal(), waiting.ledger, LocalPlanSigner().verifier())
    assert [s.result for s in view.verification.signatures] == ["unknown-key"]
    assert not view.verification.valid


def test_records_appended_after_the_goal_was_read_still_verify(waiting: OrderFlow):
    goal = waiting.goal()
    waiting.ledger.note(waiting.goal_id, actor="approval", event="approval.reminder-sent")
    assert audit_view(goal, waiting.ledger).verification.valid
