"""Staff-only approvals on the fakes: announced on the staff channel only, decided by a named staff
member on the staff route, refused on the public route whoever holds the link."""

from __future__ import annotations

import pytest

from cartpilot.approvals.desk import DeskError
from cartpilot.approvals.model import ApprovalStatus
from cartpilot.approvals.staff import check_route, decided_by, staff_base_url
from cartpilot.goals.model import GoalStatus
from cartpilot.plans.verdicts import RiskTier
from tests.fakes.merchant import FakeMerchant
from tests.unit.stages import Pending, wait_for_approval

WINE_GOAL = "running socks for me"


@pytest.fixture
def staff_pending(merchant: FakeMerchant, brand, users) -> Pending:
    """A goal whose item is in a category the brand sends to staff (alcohol), waiting for staff."""
    socks = merchant.shop.products[2]
    merchant.shop.products[2] = socks.model_copy(
        update={"variants": [socks.variants[0].model_copy(update={"category": "alcohol"})]}
    )
    waiting = wait_for_approval(merchant, brand, users, WINE_GOAL)
    verdict = waiting.goal().verdict
    assert verdict is not None and (verdict.tier, verdict.approver) == (RiskTier.APPROVAL, "staff")
    return waiting


def test_the_link_goes_to_the_staff_channel_and_the_shopper_is_only_told(staff_pending: Pending):
    (to_staff,) = staff_pending.staff_notifier.sent
    assert to_staff["kind"] == "approval_request" and to_staff["audience"] == "staff"
    assert to_staff["link"].startswith(
        f"https://api.example.com/prod/staff/approvals/{staff_pending.approval_id}?"
    )

    (to_shopper,) = staff_pending.notifier.sent
    assert to_shopper["kind"] == "approval_pending" and "awaits staff review" in to_shopper["subject"]
    assert "link" not in to_shopper and "/approvals/" not in str(to_shopper)


def test_the_public_route_refuses_a_staff_approval_and_changes_nothing(staff_pending: Pending):
    before = staff_pending.snapshot()
    with pytest.raises(DeskError) as opened:
        staff_pending.desk.open(staff_pending.approval_id, staff_pending.link)
    for decision in ("approve", "reject"):
        with pytest.raises(DeskError) as decided:
            staff_pending.desk.decide(staff_pending.approval_id, staff_pending.link, decision, None)  # type: ignore[arg-type]
        assert (decided.value.status, decided.value.code) == (403, "STAFF_ONLY")
    assert (opened.value.status, opened.value.code) == (403, "STAFF_ONLY")
    assert staff_pending.snapshot() == before and staff_pending.sfn.calls == []


def test_a_staff_member_decides_and_is_named(staff_pending: Pending):
    view = staff_pending.desk.decide(
        staff_pending.approval_id, staff_pending.link, "approve", None, staff_member="staff-1"
    )
    assert view.outcome == "approved"
    approval = staff_pending.approvals.get(staff_pending.approval_id)
    assert approval is not None and approval.decidedBy == "staff:staff-1"
    goal = staff_pending.goal()
    assert goal.approval is not None and goal.approval.decidedBy == "staff:staff-1"
    approved = [
        r for r in staff_pending.ledger.audit.records(staff_pending.goal_id) if r.event == "approval.approved"
    ]
    assert [record.actor for record in approved] == ["approver:staff:staff-1"]
    assert [kind for kind, _ in staff_pending.sfn.calls] == ["success"]


def test_a_staff_rejection_names_the_member(staff_pending: Pending):
    staff_pending.desk.decide(
        staff_pending.approval_id, staff_pending.link, "reject", None, staff_member="staff-1"
    )
    goal = staff_pending.goal()
    assert goal.approval is not None and goal.approval.status == ApprovalStatus.REJECTED.value
    assert goal.approval.decidedBy == "staff:staff-1"
    rejected = [
        r for r in staff_pending.ledger.audit.records(staff_pending.goal_id) if r.event == "approval.rejected"
    ]
    assert [record.actor for record in rejected] == ["approver:staff:staff-1"]


def test_the_staff_route_refuses_a_shopper_approval(pending: Pending):
    before = pending.snapshot()
    with pytest.raises(DeskError) as refused:
        pending.desk.decide(pending.approval_id, pending.link, "approve", None, staff_member="staff-1")
    assert (refused.value.status, refused.value.code) == (403, "NOT_A_STAFF_APPROVAL")
    assert pending.snapshot() == before and pending.goal().status is GoalStatus.AWAITING_APPROVAL


def test_a_shopper_decision_is_recorded_as_the_shopper(pending: Pending):
    pending.desk.decide(pending.approval_id, pending.link, "approve", None)
    goal = pending.goal()
    assert goal.approval is not None and goal.approval.decidedBy == pending.plan.userId


def test_route_rules_and_names(staff_pending: Pending, pending: Pending):
    staff = staff_pending.approvals.get(staff_pending.approval_id)
    shopper = pending.approvals.get(pending.approval_id)
    assert staff is not None and shopper is not None
    check_route(staff, "staff-1")
    check_route(shopper, None)
    assert decided_by(staff, "staff-1") == "staff:staff-1"
    assert decided_by(shopper, None) == shopper.approver
    assert staff_base_url("https://api.example.com/v1/") == "https://api.example.com/v1/staff"
