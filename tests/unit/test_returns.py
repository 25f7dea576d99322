"""Undo by the order's state: cancel before shipment, return after; RETURNED once the merchant's
refund arrives in an order event, recorded and told once however often the event comes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from cartpilot.approvals.page import render_approval_page
from cartpilot.commerce.codecs import codec_for as client_codec
from cartpilot.execution.compensation import undo_executed_steps
from cartpilot.goals.model import GoalStatus
from cartpilot.goals.undo import NO_UNDO_NOTICE, undo_action
from cartpilot.kernel.money import Money
from cartpilot.orders.returns import completed_refund, settle_return
from cartpilot_local.merchant.app import codec_for as sandbox_codec
from cartpilot_local.merchant.codec_base import RenderContext
from cartpilot_local.merchant.ledger import OrderLine, OrderRecord
from cartpilot_local.merchant.protocol import ORDER
from cartpilot_local.merchant.shipping import Rate, ShippingQuote
from cartpilot_local.merchant.state import MerchantState
from cartpilot_local.merchant.webhooks import record_shipment
from tests.fakes.merchant import FakeMerchant
from tests.unit.stages import OrderFlow, order_flow, socks_plan, wait_for_approval


def completed(merchant: FakeMerchant, brand: Any, users: Any, *, returns: bool = True) -> OrderFlow:
    merchant.shop.offers_return = returns
    plan = socks_plan(merchant, brand, users)
    plan = plan.model_copy(update={"merchant": plan.merchant.model_copy(update={"returns": returns})})
    flow = order_flow(merchant, brand, users, plan)
    flow.completed()
    return flow


def ship(flow: OrderFlow) -> str:
    goal = flow.goal()
    assert goal.receipt is not None
    order_id = goal.receipt.orderId
    flow.shop.orders[order_id] = flow.shop.orders[order_id].model_copy(update={"status": "fulfilled"})
    return order_id


def undo(flow: OrderFlow) -> Any:
    return undo_executed_steps(
        flow.goal_id, {}, ledger=flow.ledger, merchants=flow.merchants, final_status=GoalStatus.UNDONE,
        notifier=flow.notifier, max_attempts=3,
    )  # fmt: skip


def refunded_order(
    order_id: str, amount: int, *, status: str = "completed", ucp: str = "2026-04-08"
) -> dict[str, Any]:
    refund: dict[str, Any] = {
        "id": "re_1",
        "type": "refund",
        "occurred_at": "2026-11-25T12:00:00Z",
        "status": status,
    }
    if ucp == "2026-04-08":
        refund["totals"] = [{"type": "total", "amount": -amount}]
    else:
        refund["amount"] = amount
    order: dict[str, Any] = {
        "id": order_id,
        "adjustments": [
            {"id": "ret_1", "type": "return", "occurred_at": "2026-11-25T12:00:00Z", "status": "completed"},
            refund,
        ],
    }
    if ucp == "2026-04-08":
        order["currency"] = "CNY"
    return order


# --- choosing ------------------------------------------------------------------------------------


def test_before_shipment_undo_cancels_and_refunds(merchant, brand, users):
    flow = completed(merchant, brand, users)

    result = undo(flow)

    assert result.status is GoalStatus.UNDONE and flow.goal().status is GoalStatus.UNDONE
    assert len(flow.shop.refunds) == 1 and flow.shop.returns == {}
    assert flow.notifier.of_kind("return-requested") == []


def test_after_shipment_undo_files_a_return_and_tells_the_shopper(merchant, brand, users):
    flow = completed(merchant, brand, users)
    order_id = ship(flow)

    result = undo(flow)

    goal = flow.goal()
    assert result.status is GoalStatus.RETURN_REQUESTED and goal.status is GoalStatus.RETURN_REQUESTED
    assert goal.returnId == flow.shop.returns[order_id] and goal.refund is None
    assert flow.shop.refunds == [], "nothing is refunded before the merchant receives the goods"
    assert flow.last("return.requested").detail == {"orderId": order_id, "returnId": goal.returnId}
    (told,) = flow.notifier.of_kind("return-requested")
    assert told["returnId"] == goal.returnId and told["orderId"] == order_id


def test_a_retried_undo_files_one_return_and_tells_once(merchant, brand, users):
    flow = completed(merchant, brand, users)
    ship(flow)

    undo(flow)
    again = undo(flow)

    assert again.status is GoalStatus.RETURN_REQUESTED
    assert len(flow.shop.returns) == 1 and flow.events().count("return.requested") == 1
    assert len(flow.notifier.of_kind("return-requested")) == 1


def test_a_cancel_refused_because_the_order_shipped_becomes_a_return(merchant, brand, users, monkeypatch):
    flow = completed(merchant, brand, users)
    order_id = ship(flow)
    # The merchant's order read still says "confirmed" (it shipped between the look and the cancel).
    real_get = merchant.orders.get
    monkeypatch.setattr(
        merchant.orders,
        "get",
        lambda oid, cid=None: real_get(oid, cid).model_copy(update={"status": "confirmed"}),
    )

    result = undo(flow)

    assert result.status is GoalStatus.RETURN_REQUESTED
    assert flow.shop.returns.keys() == {order_id} and flow.shop.refunds == []


def _sandbox_order_after(steps: list[str], *, quantity: int = 2) -> dict[str, Any]:
    """The sandbox merchant's order entity (2026-04-08) once ``steps`` (ship, deliver) happened."""
    rate = Rate(id="standard", title="Standard", carrier="SF", days=(2, 4), prices={"CNY": 1000})
    record = OrderRecord(
        id="ord_1", label="A-1", checkout_id="cs_1", currency="CNY",
        lines=[OrderLine("li_1", "socks", "Socks", 2950, quantity, None)], subtotal=2950 * quantity,
        shipping=1000, shipping_quote=ShippingQuote(rate, 1000, "CNY", None, None),
        destination={"id": "d_1", "address_country": "CN"}, created_at=datetime(2026, 11, 20, tzinfo=UTC),
    )  # fmt: skip
    state = MerchantState()
    state.ledger.orders[record.id] = record
    for step in steps:
        record_shipment(state, record.id, step, carrier="SF", tracking_number=None)  # type: ignore[arg-type]
    context = RenderContext("http://sandbox/", {ORDER: "2026-04-08"}, ())
    return sandbox_codec("2026-04-08").order(record, [], context)


