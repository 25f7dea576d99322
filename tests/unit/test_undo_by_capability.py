"""Undo only where the merchant offers it: a merchant with no way to cancel an order gets no undo
window, and the approval page and the receipt say so before anyone relies on one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cartpilot.approvals.page import render_approval_page
from cartpilot.execution.outcomes import send_receipt
from cartpilot.goals.model import GoalStatus
from cartpilot.goals.undo import NO_UNDO_NOTICE, UndoRefused, request_undo, undo_deadline
from cartpilot.goals.views import goal_view
from tests.unit.stages import OrderFlow, order_flow, socks_plan, wait_for_approval

PLACED = {"s3": {"checkoutId": "cs-1", "orderId": "ord-1", "status": "confirmed"}}


def completed(merchant, brand, users, undo: str) -> OrderFlow:
    """Socks ordered from a merchant whose undo is ``undo``: the order placed and the receipt sent."""
    flow = order_flow(merchant, brand, users, socks_plan(merchant, brand, users, undo=undo))  # type: ignore[arg-type]
    flow.ledger.transition(flow.goal_id, GoalStatus.EXECUTING, actor="executor", event="execution.started")
    sent = send_receipt(
        flow.goal_id, PLACED, ledger=flow.ledger, notifier=flow.notifier, brand=brand, counters=flow.counters
    )
    assert sent.orderId == "ord-1"
    return flow


def test_the_deadline_follows_the_merchants_capability(merchant, brand, users):
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    cancel = socks_plan(merchant, brand, users, undo="cancel")
    none = socks_plan(merchant, brand, users, undo="none")
    assert undo_deadline(cancel, 3600, now) == "2026-11-25T13:00:00+00:00"
    assert undo_deadline(none, 3600, now) is None


def test_without_a_way_to_cancel_no_window_opens_and_the_receipt_says_so(merchant, brand, users):
    flow = completed(merchant, brand, users, "none")

    goal = flow.goal()
    assert (goal.status, goal.undoUntil) == (GoalStatus.COMPLETED, None)
    assert goal_view(goal).undoUntil is None
    (receipt,) = flow.notifier.of_kind("receipt")
    assert receipt["undoUntil"] is None
    assert receipt["undo"] == "no undo: this merchant offers no way to cancel orders"


def test_where_the_merchant_cancels_the_window_opens_as_before(merchant, brand, users):
    flow = completed(merchant, brand, users, "cancel")

    goal = flow.goal()
    assert goal.status is GoalStatus.COMPLETED and goal.undoUntil is not None
    (receipt,) = flow.notifier.of_kind("receipt")
    assert receipt["undoUntil"] == goal.undoUntil and "undo" not in receipt


def test_an_undo_request_is_refused_with_its_reason_and_changes_nothing(merchant, brand, users):
    flow = completed(merchant, brand, users, "none")
    before, events = flow.goal(), flow.events()

    for _ in range(2):
        with pytest.raises(UndoRefused) as refused:
            request_undo(flow.goal_id, ledger=flow.ledger, workflow=flow.workflow, actor="client")
        assert (refused.value.status, refused.value.code) == (409, "UNDO_UNSUPPORTED")
        assert refused.value.message.startswith(NO_UNDO_NOTICE)

    assert flow.goal() == before and flow.events() == events
    assert flow.workflow.calls == [] and flow.ledger.store.undo_token(flow.goal_id) is None


def test_a_retried_receipt_keeps_the_goal_without_a_window_and_tells_the_shopper_once(merchant, brand, users):
    flow = completed(merchant, brand, users, "none")
    goal, events = flow.goal(), flow.events()

    again = send_receipt(
        flow.goal_id, PLACED, ledger=flow.ledger, notifier=flow.notifier, brand=brand, counters=flow.counters
    )

    assert again.model_dump(mode="json") == {"orderId": "ord-1", "undoUntil": None}
    assert flow.goal() == goal and flow.events() == events
    assert len(flow.notifier.of_kind("receipt")) == 1


# --- the approval page ----------------------------------------------------------------------------------


def page_for(merchant, brand, users, **plan: object) -> str:
    pending = wait_for_approval(merchant, brand, users, "", plan=socks_plan(merchant, brand, users, **plan))  # type: ignore[arg-type]
    view = pending.desk.open(pending.approval_id, pending.link)
    return render_approval_page(view, brand, action_url="/approvals/" + pending.approval_id)


def test_the_approver_reads_that_there_is_no_undo_before_approving(merchant, brand, users):
    # A deadline no option promises makes even socks ask the shopper first.
    html = page_for(merchant, brand, users, undo="none", deliver_by=datetime(2026, 12, 10).date(),
                    promised_delivery=False)  # fmt: skip
    assert "No undo: this merchant offers no way to cancel orders." in html
    assert "undo it for" not in html and "refunded in full" not in html


def test_the_approver_reads_the_undo_window_where_the_merchant_cancels(merchant, brand, users):
    html = page_for(merchant, brand, users, undo="cancel", deliver_by=datetime(2026, 12, 10).date(),
                    promised_delivery=False)  # fmt: skip
    assert "undo it for 3 days" in html and "No undo" not in html
