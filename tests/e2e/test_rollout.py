"""Staged rollout on the running local stack: what each stage lets through, and the kill switch."""

from __future__ import annotations

import itertools
import time

from tests.e2e.conftest import LOW_RISK_GOAL, Stack

APPROVAL_GOAL = "Buy me 2 pairs of running shoes, size 42, and gift-wrap them"
NOTHING_BOUGHT = {"orders": [], "charges": [], "refunds": []}

# Fresh generated shoppers: the brand's per-user daily limits must not deny these goals.
_shoppers = itertools.count(401)


def _shopper() -> str:
    return f"shopper-{next(_shoppers):04d}"


def _bought_nothing(stack: Stack) -> bool:
    ledger = stack.ledger()
    return all(ledger.get(kind, []) == [] for kind in NOTHING_BOUGHT)


def _outcome_notices(stack: Stack, goal_id: str) -> list[dict]:
    return [m for m in stack.api.outbox() if m.get("goalId") == goal_id and m.get("kind") == "outcome"]


def test_read_only_plans_and_checks_but_buys_nothing(stack: Stack) -> None:
    stack.rollout(stage="read-only", reason="dry run before launch")
    goal_id = stack.api.submit(_shopper(), LOW_RISK_GOAL).json()["goalId"]

    goal = stack.api.wait_for(goal_id)

    assert goal["status"] == "PLANNED_ONLY"
    assert goal["plan"] is not None and goal["verdict"]["route"] == "planned-only"
    assert goal["plannedOnly"] == {"reason": "ROLLOUT_READ_ONLY", "wouldRoute": "auto", "tier": "AUTO"}
    assert goal["reason"]["code"] == "ROLLOUT_READ_ONLY"
    assert _bought_nothing(stack)
    events = stack.events(goal_id)
    assert "plan.validated" in events and "step.executed" not in events
    assert [m["status"] for m in _outcome_notices(stack, goal_id)] == ["PLANNED_ONLY"]


def test_read_only_sends_no_approval_link_and_keeps_denials_denied(stack: Stack) -> None:
    stack.rollout(stage="read-only", reason="dry run before launch")
    waiting = stack.api.submit(_shopper(), APPROVAL_GOAL).json()["goalId"]
    denied = stack.api.submit(_shopper(), "Buy me running shoes size 42 under 100 CNY").json()["goalId"]

    planned = stack.api.wait_for(waiting)
    assert planned["status"] == "PLANNED_ONLY"
    assert planned["plannedOnly"]["wouldRoute"] == "approve"
    assert not [
        m for m in stack.api.outbox() if m.get("goalId") == waiting and m.get("kind") == "approval_request"
    ]
    assert stack.api.wait_for(denied)["status"] == "DENIED"
    assert _bought_nothing(stack)


def test_pilot_users_buy_and_the_others_only_plan(stack: Stack) -> None:
    stack.rollout(stage="pilot", pilot_users=["user-1"], pilot_percent=0, reason="pilot with user-1")
    stack.forget_order_counts()
    pilot = stack.api.submit("user-1", LOW_RISK_GOAL).json()["goalId"]
    other = stack.api.submit("user-2", LOW_RISK_GOAL).json()["goalId"]

    assert stack.api.wait_for(pilot)["status"] == "COMPLETED"
    held = stack.api.wait_for(other)
    assert held["status"] == "PLANNED_ONLY"
    assert held["plannedOnly"]["reason"] == "ROLLOUT_PILOT_EXCLUDED"
    assert len(stack.ledger()["orders"]) == 1


def test_stage_off_refuses_goals_and_stores_nothing(stack: Stack) -> None:
    stack.rollout(stage="off", reason="incident")
    response = stack.api.submit(_shopper(), LOW_RISK_GOAL)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "ROLLOUT_OFF"
    # The same key goes through once the brand is back on: nothing was kept of the refused request.
    stack.rollout(stage="all", reason="incident over")


def test_the_kill_switch_stops_an_approved_goal_before_its_first_step(stack: Stack) -> None:
    goal_id = stack.api.submit(_shopper(), APPROVAL_GOAL).json()["goalId"]
    link = stack.api.wait_for_approval_link(goal_id)

    stack.rollout(kill_switch=True, reason="merchant double-charging")
    # Decided design: the approval is still recorded; the first mutating step then halts.
    assert stack.api.decide(link, "approve").status_code == 200
    goal = stack.api.wait_for(goal_id)

    assert goal["status"] == "COMPENSATED"
    assert goal["reason"]["code"] == "ROLLOUT_HALTED"
    assert _bought_nothing(stack)
    assert "RolloutHalted" in stack.task_errors(goal_id)
    assert "step.executed" not in stack.events(goal_id)


