"""Under retries, timeouts, duplicate deliveries and merchant failures, every goal ends in a clear
terminal state with exactly one order and one charge, or none."""

from __future__ import annotations

import threading
import uuid

import httpx

from cartpilot.commerce.breaker import BreakerPolicy
from tests.conftest import SEED_GOAL
from tests.e2e.conftest import LOW_RISK_GOAL, MERCHANT_READ_TIMEOUT, Stack

COMPLETE = "POST /checkout-sessions/{id}/complete"
CANCEL = "POST /checkout-sessions/{id}/cancel"
ORDER_CANCEL = "POST /orders/{id}/cancel"


def run_low_risk(stack: Stack) -> dict:
    goal_id = stack.api.submit("user-1", LOW_RISK_GOAL).json()["goalId"]
    return stack.api.wait_for(goal_id, timeout=90)


def assert_one_order_one_charge(stack: Stack, goal: dict) -> None:
    assert goal["status"] == "COMPLETED", goal["failure"]
    ledger = stack.ledger()
    assert len(ledger["orders"]) == 1 and len(ledger["charges"]) == 1 and ledger["refunds"] == []
    assert ledger["orders"][0]["id"] == goal["receipt"]["orderId"]
    assert stack.api.audit(goal["goalId"])["verification"]["valid"]


def assert_nothing_charged(stack: Stack) -> None:
    ledger = stack.ledger()
    assert ledger["charges"] == [] or len(ledger["charges"]) == len(ledger["refunds"])


def test_500_once_then_success(stack: Stack):
    stack.inject_fault(COMPLETE, "error_500", times=1)
    assert_one_order_one_charge(stack, run_low_risk(stack))


def test_429_with_retry_after(stack: Stack):
    stack.inject_fault(COMPLETE, "error_429", times=2, retry_after=1)
    assert_one_order_one_charge(stack, run_low_risk(stack))


def test_read_timeout_then_the_merchant_answers(stack: Stack):
    stack.inject_fault(
        COMPLETE, "timeout", times=1, delay_seconds=MERCHANT_READ_TIMEOUT * 2, hold_idempotency_key=True
    )
    assert_one_order_one_charge(stack, run_low_risk(stack))


def test_response_dropped_after_commit_at_checkout_completion(stack: Stack):
    # The merchant charged, the reply never arrived: the retry replays the same key and gets the order.
    stack.inject_fault(
        COMPLETE, "drop_response_after_commit", times=1, delay_seconds=MERCHANT_READ_TIMEOUT * 2
    )
    goal = run_low_risk(stack)
    assert_one_order_one_charge(stack, goal)


def test_permanent_rejection_at_payment_is_compensated(stack: Stack):
    stack.inject_fault(COMPLETE, "error_400", times=1)
    goal = run_low_risk(stack)
    assert goal["status"] == "COMPENSATED"
    ledger = stack.ledger()
    assert ledger["orders"] == [] and ledger["charges"] == []
    assert "compensation.completed" in stack.events(goal["goalId"])


def test_merchant_down_opens_the_circuit_and_compensates(stack: Stack):
    stack.inject_fault(COMPLETE, "error_500", times=1000)
    goal = run_low_risk(stack)
    assert goal["status"] == "COMPENSATED"
    assert goal["reason"]["code"] == "MERCHANT_UNAVAILABLE"
    (undone,) = [
        r for r in stack.api.audit(goal["goalId"])["records"] if r["event"] == "compensation.completed"
    ]
    assert "circuit open" in undone["detail"]["reason"]
    assert stack.ledger()["charges"] == []


def test_a_brief_brownout_heals_once_the_open_circuit_lets_a_trial_call_through(stack: Stack):
    # Just enough failures to open the checkout endpoint's breaker; the merchant is well again after.
    stack.inject_fault(COMPLETE, "error_500", times=BreakerPolicy().fail_max)
    goal = run_low_risk(stack)
    assert_one_order_one_charge(stack, goal)
    # The step met the open circuit, and its retry came once the breaker could half-open (as on AWS:
    # the local stack's short retry waits keep that one past the breaker's reset).
    errors = stack.task_errors(goal["goalId"])
    assert set(errors) == {"MerchantUnavailable", "MerchantCircuitOpen"}, errors
    assert errors[-1] == "MerchantCircuitOpen", errors


def test_duplicate_delivery_of_a_mutating_step_charges_once(stack: Stack):
    stack.local.runtime.deliver_twice("payment")
    stack.local.runtime.deliver_twice("checkout")
    assert_one_order_one_charge(stack, run_low_risk(stack))


