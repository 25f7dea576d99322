"""After the undo window the order is final: an undo request changes nothing.

Runs its own stack (see stack_process.py) for a copy of the sandbox brand whose undo
window is a few seconds, so the window really closes during the test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from cartpilot_local.client import CartPilotClient
from tests.e2e.conftest import LOW_RISK_GOAL
from tests.e2e.stack_process import StackProcess, brand_variant, running_stack_process

UNDO_WINDOW_SECONDS = 4


@pytest.fixture(scope="module")
def short_window(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    root = tmp_path_factory.mktemp("undo")
    brands = brand_variant(root, "shortundo", undoWindowSeconds=UNDO_WINDOW_SECONDS)
    with running_stack_process(root / "stack.log", brand="shortundo", brands_dir=brands) as running:
        yield running


def wait_until(moment: datetime) -> None:
    while (left := (moment - datetime.now(UTC)).total_seconds()) > 0:
        time.sleep(min(left, 0.5))


def test_undo_after_the_window_is_refused_and_the_order_stands(short_window: StackProcess):
    api = CartPilotClient(short_window.api_url)
    goal_id = api.submit("shopper-0007", LOW_RISK_GOAL).json()["goalId"]
    assert api.wait_for(goal_id, timeout=60)["status"] == "COMPLETED"

    # The window is the goal's deadline: nothing waits on it, and once it has passed ...
    undo_until = datetime.fromisoformat(api.goal(goal_id)["undoUntil"])
    wait_until(undo_until + timedelta(seconds=1))

    # ... an undo is refused and starts nothing.
    refused = api.undo(goal_id)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "UNDO_WINDOW_CLOSED"
    goal = api.goal(goal_id)
    assert goal["status"] == "COMPLETED"
    ledger = short_window.ledger()
    assert len(ledger["charges"]) == 1 and ledger["refunds"] == []
    assert api.audit(goal_id)["verification"]["valid"]