@pytest.mark.parametrize(
    ("steps", "status"),
    [([], "confirmed"), (["shipped"], "fulfilled"), (["shipped", "delivered"], "fulfilled")],
)
def test_the_sandbox_order_reads_as_the_merchant_fulfilled_it(steps, status):
    entity = _sandbox_order_after(steps)
    assert client_codec("2026-04-08").read_order(entity, None).status == status


def test_the_undo_choice_reads_fulfilled_from_the_merchant_without_tracking(merchant, brand, users):
    flow = completed(merchant, brand, users)
    goal = flow.goal()
    assert goal.receipt is not None and goal.tracking is None, "no order event reached the goal"
    order_id = goal.receipt.orderId
    # What the merchant's own Get Order says after it shipped, read by the client codec.
    read = client_codec("2026-04-08").read_order(_sandbox_order_after(["shipped"]), None)
    flow.shop.orders[order_id] = flow.shop.orders[order_id].model_copy(update={"status": read.status})

    result = undo(flow)

    assert result.status is GoalStatus.RETURN_REQUESTED and flow.shop.returns.keys() == {order_id}
    assert flow.shop.refunds == [], "a shipped order is returned, not canceled"


def test_shipped_without_returns_goes_to_a_person_at_once(merchant, brand, users):
    flow = completed(merchant, brand, users, returns=False)
    ship(flow)

    result = undo(flow)

    goal = flow.goal()
    assert result.status is GoalStatus.NEEDS_ATTENTION and goal.status is GoalStatus.NEEDS_ATTENTION
    assert "offers no returns" in result.left[0]
    assert flow.shop.refunds == [] and flow.shop.returns == {}
    assert not any(call.operation == "orders.cancel" for call in flow.shop.calls)


