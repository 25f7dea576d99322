"""Issue 11, row 5: the approval page showed the goal verbatim, so a phone number, an email and a
street the shopper typed reached whoever held the link. The page, the notifications and the audit
now show the goal with personal data masked.
"""

from __future__ import annotations

import json

from tests.e2e.conftest import Stack

GOAL = (
    "Buy me 2 pairs of running shoes, size 42, and gift-wrap them. "
    "Questions: call 139 1088 2266 or write to lin.wei@example.com; the door code is at 12 Baker Street"
)
PERSONAL = ("1088", "2266", "lin.wei", "example.com", "Baker", "12 Baker Street")
NOTHING_BOUGHT = {"orders": [], "charges": [], "refunds": []}


def test_the_approval_page_notifications_and_audit_hold_no_personal_data(stack: Stack) -> None:
    goal_id = stack.api.submit("shopper-0501", GOAL).json()["goalId"]
    link = stack.api.wait_for_approval_link(goal_id)

    page = stack.api.open_link(link)
    assert page.status_code == 200
    assert "running shoes" in page.text and "size 42" in page.text  # the goal is still shown
    for personal in PERSONAL:
        assert personal not in page.text, personal

    assert stack.api.decide(link, "reject").status_code == 200
    goal = stack.api.wait_for(goal_id)
    assert goal["status"] == "REJECTED"
    assert stack.ledger() == NOTHING_BOUGHT

    notifications = json.dumps(
        [m for m in stack.api.outbox() if m.get("goalId") == goal_id], ensure_ascii=False
    )
    audit = stack.api.audit(goal_id)
    assert audit["verification"]["valid"] is True
    records = json.dumps(audit["records"], ensure_ascii=False)
    assert "running shoes" in records
    for personal in PERSONAL:
        assert personal not in notifications, personal
        assert personal not in records, personal
