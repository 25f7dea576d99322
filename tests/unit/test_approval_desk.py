"""The approval desk on in-memory stores, key ring and workflow (the ports' fakes)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from cartpilot.approvals.desk import DeskError, DropRefused, LinkParams, reduce_plan
from cartpilot.approvals.model import ApprovalStatus, confirmation_phrase, phrase_matches
from cartpilot.audit.chain import verify_chain
from cartpilot.goals.model import GoalStatus
from cartpilot.plans.model import Plan
from tests.unit.stages import NOON, Pending


def test_opening_the_link_shows_the_plan_and_changes_nothing(pending: Pending):
    before = pending.snapshot()
    for _ in range(3):
        view = pending.desk.open(pending.approval_id, pending.link)
    assert view.plan == pending.plan and view.phrase is None
    (option,) = view.options
    assert option.step_id == "s2" and [item.title for item in option.items] == ["Gift Wrap"]
    assert option.total_without == pending.plan.summary.total - option.cost
    assert pending.snapshot() == before and pending.sfn.calls == []


def test_approving_resumes_the_flow_with_the_plan_shown(pending: Pending):
    view = pending.desk.decide(pending.approval_id, pending.link, "approve", None)
    assert view.outcome == "approved"
    goal = pending.goal()
    assert goal.planHash == goal.approvedPlanHash == pending.plan.plan_hash()
    assert pending.sfn.calls == [
        ("success", {"taskToken": "task-token-1", "output": {
            "planId": pending.plan.planId, "planHash": pending.plan.plan_hash(),
            "steps": pending.plan.execution_steps(), "next": {"id": "s1", "action": "checkout.create"}}}),
    ]  # fmt: skip


def test_leaving_out_gift_wrap_approves_a_reduced_revalidated_plan(pending: Pending):
    original = pending.plan
    view = pending.desk.decide(pending.approval_id, pending.link, "approve", None, drop=["s2"])

    goal = pending.goal()
    reduced = goal.current_plan()
    assert view.plan == reduced and view.outcome == "approved"
    assert reduced.planId != original.planId and reduced.plan_hash() != original.plan_hash()
    assert [item.category for item in reduced.summary.items] == ["running-shoes"]
    assert reduced.summary.total == original.summary.total - original.step("s2").estimatedCost
    assert reduced.step("s4").args.amount == reduced.summary.total  # type: ignore[union-attr]
    assert goal.planHash == goal.approvedPlanHash == reduced.plan_hash()
    assert goal.verdict is not None and goal.verdict.planHash == reduced.plan_hash()
    assert goal.approval is not None and goal.approval.model_dump(mode="json") == {"approvalId": pending.approval_id, "status": "APPROVED", "tier": "APPROVAL",
                             "dropped": ["s2"], "decidedBy": "user-1"}  # fmt: skip

    ((kind, call),) = pending.sfn.calls
    assert kind == "success"
    assert call["output"] == {
        "planId": reduced.planId,
        "planHash": reduced.plan_hash(),
        "steps": [{"id": "s1", "action": "checkout.create"}, {"id": "s3", "action": "fulfillment.select"},
                  {"id": "s4", "action": "payment.complete"}],
        "next": {"id": "s1", "action": "checkout.create"},
    }  # fmt: skip
    approval = pending.approvals.get(pending.approval_id)
    assert approval is not None and approval.approvedPlanHash == reduced.plan_hash()
    assert [step.stepId for step in approval.dropped] == ["s2"]


def test_the_audit_proves_which_plan_was_shown_and_which_was_approved(pending: Pending):
    pending.desk.decide(pending.approval_id, pending.link, "approve", None, drop=["s2"])
    goal = pending.goal()
    records = pending.ledger.audit.records(pending.goal_id)
    # The approval re-checked the daily limits at the reduced total before anything else was recorded.
    assert [r.event for r in records][-4:] == [
        "approval.requested", "limits.reserved", "plan.reduced", "approval.approved",
    ]  # fmt: skip

    result = verify_chain(records, expected_head=goal.auditHead, verifier=pending.signer.verifier())
    assert result.valid, result.problems
    assert [(s.event, s.planHash, s.result) for s in result.signatures] == [
        ("approval.requested", pending.plan.plan_hash(), "verified"),
        ("plan.reduced", goal.planHash, "verified"),
        ("approval.approved", goal.planHash, "verified"),
    ]
    assert records[-1].detail["dropped"] == ["s2"] and records[-1].actor == "approver:user-1"


def test_a_required_step_cannot_be_left_out(pending: Pending):
    before = pending.snapshot()
    for drop in (["s1"], ["s4"], ["s9"]):
        with pytest.raises(DeskError) as refused:
            pending.desk.decide(pending.approval_id, pending.link, "approve", None, drop=drop)
        assert (refused.value.status, refused.value.code) == (422, "DROP_REFUSED")
    assert pending.snapshot() == before and pending.sfn.calls == []


def test_a_reduced_plan_the_policies_deny_is_refused_and_changes_nothing(pending: Pending):
    # The snapshot the plan was validated with now says the shoes cost far more: without
    # the gift-wrap the plan no longer passes, so the approver must not be able to run it.
    goal = pending.goal()
    assert goal.priceCheck is not None
    snapshot = goal.priceCheck.model_dump(mode="json")
    for item in snapshot["items"]:
        if item["category"] == "running-shoes":
            item["price"]["amount_minor"] *= 2
    pending.ledger.store.update(pending.goal_id, updated_at=NOON.isoformat(), priceCheck=snapshot)
    before = pending.snapshot()

    with pytest.raises(DeskError) as refused:
        pending.desk.decide(pending.approval_id, pending.link, "approve", None, drop=["s2"])
    assert (refused.value.status, refused.value.code) == (422, "DROP_DENIED")
    assert "breaks the brand's policies" in refused.value.message
    assert pending.snapshot() == before and pending.sfn.calls == []


def test_strong_approval_needs_the_phrase_for_the_total_charged(strong: Pending):
    full = strong.plan.summary.total
    reduced = full - strong.plan.step("s2").estimatedCost
    before = strong.snapshot()
    attempts = [
        (None, []),
        ("yes", []),
        (confirmation_phrase(reduced), []),
        (confirmation_phrase(full), ["s2"]),
    ]
    for phrase, drop in attempts:
        with pytest.raises(DeskError) as refused:
            strong.desk.decide(strong.approval_id, strong.link, "approve", phrase, drop=drop)
        assert refused.value.code == "PHRASE_MISMATCH"
        expected = confirmation_phrase(reduced if drop else full)
        assert refused.value.message.endswith(expected)
    assert strong.snapshot() == before

    typed = "  confirm buy   " + reduced.format().lower()
    # Over 2,000.00 CNY either way: the shopper's one-time code as well (see test_approval_desk_step_up).
    strong.desk.send_code(strong.approval_id, strong.link)
    view = strong.desk.decide(
        strong.approval_id, strong.link, "approve", typed, drop=["s2"], otp=strong.phone.last_code()
    )
    assert view.outcome == "approved" and view.plan.summary.total == reduced


def test_the_phrase_comparison_is_strict_on_every_digit():
    assert phrase_matches("CONFIRM BUY 2097.00 CNY", "confirm  buy 2097.00 cny ")
    assert not phrase_matches("CONFIRM BUY 2097.00 CNY", "CONFIRM BUY 2097.01 CNY")
    assert not phrase_matches("CONFIRM BUY 2097.00 CNY", None)


def test_reject_fails_the_task_and_a_second_post_shows_the_recorded_decision(pending: Pending):
    view = pending.desk.decide(pending.approval_id, pending.link, "reject", None)
    assert view.outcome == "rejected"
    assert pending.sfn.calls == [
        (
            "failure",
            {"taskToken": "task-token-1", "error": "ApprovalRejected", "cause": "The approver said no."},
        )
    ]
    after = pending.snapshot()

    again = pending.desk.decide(pending.approval_id, pending.link, "approve", None, drop=["s2"])
    assert again.outcome == "already-decided" and again.approval.status is ApprovalStatus.REJECTED
    assert pending.snapshot() == after and len(pending.sfn.calls) == 1


@pytest.mark.parametrize(
    "choices",
    [
        [("approve", []), ("reject", [])] * 4,
        [("approve", ["s2"]), ("approve", []), ("reject", []), ("approve", ["s2"])] * 2,
    ],
    ids=["approve-or-reject", "with-and-without-gift-wrap"],
)
def test_racing_decisions_make_exactly_one(pending: Pending, choices: list[tuple[str, list[str]]]):
    outcomes: list[str | None] = []
    errors: list[Exception] = []
    barrier = threading.Barrier(len(choices))

    def decide(decision: Any, drop: list[str]) -> None:
        barrier.wait(timeout=10)
        try:
            outcomes.append(
                pending.desk.decide(pending.approval_id, pending.link, decision, None, drop).outcome
            )
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=decide, args=choice) for choice in choices]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(outcomes) == len(choices) and outcomes.count("already-decided") == len(choices) - 1
    assert len(pending.sfn.calls) == 1
    decided = [e for e in pending.audit_events() if e in ("approval.approved", "approval.rejected")]
    assert len(decided) == 1


def test_the_link_lives_as_long_as_the_brand_says_and_then_is_gone(pending: Pending, brand):
    approval = pending.approvals.get(pending.approval_id)
    assert approval is not None
    created = datetime.fromisoformat(approval.createdAt.replace("Z", "+00:00"))
    assert int(pending.link.exp) == approval.expiresAt
    assert abs(approval.expiresAt - (created.timestamp() + brand.approvalLinkTtlSeconds)) <= 1

    before = pending.snapshot()
    late = pending.desk_at(datetime.fromtimestamp(approval.expiresAt, UTC))
    for attempt in (lambda: late.open(pending.approval_id, pending.link),
                    lambda: late.decide(pending.approval_id, pending.link, "approve", None)):  # fmt: skip
        with pytest.raises(DeskError) as gone:
            attempt()
        assert (gone.value.status, gone.value.code) == (410, "LINK_EXPIRED")
    assert pending.snapshot() == before and pending.sfn.calls == []


def test_a_link_of_another_approval_or_a_forged_one_is_refused(pending: Pending):
    before = pending.snapshot()
    forged = LinkParams(exp=pending.link.exp, kid=pending.link.kid, sig=pending.link.sig[::-1])
    stretched = LinkParams(exp=str(int(pending.link.exp) + 60), kid=pending.link.kid, sig=pending.link.sig)
    for approval_id, link in (("a-unknown", pending.link), (pending.approval_id, forged),
                              (pending.approval_id, stretched)):  # fmt: skip
        with pytest.raises(DeskError) as refused:
            pending.desk.decide(approval_id, link, "approve", None)
        assert (refused.value.status, refused.value.code) == (403, "LINK_INVALID")
    assert pending.snapshot() == before


def test_approving_after_the_flow_stopped_waiting_is_too_late(pending: Pending):
    pending.sfn.stop_waiting("task-token-1")
    with pytest.raises(DeskError) as late:
        pending.desk.decide(pending.approval_id, pending.link, "approve", None)
    assert (late.value.status, late.value.code) == (410, "APPROVAL_EXPIRED")
    approval = pending.approvals.get(pending.approval_id)
    assert approval is not None and approval.status is ApprovalStatus.EXPIRED
    assert pending.audit_events()[-1] == "approval.too-late"
    assert pending.goal().approval.status == "EXPIRED"  # type: ignore[union-attr]

    with pytest.raises(DeskError) as still:
        pending.desk.open(pending.approval_id, pending.link)
    assert still.value.status == 410


def test_a_goal_that_stopped_waiting_refuses_before_recording_anything(pending: Pending):
    pending.ledger.transition(pending.goal_id, GoalStatus.EXPIRED, actor="flow", event="goal.expired")
    before = pending.snapshot()
    with pytest.raises(DeskError) as late:
        pending.desk.decide(pending.approval_id, pending.link, "approve", None)
    assert late.value.status == 410
    assert pending.snapshot() == before and pending.sfn.calls == []


def test_a_plan_changed_behind_the_link_cannot_be_shown_or_decided(pending: Pending):
    tampered = pending.plan.model_dump(mode="json")
    tampered["summary"]["items"][0]["quantity"] = 2
    pending.ledger.store.update(pending.goal_id, updated_at=NOON.isoformat(), plan=tampered)
    before = pending.snapshot()
    for attempt in (lambda: pending.desk.open(pending.approval_id, pending.link),
                    lambda: pending.desk.decide(pending.approval_id, pending.link, "approve", None)):  # fmt: skip
        with pytest.raises(DeskError) as refused:
            attempt()
        assert (refused.value.status, refused.value.code) == (409, "PLAN_CHANGED")
    assert pending.snapshot() == before and pending.sfn.calls == []


def test_reduce_plan_recomputes_every_amount(seed_plan: Plan):
    reduced = reduce_plan(seed_plan, ["s2"], plan_id="p-reduced-1", created_at=seed_plan.createdAt)
    wrap = seed_plan.step("s2").estimatedCost
    assert [step.id for step in reduced.steps] == ["s1", "s3", "s4"]
    assert reduced.summary.subtotal == seed_plan.summary.subtotal - wrap
    assert reduced.summary.total == seed_plan.summary.total - wrap
    assert reduced.step("s4").estimatedCost == reduced.summary.total
    assert reduced.summary.recipient == seed_plan.summary.recipient
    with pytest.raises(DropRefused, match="not optional"):
        reduce_plan(seed_plan, ["s3"], plan_id="p-reduced-2", created_at=seed_plan.createdAt)
