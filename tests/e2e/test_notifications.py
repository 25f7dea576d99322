"""Every ending told, receipts by email, the email fallback and approval reminders, end to end."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cartpilot_local.client import CartPilotClient
from tests.conftest import SEED_GOAL
from tests.e2e.conftest import LOW_RISK_GOAL, Stack
from tests.e2e.stack_process import StackProcess, brand_variant, running_stack_process

COMPLETE = "POST /checkout-sessions/{id}/complete"
Outbox = Callable[[], list[dict[str, Any]]]


def wait_for_messages(
    outbox: Outbox, match: Callable[[dict[str, Any]], bool], *, count: int = 1, timeout: float = 30
) -> list[dict[str, Any]]:
    """The matching messages once there are ``count`` of them (the sweep runs every second locally)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [message for message in outbox() if match(message)]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def about(goal_id: str, kind: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    return lambda m: (
        m.get("goalId") == goal_id
        and m.get("kind") == kind
        and all(m.get(name) == value for name, value in fields.items())
    )


def test_a_compensated_goal_is_told_to_the_shopper_and_the_brand(stack: Stack) -> None:
    stack.inject_fault(COMPLETE, "error_400", times=1)
    goal_id = stack.api.submit("user-1", LOW_RISK_GOAL).json()["goalId"]
    goal = stack.api.wait_for(goal_id)
    assert goal["status"] == "COMPENSATED" and stack.ledger()["charges"] == []

    (brand,) = wait_for_messages(stack.api.outbox, about(goal_id, "goal-status", status="COMPENSATED"))
    (shopper,) = wait_for_messages(stack.api.outbox, about(goal_id, "outcome", status="COMPENSATED"))
    assert brand["audience"] == "brand" and shopper["userId"] == "user-1"
    assert shopper["reason"] == goal["reason"]["message"] == brand["reason"]
    assert "error_400" not in str(shopper) and "MerchantRejected" not in str(shopper)
    # Both carry the change's stable id (a repeat after a lost mark is recognisable); the shopper's
    # notice links to their view of the goal, as the receipt does, and the brand's never does.
    assert shopper["noticeId"] == brand["noticeId"] == f"{goal_id}:COMPENSATED"
    assert "viewUrl" not in brand
    page = stack.api.http.get(shopper["viewUrl"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


def test_an_undone_goal_is_told_once_and_its_receipt_was_emailed(stack: Stack) -> None:
    goal_id = stack.api.submit("user-1", LOW_RISK_GOAL).json()["goalId"]
    done = stack.api.wait_for(goal_id)
    assert done["status"] == "COMPLETED"

    (email,) = wait_for_messages(stack.api.outbox, about(goal_id, "receipt", channel="email"))
    assert done["receipt"]["orderId"] in email["html"] and "Sandbox Outfitters" in email["html"]
    assert done["receipt"]["orderId"] in email["text"] and "<" not in email["text"]
    assert "lin.wei@example.com" not in str(email)
    assert "Sandbox Outfitters" in email["from"]

    assert stack.api.undo(goal_id).status_code in (200, 202)
    assert stack.api.wait_for(goal_id, {"UNDONE"})["status"] == "UNDONE"
    wait_for_messages(stack.api.outbox, about(goal_id, "goal-status", status="UNDONE"))
    (shopper,) = wait_for_messages(stack.api.outbox, about(goal_id, "outcome", status="UNDONE"))
    assert "refunded" in shopper["reason"]
    # The brand heard of both endings, each once, in order.
    statuses = [m["status"] for m in stack.api.outbox() if about(goal_id, "goal-status")(m)]
    assert statuses == ["COMPLETED", "UNDONE"]
    assert len(stack.ledger()["refunds"]) == 1


def test_when_the_topic_fails_the_receipt_goes_by_email_and_the_audit_says_so(stack: Stack) -> None:
    stack.local.topic_outage.fail_for("user-2")
    try:
        goal_id = stack.api.submit("user-2", LOW_RISK_GOAL).json()["goalId"]
        assert stack.api.wait_for(goal_id)["status"] == "COMPLETED"
        (email,) = wait_for_messages(stack.api.outbox, about(goal_id, "receipt", channel="email"))
        assert not [m for m in stack.api.outbox() if about(goal_id, "receipt")(m) and "channel" not in m]
        # The brand's notice waits while the topic is down ...
        assert not [m for m in stack.api.outbox() if about(goal_id, "goal-status")(m)]
    finally:
        stack.local.topic_outage.end()
    # ... and goes once it is back.
    (brand,) = wait_for_messages(stack.api.outbox, about(goal_id, "goal-status", status="COMPLETED"))
    assert brand["audience"] == "brand" and brand["userId"] == "user-2"
    records = stack.api.audit(goal_id)["records"]
    delivered = [r["detail"] for r in records if r["event"] == "notification.delivered"]
    assert delivered == [{"kind": "receipt", "channel": "email", "fallbackFrom": "sns"}]
    assert "chen.jing@example.com" not in str(records)
    assert email["kind"] == "receipt"


# --- reminders: a stack of its own, whose approval links live twenty seconds -------------------------

LINK_TTL_SECONDS = 20


@pytest.fixture(scope="module")
def brief_links(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    root = tmp_path_factory.mktemp("brief-links")
    brands = brand_variant(
        root,
        "brieflinks",
        approvalLinkTtlSeconds=LINK_TTL_SECONDS,
        approvalReminderLeadSeconds=LINK_TTL_SECONDS,
    )
    with running_stack_process(root / "stack.log", brand="brieflinks", brands_dir=brands) as running:
        yield running


def test_one_reminder_before_the_link_expires_and_none_after_a_decision(brief_links: StackProcess) -> None:
    api = CartPilotClient(brief_links.api_url)
    try:
        waiting = api.submit("user-1", SEED_GOAL).json()["goalId"]
        decided = api.submit("user-1", SEED_GOAL).json()["goalId"]
        link = api.wait_for_approval_link(waiting)
        decided_link = api.wait_for_approval_link(decided)
        assert api.decide(decided_link, "reject").status_code == 200

        (reminder,) = wait_for_messages(
            api.outbox, about(waiting, "approval-reminder"), timeout=LINK_TTL_SECONDS
        )
        assert reminder["link"] == link.url
        assert int(link.exp) > time.time(), "the reminder came before the link expired"
        # Past the link's expiry: still that one reminder, and none for the decided approval.
        while time.time() <= int(link.exp) + 2:
            time.sleep(0.2)
        assert len([m for m in api.outbox() if about(waiting, "approval-reminder")(m)]) == 1
        assert not [m for m in api.outbox() if about(decided, "approval-reminder")(m)]
        events = [r["event"] for r in api.audit(waiting)["records"]]
        assert events.count("approval.reminded") == 1
    finally:
        api.close()
