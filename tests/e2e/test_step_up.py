"""Step-up verification on the running local stack: an order of 2,000 CNY or more needs the one-time
code sent to the shopper's phone as well as the approval."""

from __future__ import annotations

import itertools
import re
import threading
import time
from typing import Any

import httpx

from cartpilot_local.client import ApprovalLink
from tests.e2e.conftest import Stack

# Five pairs and gift-wrap: over 2,000.00 CNY (a typed phrase too, and a code).
LARGE_GOAL = "Buy me 5 pairs of running shoes, size 42, and gift-wrap them"
_shoppers = itertools.count(301)


def waiting_goal(stack: Stack) -> tuple[str, ApprovalLink, str]:
    """A large goal waiting for approval, its link and its confirmation phrase."""
    goal_id = stack.api.submit(f"shopper-{next(_shoppers):04d}", LARGE_GOAL).json()["goalId"]
    link = stack.api.wait_for_approval_link(goal_id)
    request = next(
        m for m in stack.api.outbox() if m.get("goalId") == goal_id and m.get("kind") == "approval_request"
    )
    assert request["stepUp"] is True
    return goal_id, link, request["phrase"]


def post(stack: Stack, link: ApprovalLink, decision: str, **fields: str) -> httpx.Response:
    form = {"exp": link.exp, "kid": link.kid, "sig": link.sig, "decision": decision, **fields}
    return stack.api.http.post(link.post_url, data=form)


def texts_for(stack: Stack, goal_id: str) -> list[str]:
    return [
        m["text"] for m in stack.api.outbox() if m.get("kind") == "verification-code" and goal_id in m["text"]
    ]


def send_code(stack: Stack, link: ApprovalLink, goal_id: str) -> str:
    """Asks the page for a code and reads it from the phone's messages (the outbox locally)."""
    sent_before = len(texts_for(stack, goal_id))
    response = post(stack, link, "send-code")
    assert response.status_code == 200 and 'data-testid="notice"' in response.text
    deadline = time.monotonic() + 10
    while len(texts_for(stack, goal_id)) == sent_before:
        assert time.monotonic() < deadline, "no code reached the outbox"
        time.sleep(0.05)
    match = re.match(r"(\d{6}) is your CartPilot code", texts_for(stack, goal_id)[-1])
    assert match is not None
    return match.group(1)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def charges(stack: Stack) -> list[dict[str, Any]]:
    return stack.ledger()["charges"]


def refused_codes(stack: Stack, goal_id: str) -> list[dict[str, Any]]:
    return [r for r in stack.api.audit(goal_id)["records"] if r["event"] == "approval.code-refused"]


def test_approving_without_the_code_changes_nothing(stack: Stack):
    goal_id, link, phrase = waiting_goal(stack)
    page = stack.api.open_link(link)
    assert page.status_code == 200 and 'name="otp"' in page.text
    assert stack.api.goal(goal_id)["verdict"]["stepUp"] is True

    response = post(stack, link, "approve", phrase=phrase)
    assert response.status_code == 422 and "six-digit code" in response.text
    assert stack.api.goal(goal_id)["status"] == "AWAITING_APPROVAL"
    assert charges(stack) == [] and stack.ledger()["orders"] == []
    assert [r["detail"]["reason"] for r in refused_codes(stack, goal_id)] == ["missing"]

    # Rejecting needs no code.
    assert post(stack, link, "reject").status_code == 200
    assert stack.api.wait_for(goal_id)["status"] == "REJECTED"


def test_the_right_code_from_the_outbox_completes_the_order(stack: Stack):
    goal_id, link, phrase = waiting_goal(stack)
    code = send_code(stack, link, goal_id)
    response = post(stack, link, "approve", phrase=phrase, otp=code)
    assert response.status_code == 200 and 'data-testid="decision"' in response.text
    goal = stack.api.wait_for(goal_id)
    assert goal["status"] == "COMPLETED"
    assert len(charges(stack)) == 1 and len(stack.ledger()["orders"]) == 1
    events = stack.events(goal_id)
    assert {"approval.code-sent", "approval.code-accepted", "approval.approved"} <= set(events)
    # Neither the code nor the phone number is in the audit.
    audit_text = str(stack.api.audit(goal_id))
    assert code not in audit_text and "+86139" not in audit_text
    assert not any("+86" in str(m) for m in stack.api.outbox() if m.get("kind") == "verification-code")


