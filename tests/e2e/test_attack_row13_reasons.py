"""Issue 11, row 13: raw error text (an exception's message, the merchant's words, validation
errors with their links) became the shopper's failure reason and notification. The shopper now
reads a reason from a closed set; the details stay in the audit, masked.
"""

from __future__ import annotations

import json
import time
from typing import Any

from cartpilot.goals.reasons import REASON_MESSAGES, ReasonCode
from tests.e2e.conftest import Stack

NOTHING_BOUGHT = {"orders": [], "charges": [], "refunds": []}
SHOPPER_WORDS = set(REASON_MESSAGES.values())


def _shopper_sees(stack: Stack, goal: dict[str, Any], code: ReasonCode) -> list[dict[str, Any]]:
    """The goal view and the goal's outcome notifications carry ``code`` and its words, nothing else."""
    assert goal["reason"] == {"code": code.value, "message": REASON_MESSAGES[code]}
    assert goal["failure"] == REASON_MESSAGES[code]
    told = _notifications(stack, goal["goalId"], expect=goal["status"] == "FAILED")
    for message in told:
        assert message["reason"] in SHOPPER_WORDS and message["reasonCode"] == code.value
    return told


def _notifications(stack: Stack, goal_id: str, *, expect: bool) -> list[dict[str, Any]]:
    """The goal's notifications that give a reason. The flow writes the status before it notifies,
    so an expected notice is polled for (as the client polls for a status)."""
    deadline = time.monotonic() + 30
    while True:
        told = [
            m
            for m in stack.api.outbox()
            # The brand's own status event (``"audience": "brand"``) carries the same sentence.
            if m.get("goalId") == goal_id and "reason" in m and m.get("audience") != "brand"
        ]
        if told or not expect or time.monotonic() > deadline:
            return told
        time.sleep(0.05)


def test_a_date_not_on_the_calendar_is_a_reason_from_the_set(stack: Stack) -> None:
    goal_id = stack.api.submit(
        "shopper-0503", "Buy me a pair of running socks, deliver before Feb 30; call 139 1088 2266"
    ).json()["goalId"]
    goal = stack.api.wait_for(goal_id)

    assert goal["status"] == "FAILED"
    assert len(_shopper_sees(stack, goal, ReasonCode.REQUEST_UNCLEAR)) == 1
    assert stack.ledger() == NOTHING_BOUGHT
    (failed,) = [r for r in stack.api.audit(goal_id)["records"] if r["event"] == "goal.failed"]
    assert failed["detail"]["reasonCode"] == "REQUEST_UNCLEAR"
    assert "date" in failed["detail"]["reason"]  # the planner's own words, for whoever reads the audit
    assert "2266" not in json.dumps(stack.api.audit(goal_id)["records"])


def test_the_merchants_refusal_is_a_reason_from_the_set(stack: Stack) -> None:
    stack.inject_fault("POST /checkout-sessions/{id}/complete", "error_400")
    goal_id = stack.api.submit(
        "shopper-0504", "Buy me a pair of running socks and ship them to my home address"
    ).json()["goalId"]
    goal = stack.api.wait_for(goal_id)

    assert goal["status"] == "COMPENSATED"
    _shopper_sees(stack, goal, ReasonCode.MERCHANT_REFUSED)
    ledger = stack.ledger()
    assert ledger["charges"] == [] and ledger["orders"] == []
    records = stack.api.audit(goal_id)["records"]
    (undone,) = [r for r in records if r["event"] == "compensation.completed"]
    assert undone["detail"]["reason"] and undone["detail"]["reason"] not in SHOPPER_WORDS