def test_the_kill_switch_stops_a_goal_between_its_steps(stack: Stack) -> None:
    # The payment keeps failing (merchant 500s before it does anything) until the switch flips, so
    # the flow is between the fulfillment step and its retried payment: the retry must not start.
    stack.inject_fault("POST /checkout-sessions/{id}/complete", "error_500", times=50)
    goal_id = stack.api.submit(_shopper(), LOW_RISK_GOAL).json()["goalId"]
    deadline = time.monotonic() + 60
    while stack.events(goal_id).count("step.executed") < 2:
        assert time.monotonic() < deadline, "checkout and fulfillment never ran"
        time.sleep(0.05)

    stack.rollout(kill_switch=True, reason="merchant double-charging")
    goal = stack.api.wait_for(goal_id)

    assert goal["status"] == "COMPENSATED"
    assert goal["reason"]["code"] == "ROLLOUT_HALTED"
    executed = [
        record["detail"]["action"]
        for record in stack.api.audit(goal_id)["records"]
        if record["event"] == "step.executed"
    ]
    assert executed and "payment.complete" not in executed
    assert "RolloutHalted" in stack.task_errors(goal_id)
    ledger = stack.ledger()
    assert ledger["orders"] == [] and ledger["charges"] == []


def test_dropping_to_read_only_stops_a_goal_approved_after_the_drop(stack: Stack) -> None:
    goal_id = stack.api.submit(_shopper(), APPROVAL_GOAL).json()["goalId"]
    link = stack.api.wait_for_approval_link(goal_id)

    stack.rollout(stage="read-only", reason="anomaly under investigation")
    assert stack.api.decide(link, "approve").status_code == 200
    goal = stack.api.wait_for(goal_id)

    assert (goal["status"], goal["reason"]["code"]) == ("COMPENSATED", "ROLLOUT_HALTED")
    assert "step.executed" not in stack.events(goal_id)
    assert _bought_nothing(stack)


def test_a_garbled_flags_file_fails_closed_and_a_stage_change_replaces_it(stack: Stack) -> None:
    assert stack.local.rollout is not None
    stack.local.rollout.path.write_text("{garbage", encoding="utf-8")
    shown = stack.api.http.get("/_local/rollout")
    assert (
        shown.status_code == 200
        and shown.json()["settings"] is None
        and "fail closed" in shown.json()["problem"]
    )
    held = stack.api.wait_for(stack.api.submit(_shopper(), LOW_RISK_GOAL).json()["goalId"])
    assert held["status"] == "PLANNED_ONLY" and _bought_nothing(stack)

    refused = stack.api.http.post("/_local/rollout", json={"killSwitch": False, "reason": "recover"})
    assert refused.status_code == 400 and "set a stage" in refused.json()["error"]["message"]
    stack.rollout(stage="all", reason="recover from a hand edit")
    assert stack.api.http.get("/_local/rollout").json()["settings"]["stage"] == "all"


def test_stage_changes_are_audited_and_shown(stack: Stack) -> None:
    stack.rollout(stage="pilot", pilot_users=["user-3"], reason="pilot week 1")
    stack.rollout(kill_switch=True, reason="anomaly")

    shown = stack.local.rollout.show() if stack.local.rollout else {}
    response = stack.api.http.get("/_local/rollout")

    assert response.status_code == 200 and response.json()["settings"] == shown["settings"]
    assert shown["settings"] == {
        "stage": "pilot",
        "pilotUsers": ["user-3"],
        "pilotPercent": 0,
        "killSwitch": True,
    }
    first, second = shown["changes"][-2:]
    assert (first["actor"], first["from"]["stage"], first["to"]["stage"], first["reason"]) == (
        "operator:test", "all", "pilot", "pilot week 1",
    )  # fmt: skip
    assert (second["from"]["killSwitch"], second["to"]["killSwitch"], second["reason"]) == (
        False,
        True,
        "anomaly",
    )
    refused = stack.api.http.post("/_local/rollout", json={"stage": "sometimes", "reason": "x"})
    assert refused.status_code == 400
    assert stack.api.http.get("/_local/rollout").json()["settings"] == shown["settings"]