# --- what the approver and the shopper are told -----------------------------------------------


@pytest.mark.parametrize(
    ("cancel", "returns", "expected"),
    [
        (True, True, "once it has shipped, a return is filed"),
        (True, False, "takes no returns here"),
        (False, True, "offers no cancellation"),
        (False, False, NO_UNDO_NOTICE),
    ],
)
def test_the_undo_action_named_before_approval(merchant, brand, users, cancel, returns, expected):
    plan = socks_plan(merchant, brand, users, undo="cancel" if cancel else "none")
    plan = plan.model_copy(update={"merchant": plan.merchant.model_copy(update={"returns": returns})})
    assert expected in undo_action(plan)


@pytest.mark.parametrize(
    ("undo_kind", "returns", "says", "never"),
    [
        ("cancel", True, "once it has shipped, a return is filed with the merchant", "No undo"),
        ("none", True, "this merchant offers no cancellation", "No undo"),
        ("cancel", False, "takes no returns here", "a return is filed"),
    ],
)
def test_the_approval_page_names_the_action_before_anyone_approves(
    merchant, brand, users, undo_kind, returns, says, never
):
    # A deadline no option promises makes even socks ask the shopper first.
    plan = socks_plan(
        merchant, brand, users, undo=undo_kind, deliver_by=date(2026, 12, 10), promised_delivery=False
    )
    plan = plan.model_copy(update={"merchant": plan.merchant.model_copy(update={"returns": returns})})
    pending = wait_for_approval(merchant, brand, users, "", plan=plan)
    html = render_approval_page(
        pending.desk.open(pending.approval_id, pending.link),
        brand,
        action_url="/approvals/" + pending.approval_id,
    )
    assert "undo it for 3 days" in html and says in html and never not in html


# --- settling ------------------------------------------------------------------------------------


@pytest.mark.parametrize("ucp", ["2026-04-08", "2026-01-11"])
def test_the_refund_is_read_in_both_versions(ucp):
    assert completed_refund(refunded_order("o-1", 5900, ucp=ucp), "CNY") == Money(
        amount_minor=5900, currency="CNY"
    )


def test_pending_refunds_cancellations_and_repeats_are_not_counted():
    order = refunded_order("o-1", 5900, status="pending")
    assert completed_refund(order, "CNY") is None
    cancellation = {"id": "adj", "type": "cancellation", "status": "completed", "occurred_at": "x"}
    assert completed_refund({"adjustments": [cancellation]}, "CNY") is None
    twice = refunded_order("o-1", 5900)
    twice["adjustments"].append(dict(twice["adjustments"][1]))
    assert completed_refund(twice, "CNY") == Money(amount_minor=5900, currency="CNY")


def returned(merchant: FakeMerchant, brand: Any, users: Any) -> tuple[OrderFlow, str]:
    flow = completed(merchant, brand, users)
    order_id = ship(flow)
    undo(flow)
    return flow, order_id


def test_the_refund_event_ends_the_goal_returned_once(merchant, brand, users):
    flow, order_id = returned(merchant, brand, users)
    event = refunded_order(order_id, 5900)

    assert settle_return(flow.goal_id, event, ledger=flow.ledger, notifier=flow.notifier) is True
    events = flow.events()
    for _ in range(2):
        assert settle_return(flow.goal_id, event, ledger=flow.ledger, notifier=flow.notifier) is False

    goal = flow.goal()
    assert goal.status is GoalStatus.RETURNED and goal.refund == Money(amount_minor=5900, currency="CNY")
    assert flow.events() == events and events.count("goal.returned") == 1
    assert flow.last("goal.returned").detail["refund"] == {"amount_minor": 5900, "currency": "CNY"}
    (told,) = flow.notifier.of_kind("returned")
    assert told["refund"] == "59.00 CNY" and told["returnId"] == goal.returnId


