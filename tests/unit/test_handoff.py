"""A checkout the merchant hands to the shopper (``requires_escalation``): the goal ends HANDED_OFF
with the merchant's continue URL, the shopper is told where to finish, and nothing is undone."""

from __future__ import annotations

import pytest

from cartpilot.commerce.errors import MerchantEscalation
from cartpilot.goals.handoff import HandOffNotRecorded, UnusableContinueUrl, announce_hand_off
from cartpilot.goals.lifecycle import FINAL_STATUSES, InvalidTransition, may_move
from cartpilot.goals.model import GoalStatus
from cartpilot.goals.reasons import REASON_MESSAGES, ReasonCode
from cartpilot.goals.undo import UndoRefused, request_undo
from cartpilot.goals.views import goal_view
from tests.unit.stages import OrderFlow, order_flow, socks_plan

CONTINUE_URL = "https://shop.example/checkout-sessions/cs-7?resume=tok_91ab"
MERCHANT_WORDS = "Please confirm your identity to finish this purchase"


@pytest.fixture
def running(merchant, brand, users) -> OrderFlow:
    """Approved socks whose first step has started: the goal is EXECUTING."""
    flow = order_flow(merchant, brand, users, socks_plan(merchant, brand, users))
    flow.ledger.transition(flow.goal_id, GoalStatus.EXECUTING, actor="executor", event="execution.started")
    return flow


def hand_off(flow: OrderFlow, url: str = CONTINUE_URL, reason: str = MERCHANT_WORDS) -> None:
    flow.ledger.hand_off(flow.goal_id, url, reason)


def test_a_hand_off_ends_the_goal_with_the_url_the_shopper_continues_at(running: OrderFlow):
    hand_off(running)

    goal = running.goal()
    assert (goal.status, goal.continueUrl, goal.failure, goal.reasonCode) == (
        GoalStatus.HANDED_OFF,
        CONTINUE_URL,
        REASON_MESSAGES[ReasonCode.FINISH_AT_MERCHANT],
        ReasonCode.FINISH_AT_MERCHANT,
    )
    view = goal_view(goal).model_dump(mode="json")
    assert (view["status"], view["continueUrl"], view["undoUntil"]) == ("HANDED_OFF", CONTINUE_URL, None)
    record = running.last("goal.handed-off")
    assert (record.actor, record.status, record.planHash) == (
        "executor",
        "HANDED_OFF",
        running.plan.plan_hash(),
    )
    # The audit keeps the merchant's origin: a permalink's path and query may carry the checkout.
    assert record.detail == {"reason": MERCHANT_WORDS, "merchant": "https://shop.example"}
    assert "tok_91ab" not in str([r.model_dump() for r in running.records()])


def test_handing_off_again_records_nothing_new(running: OrderFlow):
    hand_off(running)
    events = running.events()
    assert running.ledger.hand_off(running.goal_id, CONTINUE_URL, MERCHANT_WORDS) is None
    assert running.events() == events


def test_the_merchants_words_are_kept_without_the_numbers_a_shopper_typed(running: OrderFlow):
    hand_off(running, reason="Call us on +86 138 0013 8000 to confirm")
    assert running.last("goal.handed-off").detail["reason"] == "Call us on ***** to confirm"
    assert "138" not in str(running.last("goal.handed-off").detail)
    assert running.goal().failure == REASON_MESSAGES[ReasonCode.FINISH_AT_MERCHANT]


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(document.cookie)",
        "/checkout-sessions/cs-7",
        "http://shop.example/checkout-sessions/cs-7",
        "https://user:secret@shop.example/checkout",
        "ftp://shop.example/checkout",
        "https:///no-host",
        "https://shop.example/" + "a" * 2100,
    ],
)
def test_a_continue_url_no_shopper_should_follow_is_refused_and_changes_nothing(running: OrderFlow, url):
    before, events = running.goal(), running.events()
    with pytest.raises(UnusableContinueUrl):
        hand_off(running, url=url)
    assert running.goal() == before and running.events() == events


