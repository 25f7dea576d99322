"""Undoing what ran, on the fakes: the merchant says what happened, every undo carries its own key,
and a compensation that cannot finish says what is left instead of pretending."""

from __future__ import annotations

from typing import Any

import pytest

from cartpilot.commerce.errors import CompensationIncomplete, MerchantRejected, MerchantUnavailable
from cartpilot.commerce.ports import Buyer, CartLine
from cartpilot.execution.compensation import undo_executed_steps
from cartpilot.execution.keys import step_idempotency_key
from cartpilot.execution.outcomes import confirm_order
from cartpilot.goals.model import GoalStatus
from cartpilot.goals.reasons import REASON_MESSAGES, ReasonCode
from cartpilot.kernel.clock import utc_now
from cartpilot.plans.reservations import daily_limits
from tests.fakes import InMemoryOrderCounters
from tests.fakes.merchant import MerchantCall
from tests.unit.stages import OrderFlow

PAYMENT_FAILED = "payment declined"


def undo(flow: OrderFlow, outputs: dict[str, Any], **options: Any) -> dict[str, Any]:
    options.setdefault("reason", PAYMENT_FAILED)
    result = undo_executed_steps(
        flow.goal_id, outputs, ledger=flow.ledger, merchants=flow.merchants, **options
    )
    return result.model_dump(mode="json")  # what the flow receives


def undo_calls(flow: OrderFlow) -> list[tuple[str, str | None, str | None]]:
    return [
        (call.operation, call.target, call.key)
        for call in flow.shop.writes()
        if call.operation in ("checkout.cancel", "orders.cancel")
    ]


def open_session(flow: OrderFlow, key: str) -> str:
    buyer = Buyer(fullName="Lin Wei", email="lin.wei@example.com")
    return flow.merchant.checkout.create([CartLine(itemId="socks-1-m", quantity=1)], buyer, "CNY", key).id


# --- what is undone ---------------------------------------------------------------------------------------


def test_an_open_session_is_canceled_with_its_own_undo_key(flow: OrderFlow):
    outputs = flow.run_steps("s1", "s2", "s3")
    session = outputs["s1"]["checkoutId"]

    result = undo(flow, outputs)

    assert result == {"status": "COMPENSATED", "undone": [f"checkout {session} canceled"], "left": []}
    assert undo_calls(flow) == [
        ("checkout.cancel", session, step_idempotency_key(flow.goal_id, session, "undo"))
    ]
    assert flow.shop.sessions[session].status == "canceled"
    assert flow.shop.charges == [] and flow.shop.refunds == []
    goal = flow.goal()
    # The error's words stay in the audit; the shopper reads a reason from the closed set.
    assert (goal.status, goal.reasonCode) == (GoalStatus.COMPENSATED, ReasonCode.ORDER_UNDONE)
    assert goal.failure == REASON_MESSAGES[ReasonCode.ORDER_UNDONE]
    record = flow.records()[-1]
    assert (record.event, record.actor, record.status) == (
        "compensation.completed",
        "compensator",
        "COMPENSATED",
    )
    assert record.detail == {"undone": [f"checkout {session} canceled"], "reason": PAYMENT_FAILED}


def test_a_placed_order_is_canceled_and_refunded_not_its_session(flow: OrderFlow):
    outputs = flow.run_steps()
    order_id = outputs["s4"]["orderId"]

    result = undo(flow, outputs, reason="the order could not be confirmed")

    assert result == {
        "status": "COMPENSATED",
        "undone": [f"order {order_id} canceled and refunded"],
        "left": [],
    }
    assert undo_calls(flow) == [
        ("orders.cancel", order_id, step_idempotency_key(flow.goal_id, order_id, "undo"))
    ]
    assert flow.shop.refunds == [(order_id, flow.plan.summary.total)]
    assert flow.shop.orders[order_id].status == "canceled"


