"""Issue 11, row 1: an order only staff may approve is never the shopper's to decide.

Wine is a restricted category the sandbox brand sends to staff. The approval link goes to the brand's
staff channel only; the shopper is told the order awaits staff review and gets no link. A staff link
decides nothing on the public approval route, nor on the staff route for a caller who is not listed
staff; listed staff decide on the staff route (IAM on AWS, ``X-Local-Principal`` on the local stack),
and the audit and the goal name the member who did.
"""

from __future__ import annotations

import time
from typing import Any

from cartpilot_local.client import ApprovalLink
from tests.e2e.conftest import Stack

STAFF_GOAL = "Buy me a bottle of wine for me"
SHOPPER_GOAL = "Buy me 2 pairs of running shoes, size 42, and gift-wrap them"
NOTHING_BOUGHT = {"orders": [], "charges": [], "refunds": []}
PRINCIPAL = "X-Local-Principal"


def messages_once_waiting(stack: Stack, goal_id: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    """The goal's notifications once it waits for approval and its approval request has gone out."""
    deadline = time.monotonic() + timeout
    while True:
        goal = stack.api.goal(goal_id)
        mine = [message for message in stack.api.outbox() if message.get("goalId") == goal_id]
        # The staff's request goes out first and the shopper's notice after it: wait for both.
        requested = any(m["kind"] == "approval_request" for m in mine)
        told = any(
            m.get("audience", "shopper") == "shopper" and m["kind"] != "approval_request" for m in mine
        )
        if goal["status"] == "AWAITING_APPROVAL" and requested and told:
            return mine
        assert goal["status"] in {"RECEIVED", "PLANNING", "VALIDATING", "AWAITING_APPROVAL"}, goal
        assert time.monotonic() < deadline, f"{goal_id} is still {goal['status']}"
        time.sleep(0.05)


def post(stack: Stack, url: str, link: ApprovalLink, principal: str | None = None) -> int:
    headers = {PRINCIPAL: principal} if principal else {}
    fields = {"exp": link.exp, "kid": link.kid, "sig": link.sig, "decision": "approve"}
    return stack.api.http.post(url, data=fields, headers=headers).status_code


def test_staff_approval_reaches_staff_only_and_only_listed_staff_decide(stack: Stack):
    goal_id = stack.api.submit("user-1", STAFF_GOAL).json()["goalId"]
    messages = messages_once_waiting(stack, goal_id)
    waiting = stack.api.goal(goal_id)
    assert waiting["verdict"]["approver"] == "staff"

    # The shopper is told, and holds nothing that can decide.
    to_shopper = [m for m in messages if m.get("audience", "shopper") == "shopper"]
    assert to_shopper, "the shopper hears nothing"
    assert all("link" not in m and "/approvals/" not in str(m) for m in to_shopper), to_shopper
    assert any("staff" in m["subject"].lower() for m in to_shopper)
    (to_staff,) = [m for m in messages if m.get("audience") == "staff"]
    link = ApprovalLink.parse(to_staff["link"])
    assert "/staff/approvals/" in link.url
    trail_before = stack.api.audit(goal_id)["records"]

    # Leaked to the shopper: the public route refuses it (page and decision), as does a shopper's
    # client on the staff route, and a caller no brand lists.
    public = f"{stack.local.api_url}/approvals/{link.approval_id}"
    params = {"exp": link.exp, "kid": link.kid, "sig": link.sig}
    assert stack.api.http.get(public, params=params).status_code == 403
    assert post(stack, public, link) == 403
    assert post(stack, public, link, principal="staff-1") == 403
    assert post(stack, link.post_url, link, principal="assistant") == 403
    assert post(stack, link.post_url, link, principal="intruder") == 403
    assert stack.api.http.get(link.url, headers={PRINCIPAL: "assistant"}).status_code == 403

    refused = stack.api.goal(goal_id)
    assert refused["status"] == "AWAITING_APPROVAL" and refused["approval"]["status"] == "PENDING"
    assert stack.api.audit(goal_id)["records"] == trail_before
    assert stack.ledger() == NOTHING_BOUGHT

    # Listed staff see the page and decide; the audit and the goal name who.
    page = stack.api.http.get(link.url, headers={PRINCIPAL: "staff-1"})
    assert page.status_code == 200 and "wine" in page.text.lower()
    assert post(stack, link.post_url, link, principal="staff-1") == 200
    done = stack.api.wait_for(goal_id)
    assert done["status"] == "COMPLETED"
    assert done["approval"]["decidedBy"] == "staff:staff-1"
    ledger = stack.ledger()
    assert len(ledger["orders"]) == 1 and len(ledger["charges"]) == 1
    approved = [r for r in stack.api.audit(goal_id)["records"] if r["event"] == "approval.approved"]
    assert [record["actor"] for record in approved] == ["approver:staff:staff-1"]


def test_staff_reject_names_the_member(stack: Stack):
    goal_id = stack.api.submit("user-2", STAFF_GOAL).json()["goalId"]
    (to_staff,) = [m for m in messages_once_waiting(stack, goal_id) if m.get("audience") == "staff"]
    link = ApprovalLink.parse(to_staff["link"])
    fields = {"exp": link.exp, "kid": link.kid, "sig": link.sig, "decision": "reject"}
    answer = stack.api.http.post(link.post_url, data=fields, headers={PRINCIPAL: "staff-1"})
    assert answer.status_code == 200
    done = stack.api.wait_for(goal_id)
    assert done["status"] == "REJECTED" and done["approval"]["decidedBy"] == "staff:staff-1"
    assert stack.ledger() == NOTHING_BOUGHT
    rejected = [r for r in stack.api.audit(goal_id)["records"] if r["event"] == "approval.rejected"]
    assert [record["actor"] for record in rejected] == ["approver:staff:staff-1"]


def test_a_shopper_approval_cannot_be_decided_on_the_staff_route(stack: Stack):
    goal_id = stack.api.submit("user-3", SHOPPER_GOAL).json()["goalId"]
    link = stack.api.wait_for_approval_link(goal_id)
    staff_url = f"{stack.local.api_url}/staff/approvals/{link.approval_id}"
    assert post(stack, staff_url, link, principal="staff-1") == 403
    assert stack.api.goal(goal_id)["approval"]["status"] == "PENDING"
    assert stack.api.decide(link, "reject").status_code == 200
    assert stack.api.wait_for(goal_id)["status"] == "REJECTED"
    assert stack.ledger() == NOTHING_BOUGHT
