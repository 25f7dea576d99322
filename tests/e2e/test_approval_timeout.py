"""Nobody approves in time: the goal ends EXPIRED, nothing runs, and a late approval changes nothing.

The approval timeout is a brand setting (brand.yaml ``approvalTimeoutSeconds``, at least
10 s) that reaches the flow through the execution input. The shared test stack runs the
sandbox brand (one day), and only one local stack fits in a process, so this module runs
its own: ``cartpilot local`` in a subprocess, for a copy of the sandbox brand whose
approval timeout is the minimum.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from cartpilot_local.client import CartPilotClient
from tests.conftest import SEED_GOAL
from tests.e2e.stack_process import StackProcess, brand_variant, running_stack_process

APPROVAL_TIMEOUT_SECONDS = 10


@pytest.fixture(scope="module")
def brisk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    root = tmp_path_factory.mktemp("brisk")
    brands = brand_variant(root, "brisk", approvalTimeoutSeconds=APPROVAL_TIMEOUT_SECONDS)
    with running_stack_process(root / "stack.log", brand="brisk", brands_dir=brands) as running:
        yield running


def test_nobody_approving_in_time_expires_the_goal_and_a_late_approval_changes_nothing(brisk: StackProcess):
    api = CartPilotClient(brisk.api_url)
    try:
        goal_id = api.submit("user-1", SEED_GOAL).json()["goalId"]
        link = api.wait_for_approval_link(goal_id)
        assert api.open_link(link).status_code == 200

        expired = api.wait_for(goal_id, {"EXPIRED"}, timeout=APPROVAL_TIMEOUT_SECONDS + 30)
        assert expired["status"] == "EXPIRED" and expired["reason"]["code"] == "APPROVAL_EXPIRED"
        assert int(link.exp) > time.time(), "the link itself is still within its lifetime"
        before = (api.goal(goal_id), api.audit(goal_id)["records"])

        late = [api.decide(link, "approve"), api.decide(link, "approve", as_json=True), api.open_link(link)]
        assert [response.status_code for response in late] == [410, 410, 410]
        assert "no longer waiting" in late[0].text
        assert (api.goal(goal_id), api.audit(goal_id)["records"]) == before

        events = [record["event"] for record in before[1]]
        assert (
            "goal.expired" in events
            and "approval.approved" not in events
            and "execution.started" not in events
        )
        assert expired["steps"] == [] and expired["receipt"] is None
        assert brisk.ledger() == {"orders": [], "charges": [], "refunds": []}
        notices = [m for m in api.outbox() if m.get("goalId") == goal_id and m["kind"] == "outcome"]
        assert [notice["status"] for notice in notices] == ["EXPIRED"]
    finally:
        api.close()