def test_an_order_whose_payment_reply_was_lost_is_found_at_the_merchant_and_refunded(flow: OrderFlow):
    outputs = flow.run_steps("s1", "s2", "s3")
    session = outputs["s3"]["checkoutId"]
    # The payment went through, but its reply never reached the flow: its outputs know no order.
    placed = flow.merchant.payments.complete(session, flow.credential(flow.key("s4")), flow.key("s4"))

    result = undo(flow, outputs)

    assert result["undone"] == [f"order {placed.id} canceled and refunded"]
    assert flow.shop.refunds == [(placed.id, placed.total)]
    assert [op for op, _, _ in undo_calls(flow)] == ["orders.cancel"]


def test_a_session_only_the_goal_remembers_is_undone_too(flow: OrderFlow):
    """The flow's outputs may be lost with a failed branch; the goal's recorded steps are read as well."""
    flow.run_steps("s1", "s2")
    session = flow.goal().steps[0].summary["checkoutId"]
    result = undo(flow, {})
    assert result["undone"] == [f"checkout {session} canceled"]


def test_sessions_are_undone_newest_first_each_once(flow: OrderFlow):
    outputs = flow.run_steps()  # s1..s4 on one session, which now has an order
    first_session, order_id = outputs["s1"]["checkoutId"], outputs["s4"]["orderId"]
    ninth, tenth = open_session(flow, "k-ninth"), open_session(flow, "k-tenth")
    outputs = {
        **outputs,
        "s9": {"checkoutId": ninth},
        "s10": {"checkoutId": tenth},  # s10 is newer than s9 as a number, older as text
        "confirm": {"orderId": order_id, "checkoutId": first_session, "status": "confirmed"},
    }
    result = undo(flow, outputs)

    assert [(op, target) for op, target, _ in undo_calls(flow)] == [
        ("checkout.cancel", tenth),
        ("checkout.cancel", ninth),
        ("orders.cancel", order_id),
    ]
    assert result["undone"] == [
        f"checkout {tenth} canceled",
        f"checkout {ninth} canceled",
        f"order {order_id} canceled and refunded",
    ]
    assert len(flow.shop.refunds) == 1


def test_a_goal_that_touched_nothing_is_compensated_without_calling_the_merchant(flow: OrderFlow):
    assert flow.goal().status is GoalStatus.AWAITING_APPROVAL
    assert undo(flow, {}) == {"status": "COMPENSATED", "undone": [], "left": []}
    assert flow.shop.calls == []
    assert flow.goal().status is GoalStatus.COMPENSATED


# --- retried compensation ------------------------------------------------------------------------------------


def test_a_retried_compensation_refunds_once_and_sends_the_same_keys(flow: OrderFlow):
    outputs = flow.run_steps()
    order_id = outputs["s4"]["orderId"]

    first = undo(flow, outputs)
    second = undo(flow, outputs)

    assert first["status"] == second["status"] == "COMPENSATED"
    assert flow.shop.refunds == [(order_id, flow.plan.summary.total)]
    keys = {key for op, _, key in undo_calls(flow) if op == "orders.cancel"}
    assert keys == {step_idempotency_key(flow.goal_id, order_id, "undo")}
    assert flow.goal().status is GoalStatus.COMPENSATED


def test_a_session_already_canceled_is_not_canceled_again(flow: OrderFlow):
    outputs = flow.run_steps("s1")
    undo(flow, outputs)
    calls_before = len(undo_calls(flow))
    assert undo(flow, outputs)["undone"] == []
    assert len(undo_calls(flow)) == calls_before