def test_concurrent_duplicate_posts_make_one_goal(stack: Stack):
    key = f"dup-{uuid.uuid4()}"
    answers: list[httpx.Response] = []

    def post() -> None:
        with httpx.Client(base_url=stack.local.api_url, timeout=30) as client:
            answers.append(
                client.post(
                    "/goals",
                    json={"userId": "user-1", "goal": LOW_RISK_GOAL},
                    headers={"Idempotency-Key": key},
                )
            )

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seen = [(answer.status_code, answer.text[:200]) for answer in answers]
    goal_ids = {answer.json()["goalId"] for answer in answers if answer.status_code == 202}
    assert len(goal_ids) == 1, seen
    assert all(answer.status_code in (202, 409) for answer in answers), seen
    (goal_id,) = goal_ids
    assert len(stack.executions_named(goal_id)) == 1
    assert_one_order_one_charge(stack, stack.api.wait_for(goal_id, timeout=90))


def test_compensation_failing_then_succeeding(stack: Stack):
    stack.inject_fault(COMPLETE, "error_400", times=1)
    # Planning and the price check each open a pricing session and cancel it: those two cancels pass,
    # then the first compensation attempt runs out of retries.
    stack.inject_fault(CANCEL, "error_500", times=3, after=2)
    goal = run_low_risk(stack)
    assert goal["status"] == "COMPENSATED"
    events = stack.events(goal["goalId"])
    assert events.index("compensation.retrying") < events.index("compensation.completed")


def test_compensation_failing_for_good_needs_attention(stack: Stack):
    stack.inject_fault(COMPLETE, "error_400", times=1)
    stack.inject_fault(CANCEL, "error_500", times=1000)
    goal = run_low_risk(stack)
    assert goal["status"] == "NEEDS_ATTENTION"
    audit = stack.api.audit(goal["goalId"])["records"]
    incomplete = [record for record in audit if record["event"] == "compensation.incomplete"]
    assert incomplete and incomplete[-1]["detail"]["leftToFixByHand"]
    assert stack.ledger()["charges"] == []


def test_undo_inside_the_window_refunds_once(stack: Stack):
    goal = run_low_risk(stack)
    assert goal["status"] == "COMPLETED" and goal["undoUntil"]
    first = stack.api.undo(goal["goalId"])
    assert first.status_code == 202
    undone = stack.api.wait_for(goal["goalId"], {"UNDONE"}, timeout=60)
    assert undone["status"] == "UNDONE"
    again = stack.api.undo(goal["goalId"])
    assert again.status_code == 202 and again.json()["status"] == "UNDONE"
    ledger = stack.ledger()
    assert len(ledger["charges"]) == 1 and len(ledger["refunds"]) == 1
    assert ledger["refunds"][0]["amount"] == ledger["charges"][0]["amount"]


def test_undo_of_a_goal_that_did_not_complete_is_refused(stack: Stack):
    goal_id = stack.api.submit("user-1", SEED_GOAL).json()["goalId"]
    stack.api.wait_for_approval_link(goal_id)
    refused = stack.api.http.post(f"/goals/{goal_id}/undo")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "NOT_UNDOABLE"
    assert stack.api.goal(goal_id)["status"] == "AWAITING_APPROVAL"
    assert_nothing_charged(stack)


def test_a_price_that_moves_after_approval_stops_and_asks_again(stack: Stack):
    goal_id = stack.api.submit("user-1", SEED_GOAL).json()["goalId"]
    first_link = stack.api.wait_for_approval_link(goal_id)
    shoe = stack.api.goal(goal_id)["plan"]["summary"]["items"][0]
    stack.reprice(
        shoe["itemId"], shoe["unitPrice"]["amount_minor"] + 10000
    )  # +100.00 CNY, beyond the 2% tolerance

    assert stack.api.decide(first_link, "approve").status_code == 200
    # Nothing is charged at the old price: the session is undone and a new plan goes to the approver.
    second_link = stack.api.wait_for_approval_link(goal_id, newer_than=first_link)
    replanned = stack.api.goal(goal_id)["plan"]["summary"]["items"][0]
    # The new plan is priced as the merchant prices now: the repriced variant, or a cheaper equal one.
    assert (replanned["itemId"], replanned["unitPrice"]["amount_minor"]) != (
        shoe["itemId"],
        shoe["unitPrice"]["amount_minor"],
    )
    assert stack.ledger()["charges"] == []
    events = stack.events(goal_id)
    assert "execution.price-drift" in events and "compensation.before-replanning" in events

    assert stack.api.decide(second_link, "approve").status_code == 200
    done = stack.api.wait_for(goal_id)
    assert done["status"] == "COMPLETED"
    ledger = stack.ledger()
    assert (
        len(ledger["charges"]) == 1
        and ledger["charges"][0]["amount"] == done["plan"]["summary"]["total"]["amount_minor"]
    )
