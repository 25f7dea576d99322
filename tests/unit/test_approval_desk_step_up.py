"""The approval desk with step-up: a code as well as the approval, five attempts, then the lock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cartpilot.approvals.desk import DeskError
from cartpilot.approvals.model import STEP_UP_LOCK, ApprovalStatus, confirmation_phrase
from cartpilot.approvals.page import render_approval_page
from cartpilot.approvals.step_up import CODE_TTL_SECONDS, MAX_ATTEMPTS
from cartpilot.execution.outcomes import record_outcome
from cartpilot.goals.model import GoalStatus
from cartpilot.goals.reasons import ReasonCode
from tests.unit.stages import NOON, Pending


def phrase(pending: Pending) -> str:
    return confirmation_phrase(pending.plan.summary.total)


def approve(pending: Pending, otp: str | None, desk=None):
    return (desk or pending.desk).decide(
        pending.approval_id, pending.link, "approve", phrase(pending), otp=otp
    )


def refused(pending: Pending, otp: str | None, desk=None) -> DeskError:
    with pytest.raises(DeskError) as refusal:
        approve(pending, otp, desk)
    return refusal.value


def unchanged(pending: Pending) -> tuple[object, ...]:
    """The snapshot without the audit, which hears of every refused code."""
    return pending.snapshot()[:-1]


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_the_verdict_and_the_approval_say_a_code_is_needed_and_the_seed_goal_needs_none(strong, pending):
    assert strong.goal().verdict.stepUp and strong.approvals.get(strong.approval_id).stepUp
    request = strong.ledger.audit.records(strong.goal_id)[-1]
    assert request.event == "approval.requested" and request.detail["stepUp"] is True
    assert strong.notifier.of_kind("approval_request")[0]["stepUp"] is True
    # 519.00 CNY to the friend in Beijing, from a shopper at home in Shanghai.
    assert not pending.goal().verdict.stepUp and not pending.approvals.get(pending.approval_id).stepUp
    view = pending.desk.decide(pending.approval_id, pending.link, "approve", None)
    assert view.outcome == "approved"


def test_the_page_asks_for_the_code_and_offers_to_send_one(strong, brand):
    html = render_approval_page(strong.desk.open(strong.approval_id, strong.link), brand, action_url="x")
    assert 'name="otp"' in html and 'value="send-code"' in html and "5 attempts left" in html


def test_approving_without_the_code_changes_nothing_but_the_audit(strong):
    before = unchanged(strong)
    refusal = refused(strong, None)
    assert (refusal.status, refusal.code) == (422, "CODE_REQUIRED")
    assert unchanged(strong) == before and strong.sfn.calls == []
    record = strong.ledger.audit.records(strong.goal_id)[-1]
    assert record.event == "approval.code-refused" and record.detail["reason"] == "missing"


def test_the_code_sent_to_the_phone_approves_once(strong):
    strong.desk.send_code(strong.approval_id, strong.link)
    number, text = strong.phone.sent[0]
    assert number == "+8613800138000" and strong.goal_id in text
    code = strong.phone.last_code()
    audit = [r for r in strong.ledger.audit.records(strong.goal_id) if r.event == "approval.code-sent"]
    assert audit and code not in audit[0].model_dump_json() and number not in audit[0].model_dump_json()
    view = approve(strong, code)
    assert view.outcome == "approved" and strong.sfn.calls[0][0] == "success"
    assert "approval.code-accepted" in strong.audit_events()


def test_a_wrong_code_changes_nothing_and_says_how_many_attempts_are_left(strong):
    strong.desk.send_code(strong.approval_id, strong.link)
    before = unchanged(strong)
    refusal = refused(strong, wrong(strong.phone.last_code()))
    assert (refusal.status, refusal.code) == (422, "CODE_INVALID") and "4 attempts left" in refusal.message
    assert unchanged(strong) == before and strong.sfn.calls == []
    assert strong.phone.last_code() not in str(
        [r.detail for r in strong.ledger.audit.records(strong.goal_id)]
    )


def test_an_expired_code_is_refused(strong):
    strong.desk.send_code(strong.approval_id, strong.link)
    later = strong.desk_at(NOON + timedelta(seconds=CODE_TTL_SECONDS))
    refusal = refused(strong, strong.phone.last_code(), desk=later)
    assert refusal.code == "CODE_INVALID"
    assert strong.ledger.audit.records(strong.goal_id)[-1].detail["reason"] == "expired"


def test_five_wrong_codes_lock_the_approval_and_the_goal_ends_with_its_reason(strong, brand):
    strong.desk.send_code(strong.approval_id, strong.link)
    code = strong.phone.last_code()
    for _ in range(MAX_ATTEMPTS - 1):
        assert refused(strong, wrong(code)).code == "CODE_INVALID"
    lock = refused(strong, wrong(code))
    assert (lock.status, lock.code) == (423, "APPROVAL_LOCKED")
    approval = strong.approvals.get(strong.approval_id)
    assert approval.status is ApprovalStatus.REJECTED and approval.decidedBy == STEP_UP_LOCK
    assert strong.sfn.calls[-1][1]["error"] == "ApprovalRejected"
    assert "approval.locked" in strong.audit_events()

    # The right code afterwards changes nothing.
    calls, before = list(strong.sfn.calls), strong.snapshot()
    view = approve(strong, code)
    assert view.outcome == "already-decided" and strong.sfn.calls == calls and strong.snapshot() == before
    html = render_approval_page(view, brand, action_url="x")
    assert "locked after too many wrong codes" in html

    # The flow ends the goal and tells the shopper why.
    record_outcome(
        strong.goal_id, GoalStatus.REJECTED, error={"Error": "ApprovalRejected"},
        ledger=strong.ledger, notifier=strong.notifier,
    )  # fmt: skip
    goal = strong.goal()
    assert goal.status is GoalStatus.REJECTED and goal.reasonCode == ReasonCode.VERIFICATION_LOCKED.value
    assert strong.notifier.of_kind("outcome")[-1]["reasonCode"] == "VERIFICATION_LOCKED"


def test_rejecting_needs_no_code(strong):
    view = strong.desk.decide(strong.approval_id, strong.link, "reject", None)
    assert view.outcome == "rejected" and strong.phone.sent == []


def test_a_second_code_request_within_half_a_minute_is_refused(strong):
    strong.desk.send_code(strong.approval_id, strong.link)
    with pytest.raises(DeskError) as too_soon:
        strong.desk.send_code(strong.approval_id, strong.link)
    assert (too_soon.value.status, too_soon.value.code) == (429, "CODE_JUST_SENT")
    assert len(strong.phone.sent) == 1


def test_an_approval_without_step_up_sends_no_code(pending):
    with pytest.raises(DeskError) as refusal:
        pending.desk.send_code(pending.approval_id, pending.link)
    assert refusal.value.code == "NO_CODE_NEEDED" and pending.phone.sent == []