def test_an_incomplete_undo_is_retried_while_attempts_remain(flow: OrderFlow):
    outputs = flow.run_steps()
    order_id = outputs["s4"]["orderId"]
    flow.shop.fail_next("orders.cancel", MerchantUnavailable("HTTP 503"))

    with pytest.raises(CompensationIncomplete) as raised:
        undo(flow, outputs, attempt=0, max_attempts=3)

    session = outputs["s1"]["checkoutId"]
    assert str(raised.value) == f"checkout {session}: MerchantUnavailable: HTTP 503"
    assert flow.shop.refunds == []
    goal = flow.goal()
    assert (goal.status, goal.failure) == (GoalStatus.EXECUTING, None)
    retrying = flow.records()[-1]
    assert retrying.event == "compensation.retrying" and retrying.status is None
    assert retrying.detail == {"attempt": 1, "undone": [], "left": [str(raised.value)]}

    # The state machine's retry: the merchant answers now.
    result = undo(flow, outputs, attempt=1, max_attempts=3)
    assert result == {
        "status": "COMPENSATED",
        "undone": [f"order {order_id} canceled and refunded"],
        "left": [],
    }
    assert flow.shop.refunds == [(order_id, flow.plan.summary.total)]


def test_the_last_attempt_ends_needs_attention_with_what_is_left(flow: OrderFlow):
    outputs = flow.run_steps()
    session = outputs["s1"]["checkoutId"]
    flow.shop.fail_next("orders.cancel", MerchantUnavailable("HTTP 503"), times=3)

    for attempt in (0, 1):
        with pytest.raises(CompensationIncomplete):
            undo(flow, outputs, attempt=attempt, max_attempts=3)
    result = undo(flow, outputs, attempt=2, max_attempts=3)

    left = [f"checkout {session}: MerchantUnavailable: HTTP 503"]
    assert result == {"status": "NEEDS_ATTENTION", "undone": [], "left": left}
    goal = flow.goal()
    assert goal.status is GoalStatus.NEEDS_ATTENTION
    assert (goal.reasonCode, goal.failure) == (
        ReasonCode.NEEDS_ATTENTION,
        REASON_MESSAGES[ReasonCode.NEEDS_ATTENTION],
    )
    record = flow.records()[-1]
    assert record.event == "compensation.incomplete" and record.status == "NEEDS_ATTENTION"
    assert record.detail == {"undone": [], "leftToFixByHand": left, "reason": PAYMENT_FAILED}
    assert flow.events().count("compensation.retrying") == 2
    assert flow.shop.refunds == []


def test_with_one_attempt_a_failure_needs_attention_at_once_and_the_rest_is_still_undone(flow: OrderFlow):
    outputs = flow.run_steps()
    order_id = outputs["s4"]["orderId"]
    other = open_session(flow, "k-other")
    outputs = {**outputs, "s9": {"checkoutId": other}}
    flow.shop.fail_next("checkout.cancel", MerchantRejected("session is locked", status_code=409))

    result = undo(flow, outputs)

    assert result["status"] == "NEEDS_ATTENTION"
    assert result["left"] == [f"checkout {other}: MerchantRejected: session is locked"]
    assert result["undone"] == [f"order {order_id} canceled and refunded"]
    assert flow.shop.refunds == [(order_id, flow.plan.summary.total)]


def test_a_session_that_cannot_be_read_is_left_to_fix(flow: OrderFlow):
    outputs = flow.run_steps("s1")
    session = outputs["s1"]["checkoutId"]
    flow.shop.fail_next("checkout.get", MerchantUnavailable("connection refused"))
    result = undo(flow, outputs)
    assert result["left"] == [f"checkout {session}: MerchantUnavailable: connection refused"]
    assert flow.shop.sessions[session].status == "incomplete"


# --- what the compensation is for ----------------------------------------------------------------------------


def test_before_replanning_nothing_final_is_recorded(flow: OrderFlow):
    outputs = flow.run_steps("s1", "s2", "s3")
    session = outputs["s1"]["checkoutId"]

    result = undo(flow, outputs, final_status=GoalStatus.PLANNING, reason="prices changed since approval")

    assert result == {"status": "PLANNING", "undone": [f"checkout {session} canceled"], "left": []}
    goal = flow.goal()
    assert (goal.status, goal.failure) == (GoalStatus.EXECUTING, None)
    record = flow.records()[-1]
    assert (record.event, record.status) == ("compensation.before-replanning", None)
    assert record.detail == {
        "undone": [f"checkout {session} canceled"],
        "reason": "prices changed since approval",
    }
    assert flow.shop.sessions[session].status == "canceled"
    # The flow then plans the goal again.
    flow.ledger.transition(flow.goal_id, GoalStatus.PLANNING, actor="planner:rules", event="planning.started")