@pytest.mark.parametrize(
    "event",
    [
        {
            "id": "someone-elses-order",
            "currency": "CNY",
            "adjustments": refunded_order("x", 5900)["adjustments"],
        },
        {"currency": "CNY"},
    ],
)
def test_events_without_this_orders_refund_change_nothing(merchant, brand, users, event):
    flow, order_id = returned(merchant, brand, users)
    before, events = flow.goal(), flow.events()
    if "id" not in event:
        event = {**refunded_order(order_id, 5900, status="pending")}

    assert settle_return(flow.goal_id, event, ledger=flow.ledger, notifier=flow.notifier) is False
    assert flow.goal() == before and flow.events() == events


def test_a_refund_for_a_goal_not_awaiting_a_return_changes_nothing(merchant, brand, users):
    flow = completed(merchant, brand, users)
    goal = flow.goal()
    assert goal.receipt is not None
    before, events = flow.goal(), flow.events()

    assert settle_return(flow.goal_id, refunded_order(goal.receipt.orderId, 5900), ledger=flow.ledger,
                         notifier=flow.notifier) is False  # fmt: skip
    assert settle_return("g-unknown", {}, ledger=flow.ledger, notifier=flow.notifier) is False
    assert flow.goal() == before and flow.events() == events


def test_a_failed_record_releases_the_claim_so_the_retry_settles(merchant, brand, users, monkeypatch):
    flow, order_id = returned(merchant, brand, users)
    event = refunded_order(order_id, 5900)
    real_transition = flow.ledger.transition

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("audit table unavailable")

    monkeypatch.setattr(flow.ledger, "transition", broken)
    with pytest.raises(RuntimeError):
        settle_return(flow.goal_id, event, ledger=flow.ledger, notifier=flow.notifier)
    monkeypatch.setattr(flow.ledger, "transition", real_transition)

    assert settle_return(flow.goal_id, event, ledger=flow.ledger, notifier=flow.notifier) is True
    assert flow.goal().status is GoalStatus.RETURNED and len(flow.notifier.of_kind("returned")) == 1


def _orders_counted(flow: OrderFlow) -> int:
    return flow.counters.recent_activity(flow.goal().userId, now=datetime.now(UTC)).orders


def test_a_returned_order_gives_the_daily_limit_hold_back_once(merchant, brand, users):
    flow, order_id = returned(merchant, brand, users)
    assert _orders_counted(flow) == 1, "a requested return still counts until the refund"
    event = refunded_order(order_id, 5900)

    settle = lambda: settle_return(  # noqa: E731
        flow.goal_id, event, ledger=flow.ledger, notifier=flow.notifier, counters=flow.counters
    )
    assert settle() is True
    assert settle() is False  # the merchant's event replayed

    assert _orders_counted(flow) == 0
    assert flow.events().count("limits.released") == 1
    assert flow.last("limits.released").detail == {"why": "order returned"}
    assert flow.events().index("limits.released") < flow.events().index("goal.returned")


def test_a_failed_release_leaves_the_return_to_the_retry(merchant, brand, users, monkeypatch):
    flow, order_id = returned(merchant, brand, users)
    event = refunded_order(order_id, 5900)
    real_release = flow.counters.release

    def broken(goal_id: str, *, at: datetime) -> bool:
        raise RuntimeError("counters table unavailable")

    monkeypatch.setattr(flow.counters, "release", broken)
    with pytest.raises(RuntimeError):
        settle_return(flow.goal_id, event, ledger=flow.ledger, notifier=flow.notifier, counters=flow.counters)
    assert flow.goal().status is GoalStatus.RETURN_REQUESTED and _orders_counted(flow) == 1
    monkeypatch.setattr(flow.counters, "release", real_release)

    assert settle_return(
        flow.goal_id, event, ledger=flow.ledger, notifier=flow.notifier, counters=flow.counters
    )
    assert flow.goal().status is GoalStatus.RETURNED and _orders_counted(flow) == 0
    assert flow.events().count("limits.released") == 1 and len(flow.notifier.of_kind("returned")) == 1