def test_a_sandbox_merchant_on_loopback_may_hand_off_over_plain_http(running: OrderFlow):
    hand_off(running, url="http://127.0.0.1:8081/checkout-sessions/cs-7")
    assert running.goal().continueUrl == "http://127.0.0.1:8081/checkout-sessions/cs-7"


def test_only_a_running_checkout_is_handed_off(merchant, brand, users):
    waiting = order_flow(merchant, brand, users, socks_plan(merchant, brand, users))  # approved, not started
    with pytest.raises(InvalidTransition):
        hand_off(waiting)
    assert waiting.goal().status is GoalStatus.AWAITING_APPROVAL and waiting.goal().continueUrl is None


def test_handed_off_is_final():
    assert GoalStatus.HANDED_OFF in FINAL_STATUSES
    assert [status for status in GoalStatus if may_move(GoalStatus.HANDED_OFF, status)] == [
        GoalStatus.HANDED_OFF
    ]
    assert [status for status in GoalStatus if may_move(status, GoalStatus.HANDED_OFF)] == [
        GoalStatus.EXECUTING,
        GoalStatus.HANDED_OFF,
    ]


def test_the_shopper_is_told_where_to_finish(running: OrderFlow):
    hand_off(running)

    answer = announce_hand_off(running.goal_id, ledger=running.ledger, notifier=running.notifier)

    assert answer.model_dump(mode="json") == {"status": "HANDED_OFF", "continueUrl": CONTINUE_URL}
    (message,) = running.notifier.of_kind("handed_off")
    assert message == {
        "kind": "handed_off",
        "goalId": running.goal_id,
        "userId": "user-1",
        "status": "HANDED_OFF",
        "continueUrl": CONTINUE_URL,
        "reason": REASON_MESSAGES[ReasonCode.FINISH_AT_MERCHANT],
        "reasonCode": "FINISH_AT_MERCHANT",
        "subject": "Finish your order on the merchant's site",
    }
    record = running.last("handoff.announced")
    assert (record.actor, record.status, record.detail) == (
        "notify",
        "HANDED_OFF",
        {"merchant": "https://shop.example"},
    )


def test_an_escalation_nobody_recorded_is_not_announced(running: OrderFlow):
    events = running.events()
    with pytest.raises(HandOffNotRecorded, match="nothing was handed over"):
        announce_hand_off(running.goal_id, ledger=running.ledger, notifier=running.notifier)
    assert running.notifier.sent == [] and running.events() == events
    assert running.goal().status is GoalStatus.EXECUTING


def test_a_handed_off_goal_has_nothing_to_undo(running: OrderFlow):
    hand_off(running)
    with pytest.raises(UndoRefused) as refused:
        request_undo(running.goal_id, ledger=running.ledger, workflow=running.workflow, actor="client")
    assert (refused.value.status, refused.value.code) == (409, "NOT_UNDOABLE")
    assert running.workflow.calls == []


# --- through the executor: the step that meets the escalation records it, then re-raises -------------


def test_an_escalation_at_completion_hands_off_and_charges_nothing(merchant, brand, users):
    flow = order_flow(merchant, brand, users, socks_plan(merchant, brand, users))
    flow.shop.escalate_with = CONTINUE_URL
    outputs = flow.run_steps("s1", "s2")

    with pytest.raises(MerchantEscalation):
        flow.run("s3", outputs)

    goal = flow.goal()
    assert (goal.status, goal.continueUrl) == (GoalStatus.HANDED_OFF, CONTINUE_URL)
    assert flow.shop.charges == [] and flow.shop.orders == {}
    # The session the shopper continues in stays open: nothing canceled it.
    (session,) = flow.shop.sessions.values()
    assert session.status != "canceled"
    assert "checkout.cancel" not in [call.operation for call in flow.shop.calls]