def test_before_replanning_an_undo_that_cannot_finish_still_needs_attention(flow: OrderFlow):
    outputs = flow.run_steps("s1")
    flow.shop.fail_next("checkout.cancel", MerchantUnavailable("HTTP 502"))
    result = undo(flow, outputs, final_status=GoalStatus.PLANNING)
    assert result["status"] == "NEEDS_ATTENTION"
    assert flow.goal().status is GoalStatus.NEEDS_ATTENTION


def test_a_shoppers_undo_ends_the_completed_goal_undone(flow: OrderFlow):
    outputs = flow.completed()
    order_id = outputs["confirm"]["orderId"]
    assert flow.goal().status is GoalStatus.COMPLETED

    result = undo(flow, outputs, final_status=GoalStatus.UNDONE, reason=None)

    assert result == {"status": "UNDONE", "undone": [f"order {order_id} canceled and refunded"], "left": []}
    goal = flow.goal()
    assert (goal.status, goal.failure) == (GoalStatus.UNDONE, None)
    assert goal.receipt is not None and goal.receipt.orderId == order_id
    record = flow.records()[-1]
    assert (record.event, record.status) == ("order.undone", "UNDONE")
    assert flow.shop.refunds == [(order_id, flow.plan.summary.total)]
    assert undo_calls(flow) == [
        ("orders.cancel", order_id, step_idempotency_key(flow.goal_id, order_id, "undo"))
    ]


# --- after the order was confirmed: a failure keeps it ----------------------------------------------------


def test_an_order_confirmed_as_planned_is_kept_when_its_receipt_fails(flow: OrderFlow):
    """The step loop stopped between the confirmation and the receipt (a receipt outage past the
    loop's limit): the order flow's undo must not cancel the order the plan bought."""
    outputs = confirm_order(flow.goal_id, flow.run_steps(), ledger=flow.ledger, merchants=flow.merchants)
    order_id = outputs["confirm"]["orderId"]

    result = undo(flow, outputs, reason="States.Timeout")

    assert result["status"] == "NEEDS_ATTENTION" and result["undone"] == []
    assert "its receipt was not sent" in result["left"][0]
    assert undo_calls(flow) == [] and flow.shop.refunds == []
    assert flow.shop.orders[order_id].status != "canceled"
    assert flow.goal().status is GoalStatus.NEEDS_ATTENTION
    assert flow.records()[-1].event == "compensation.incomplete"


def test_a_completed_goal_is_left_completed_by_a_late_compensation(flow: OrderFlow):
    outputs = flow.completed()
    order_id = outputs["confirm"]["orderId"]

    result = undo(flow, outputs, reason="States.Timeout")

    assert result == {"status": "COMPLETED", "undone": [], "left": []}
    assert undo_calls(flow) == [] and flow.shop.refunds == []
    assert flow.shop.orders[order_id].status != "canceled"
    assert flow.goal().status is GoalStatus.COMPLETED
    assert flow.records()[-1].event == "compensation.skipped"


def test_a_completed_goal_whose_receipt_was_not_sent_goes_to_a_person_keeping_its_order(flow: OrderFlow):
    """The step loop stopped inside SendReceipt, after the COMPLETED write and before the email."""
    outputs = flow.completed()
    flow.ledger.store.overwrite(flow.goal_id, receiptSentAt=None)
    order_id = outputs["confirm"]["orderId"]

    result = undo(flow, outputs, reason="States.Timeout")

    assert result["status"] == "NEEDS_ATTENTION" and result["undone"] == []
    assert undo_calls(flow) == [] and flow.shop.orders[order_id].status != "canceled"
    assert flow.goal().status is GoalStatus.NEEDS_ATTENTION