def test_five_wrong_codes_lock_the_approval_and_the_shopper_is_told(stack: Stack):
    goal_id, link, phrase = waiting_goal(stack)
    code = send_code(stack, link, goal_id)
    for left in (4, 3, 2, 1):
        response = post(stack, link, "approve", phrase=phrase, otp=wrong(code))
        assert response.status_code == 422 and f"{left} attempts left" in response.text
        assert stack.api.goal(goal_id)["status"] == "AWAITING_APPROVAL"
    locked = post(stack, link, "approve", phrase=phrase, otp=wrong(code))
    assert locked.status_code == 423 and "APPROVAL_LOCKED" in locked.text

    # The right code afterwards changes nothing.
    after = post(stack, link, "approve", phrase=phrase, otp=code)
    assert after.status_code == 200 and "locked after too many wrong codes" in after.text
    goal = stack.api.wait_for(goal_id)
    assert goal["status"] == "REJECTED"
    assert charges(stack) == [] and stack.ledger()["orders"] == []
    assert len(refused_codes(stack, goal_id)) == 5 and "approval.locked" in stack.events(goal_id)
    assert "approval.approved" not in stack.events(goal_id)
    deadline = time.monotonic() + 10
    while True:
        told = [m for m in stack.api.outbox() if m.get("goalId") == goal_id and m.get("kind") == "outcome"]
        if told or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert [m["reasonCode"] for m in told] == ["VERIFICATION_LOCKED"]


def test_parallel_posts_of_one_code_use_it_once(stack: Stack):
    goal_id, link, phrase = waiting_goal(stack)
    code = send_code(stack, link, goal_id)
    barrier = threading.Barrier(6)
    statuses: list[int] = []

    def approve() -> None:
        with httpx.Client(timeout=30) as client:
            barrier.wait(timeout=10)
            form = {"exp": link.exp, "kid": link.kid, "sig": link.sig, "decision": "approve",
                    "phrase": phrase, "otp": code}  # fmt: skip
            statuses.append(client.post(link.post_url, data=form).status_code)

    threads = [threading.Thread(target=approve) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # The repeats of the right code are no guesses: none counts, none locks the approval it approved.
    assert len(statuses) == 6 and statuses.count(200) >= 1 and 423 not in statuses
    assert stack.api.wait_for(goal_id)["status"] == "COMPLETED"
    assert len(charges(stack)) == 1
    events = stack.events(goal_id)
    assert events.count("approval.code-accepted") == 1 and events.count("approval.approved") == 1
    assert "approval.locked" not in events


def test_a_code_in_the_url_instead_of_the_form_approves_nothing(stack: Stack):
    goal_id, link, phrase = waiting_goal(stack)
    code = send_code(stack, link, goal_id)
    before = stack.ledger()
    form = {"exp": link.exp, "kid": link.kid, "sig": link.sig, "decision": "approve", "phrase": phrase}
    # Logs and browser history keep URLs: the code counts only in the form's body.
    response = httpx.post(link.post_url, params={"otp": code}, data=form, timeout=30)
    assert response.status_code == 422
    assert stack.api.goal(goal_id)["status"] == "AWAITING_APPROVAL"
    assert stack.ledger() == before
    # The code is still good from the form.
    form["otp"] = code
    assert httpx.post(link.post_url, data=form, timeout=30).status_code == 200
    assert stack.api.wait_for(goal_id)["status"] == "COMPLETED"


def test_an_order_shipped_abroad_from_the_shoppers_home_needs_the_code(stack: Stack):
    # user-3 lives in the US; the sister the goal names is saved with an address in China.
    goal_id = stack.api.submit("user-3", "Buy my sister a pair of running shoes, size 42").json()["goalId"]
    link = stack.api.wait_for_approval_link(goal_id)
    request = next(
        m for m in stack.api.outbox() if m.get("goalId") == goal_id and m.get("kind") == "approval_request"
    )
    goal = stack.api.goal(goal_id)
    assert goal["plan"]["summary"]["recipientId"] == "sister-shanghai"
    total = goal["plan"]["summary"]["total"]
    assert total["currency"] == "CNY" and total["amount_minor"] < 200000, "under the amount that needs a code"
    assert request["stepUp"] is True and goal["verdict"]["stepUp"] is True
    # The cross-border rule alone asks for the code: the total is under the step-up amount.
    assert "step-up.cross-border" in {reason["policyId"] for reason in goal["verdict"]["reasons"]}
    phrase = {"phrase": request["phrase"]} if request.get("phrase") else {}

    refused = post(stack, link, "approve", **phrase)
    assert refused.status_code == 422 and stack.api.goal(goal_id)["status"] == "AWAITING_APPROVAL"
    assert charges(stack) == []

    code = send_code(stack, link, goal_id)
    approved = post(stack, link, "approve", otp=code, **phrase)
    assert approved.status_code == 200 and 'data-testid="decision"' in approved.text
    assert stack.api.wait_for(goal_id)["status"] == "COMPLETED"
    assert len(charges(stack)) == 1 and len(stack.ledger()["orders"]) == 1
    events = stack.events(goal_id)
    assert {"approval.code-sent", "approval.code-accepted", "approval.approved"} <= set(events)
