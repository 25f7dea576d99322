"""Undo picks the action the order's state allows: cancel before shipment, return after.

Through the HTTP API of the local stack and the sandbox merchant's test routes: the order ships
(``/_sandbox/orders/{id}/ship``), the shopper undoes, the merchant files a return, the goods arrive
(``/_sandbox/returns/{id}/receive``) and its signed order event carries the refund back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from cartpilot_local.client import CartPilotClient
from tests.e2e.conftest import LOW_RISK_GOAL, Stack
from tests.e2e.stack_process import StackProcess, brand_variant, running_stack_process

SHORT_WINDOW_SECONDS = 4


def completed_order(stack: Stack, user: str = "shopper-0021") -> dict[str, Any]:
    goal_id = stack.api.submit(user, LOW_RISK_GOAL).json()["goalId"]
    goal = stack.api.wait_for(goal_id, timeout=60)
    assert goal["status"] == "COMPLETED" and goal["undoUntil"], goal
    return goal


def ship(stack: Stack, order_id: str) -> None:
    shipped = stack.merchant.post(f"/_sandbox/orders/{order_id}/ship", json={})
    assert shipped.status_code == 200, shipped.text


def outbox_of(stack: Stack, goal_id: str, kind: str) -> list[dict[str, Any]]:
    return [m for m in stack.api.outbox() if m.get("goalId") == goal_id and m.get("kind") == kind]


def wait_until(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_undo_before_shipment_cancels_and_refunds(stack: Stack):
    goal = completed_order(stack)

    assert stack.api.undo(goal["goalId"]).status_code == 202
    undone = stack.api.wait_for(goal["goalId"], {"UNDONE"}, timeout=60)

    assert undone["status"] == "UNDONE" and undone["returnId"] is None
    ledger = stack.ledger()
    assert len(ledger["charges"]) == 1 and len(ledger["refunds"]) == 1 and "returns" not in ledger
    assert ledger["refunds"][0]["amount"] == ledger["charges"][0]["amount"]


def test_undo_after_shipment_files_a_return_then_the_refund_ends_it_returned(stack: Stack):
    goal = completed_order(stack)
    goal_id, order_id = goal["goalId"], goal["receipt"]["orderId"]
    ship(stack, order_id)

    first, again = stack.api.undo(goal_id), None
    assert first.status_code == 202
    requested = stack.api.wait_for(goal_id, {"RETURN_REQUESTED", "UNDONE", "NEEDS_ATTENTION"}, timeout=60)
    assert requested["status"] == "RETURN_REQUESTED", requested
    again = stack.api.undo(goal_id)
    assert again.status_code == 202 and again.json()["status"] == "RETURN_REQUESTED"

    ledger = stack.ledger()
    (filed,) = ledger["returns"]
    assert (filed["id"], filed["order_id"], filed["status"]) == (requested["returnId"], order_id, "requested")
    assert ledger["refunds"] == [], "nothing is refunded before the goods are back"
    assert wait_until(lambda: outbox_of(stack, goal_id, "return-requested"))

    received = stack.merchant.post(f"/_sandbox/returns/{filed['id']}/receive")
    assert received.status_code == 200, received.text
    assert received.json()["webhook"]["status"] == 200
    returned = stack.api.wait_for(goal_id, {"RETURNED"}, timeout=30)

    charge = ledger["charges"][0]
    assert returned["refund"] == {"amount_minor": charge["amount"], "currency": charge["currency"]}
    ledger = stack.ledger()
    assert len(ledger["refunds"]) == 1 and ledger["refunds"][0]["amount"] == charge["amount"]
    assert ledger["returns"][0]["status"] == "received"
    events = stack.events(goal_id)
    assert events.count("return.requested") == 1 and events.count("goal.returned") == 1
    assert wait_until(lambda: outbox_of(stack, goal_id, "returned"))
    assert stack.api.audit(goal_id)["verification"]["valid"]


def test_receiving_twice_refunds_once_and_records_once(stack: Stack):
    goal = completed_order(stack, "shopper-0022")
    goal_id = goal["goalId"]
    ship(stack, goal["receipt"]["orderId"])
    stack.api.undo(goal_id)
    return_id = stack.api.wait_for(goal_id, {"RETURN_REQUESTED"}, timeout=60)["returnId"]

    for _ in range(2):
        assert stack.merchant.post(f"/_sandbox/returns/{return_id}/receive").status_code == 200
    stack.api.wait_for(goal_id, {"RETURNED"}, timeout=30)
    assert stack.api.undo(goal_id).json() == {"goalId": goal_id, "status": "RETURNED", "undo": "done"}

    ledger = stack.ledger()
    assert len(ledger["charges"]) == 1 and len(ledger["refunds"]) == 1 and len(ledger["returns"]) == 1
    assert stack.events(goal_id).count("goal.returned") == 1
    assert len(outbox_of(stack, goal_id, "returned")) == 1


def test_receiving_an_unknown_return_is_refused_and_changes_nothing(stack: Stack):
    goal = completed_order(stack, "shopper-0023")
    ship(stack, goal["receipt"]["orderId"])

    unknown = stack.merchant.post("/_sandbox/returns/ret_nope/receive")
    assert unknown.status_code == 404
    assert stack.ledger()["refunds"] == [] and stack.api.goal(goal["goalId"])["status"] == "COMPLETED"


@pytest.fixture(scope="module")
def short_window(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    root = tmp_path_factory.mktemp("returns")
    brands = brand_variant(root, "shortreturns", undoWindowSeconds=SHORT_WINDOW_SECONDS)
    with running_stack_process(root / "stack.log", brand="shortreturns", brands_dir=brands) as running:
        yield running


def test_undo_of_a_shipped_order_after_the_window_is_refused_and_files_nothing(short_window: StackProcess):
    api = CartPilotClient(short_window.api_url)
    goal_id = api.submit("shopper-0024", LOW_RISK_GOAL).json()["goalId"]
    goal = api.wait_for(goal_id, timeout=60)
    assert goal["status"] == "COMPLETED"
    shipped = httpx.post(
        f"{short_window.merchant_url}/_sandbox/orders/{goal['receipt']['orderId']}/ship", json={}
    )
    assert shipped.status_code == 200
    # The window is the goal's deadline: wait it out.
    undo_until = datetime.fromisoformat(goal["undoUntil"])
    closed = wait_until(lambda: datetime.now(UTC) > undo_until, timeout=SHORT_WINDOW_SECONDS + 30)
    assert closed

    refused = api.undo(goal_id)

    assert refused.status_code == 409 and refused.json()["error"]["code"] == "UNDO_WINDOW_CLOSED"
    after = api.goal(goal_id)
    assert after["status"] == "COMPLETED" and after["returnId"] is None
    ledger = short_window.ledger()
    assert "returns" not in ledger and ledger["refunds"] == [] and len(ledger["charges"]) == 1
