"""The seed scenario, end to end on a fresh local stack, narrated for a newcomer."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from cartpilot.kernel.money import Money
from cartpilot.plans.costs import PlanCostSummary
from cartpilot_local.client import CartPilotClient
from cartpilot_local.stack import LocalStack

SEED_USER = "user-1"
SEED_GOAL = "Get my friend running shoes, size 42, gift-wrap them and ship to Beijing before Feb 5"


def _money(value: dict[str, Any]) -> str:
    return Money.model_validate(value).format()


def _section(say: Callable[[str], None], title: str) -> None:
    say("")
    say(f"== {title} " + "=" * max(0, 68 - len(title)))


def run_demo(say: Callable[[str], None] = print, stack: LocalStack | None = None) -> int:
    """Returns the exit code: 0 only when the goal is COMPLETED with one order, one charge and a valid chain."""
    owned = stack is None
    stack = stack or LocalStack().start()
    client = CartPilotClient(stack.api_url)
    try:
        _section(say, "Local stack")
        say(f"API       {stack.api_url}")
        say(f"Merchant  {stack.merchant_url}  (sandbox, UCP 2026-04-08)")

        _section(say, "1. Submit the goal")
        say(f"{SEED_USER}: {SEED_GOAL!r}")
        response = client.submit(SEED_USER, SEED_GOAL, key=f"demo-{uuid.uuid4()}")
        say(f"POST /goals -> {response.status_code} {response.json()}")
        goal_id = response.json()["goalId"]

        link = client.wait_for_approval_link(goal_id)
        goal = client.goal(goal_id)
        plan = goal["plan"]
        _section(say, "2. The plan")
        say(json.dumps(plan, indent=2, ensure_ascii=False))
        summary = plan["summary"]
        for item in summary["items"]:
            say(f"  {item['quantity']} x {item['title']} @ {_money(item['unitPrice'])}")
        say(f"  shipping: {summary['shipping']['title']} {_money(summary['shipping']['price'])}, "
            f"arrives by {summary['shipping']['latestDelivery']} (needed by {summary['deliverBy']})")  # fmt: skip
        say(f"  total: {_money(summary['total'])}")
        if goal.get("planSummary"):
            costs = PlanCostSummary.model_validate(goal["planSummary"])
            say(f"  planning cost (model): {costs.planner_cost_words()}; release {plan.get('release')}")
        _section(say, "3. The verdict")
        verdict = goal["verdict"]
        say(f"tier {verdict['tier']}, route {verdict['route']}")
        for reason in verdict["reasons"]:
            say(f"  - [{reason['policyId']}] {reason['message']}")

        _section(say, "4. The approval link (from the local outbox)")
        say(link.url)

        _section(say, "5. Opening the link changes nothing")
        page = client.open_link(link)
        say(f"GET {link.post_url} -> {page.status_code}, {len(page.text)} bytes of HTML")
        say(f"goal status after GET: {client.goal(goal_id)['status']}")

        _section(say, "6. Approve")
        decided = client.decide(link, "approve")
        say(f"POST {link.post_url} decision=approve -> {decided.status_code}")
        goal = client.wait_for(goal_id)

        _section(say, "7. Executed steps")
        for step in goal["steps"]:
            say(f"  {step['stepId']} {step['action']:<20} {step['status']}  {json.dumps(step['summary'])}")

        _section(say, "8. Receipt")
        receipt = goal.get("receipt") or {}
        say(json.dumps(receipt, indent=2, ensure_ascii=False))
        say(f"undo until {goal.get('undoUntil')}")

        _section(say, "9. Audit chain")
        audit = client.audit(goal_id)
        for record in audit["records"]:
            say(f"  #{record['seq']:<3} {record['at']}  {record['actor']:<22} {record['event']}")
        # Verified here, with the published public keys, as an auditor would: not the server's word.
        from cartpilot.audit.client_check import verify_audit_document

        checked = verify_audit_document(audit, client.audit_keys())
        verification = {"valid": checked.valid, "count": checked.count, "problems": checked.problems}
        say(
            f"chain verified: {verification['valid']} ({verification['count']} records) {verification['problems']}"
        )

        _section(say, "10. Merchant ledger")
        ledger = httpx.get(f"{stack.merchant_url}/_sandbox/ledger", timeout=10).json()
        say(
            f"orders: {len(ledger['orders'])}, charges: {len(ledger['charges'])}, refunds: {len(ledger['refunds'])}"
        )

        ok = (
            goal["status"] == "COMPLETED"
            and verification["valid"]
            and len(ledger["orders"]) == 1
            and len(ledger["charges"]) == 1
            and receipt.get("orderId") is not None
        )
        _section(say, "Result")
        say(f"goal {goal_id} is {goal['status']}" + ("" if ok else "  (demo FAILED)"))
        return 0 if ok else 1
    finally:
        client.close()
        if owned:
            stack.stop()