def test_an_order_that_failed_its_confirmation_is_still_undone(flow: OrderFlow):
    """Only a confirmed order is kept: one that does not match the plan is cancelled as before."""
    outputs = flow.run_steps()
    order_id = outputs["s4"]["orderId"]

    result = undo(flow, outputs, reason="the order could not be confirmed")

    assert result["status"] == "COMPENSATED"
    assert flow.shop.refunds == [(order_id, flow.plan.summary.total)]


def test_every_undo_call_is_recorded_by_the_fake_as_a_write(flow: OrderFlow):
    """Sanity of the fake: reads are logged but are not writes."""
    outputs = flow.run_steps("s1")
    undo(flow, outputs)
    session = outputs["s1"]["checkoutId"]
    assert flow.shop.calls[-2:] == [
        MerchantCall("checkout.get", session, None, {}),
        MerchantCall("checkout.cancel", session, step_idempotency_key(flow.goal_id, session, "undo"), {}),
    ]


# --- a merchant that offers no way to cancel ------------------------------------------------------


def test_an_order_the_merchant_cannot_cancel_is_left_to_a_person_at_once_and_not_tried_again(flow: OrderFlow):
    outputs = flow.run_steps()
    order_id = outputs["s4"]["orderId"]
    flow.shop.offers_cancel = False

    result = undo(flow, outputs, attempt=0, max_attempts=3)

    assert result["status"] == "NEEDS_ATTENTION" and result["undone"] == []
    (left,) = result["left"]
    assert "the order stands" in left and "no way to cancel" in left
    assert "orders.cancel" not in [operation for operation, _, _ in undo_calls(flow)]
    assert flow.shop.refunds == [] and flow.shop.orders[order_id].status == "confirmed"
    assert flow.goal().status is GoalStatus.NEEDS_ATTENTION


def test_sessions_without_orders_are_still_canceled_where_orders_cannot_be(flow: OrderFlow):
    flow.shop.offers_cancel = False
    outputs = flow.run_steps("s1", "s2", "s3")
    session = outputs["s1"]["checkoutId"]

    result = undo(flow, outputs)

    assert result == {"status": "COMPENSATED", "undone": [f"checkout {session} canceled"], "left": []}


def test_compensation_undoes_at_the_plans_merchant(flow: OrderFlow):
    outputs = flow.run_steps("s1")
    asked: list[str] = []

    def merchants(merchant_id: str) -> Any:
        asked.append(merchant_id)
        return flow.merchant

    undo_executed_steps(flow.goal_id, outputs, ledger=flow.ledger, merchants=merchants, reason="x")

    assert asked == [flow.plan.merchant.id]


# --- the goal's hold on the daily limits ------------------------------------------------------------------


def test_a_compensated_goal_gives_its_hold_on_the_daily_limits_back_once(flow: OrderFlow):
    counters = InMemoryOrderCounters()
    counters.reserve(flow.goal_id, "user-1", flow.plan.summary.total, daily_limits(flow.brand), now=utc_now())
    outputs = flow.run_steps("s1", "s2", "s3")

    undo(flow, outputs, counters=counters)
    undo(flow, outputs, counters=counters)  # a retried compensation

    assert counters.recent_activity("user-1", now=utc_now()).orders == 0
    assert flow.events().count("limits.released") == 1


def test_a_compensation_that_needs_a_person_keeps_the_hold(flow: OrderFlow):
    counters = InMemoryOrderCounters()
    counters.reserve(flow.goal_id, "user-1", flow.plan.summary.total, daily_limits(flow.brand), now=utc_now())
    outputs = flow.run_steps("s1", "s2", "s3")
    flow.shop.fail_next("checkout.cancel", MerchantUnavailable("down"), times=3)

    assert undo(flow, outputs, counters=counters)["status"] == "NEEDS_ATTENTION"

    # The merchant may have charged: the order still counts until a person settles it.
    assert counters.recent_activity("user-1", now=utc_now()).orders == 1
    assert "limits.released" not in flow.events()
