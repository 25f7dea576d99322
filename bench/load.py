"""Load on the local stack: many goals at once, some with merchant faults, then the books are checked.

Submits N low-risk goals concurrently (generated shoppers, auto-executed), injects
transient merchant faults (5xx and 429) on checkout completion for about a fifth
of them, and waits for every goal to reach a terminal status. Prints throughput,
p50 and p95 time from submission to terminal status, and a ledger check: exactly
one order and one charge per completed goal, no charge without its order, no
duplicate charge for a checkout, refunds only for compensated goals, and every
goal's audit chain intact (no lost or altered record).

    .venv/bin/python bench/load.py [--goals 200] [--workers 32]

Runs only against 127.0.0.1; it stops by itself after --deadline seconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from cartpilot_local.client import CartPilotClient
from cartpilot_local.stack import LocalStack

GOAL = "Buy me a pair of running socks and ship them to my home address"
TERMINAL = {
    "COMPLETED",
    "COMPENSATED",
    "NEEDS_ATTENTION",
    "FAILED",
    "DENIED",
    "REJECTED",
    "EXPIRED",
    "UNDONE",
}


@dataclass
class Outcome:
    goal_id: str
    status: str
    seconds: float
    order_id: str | None
    failure: str | None


def run_one(api_url: str, number: int, deadline: float) -> Outcome:
    client = CartPilotClient(api_url, timeout=60)
    try:
        started = time.monotonic()
        response = client.submit(f"shopper-{number:04d}", GOAL, key=f"load-{uuid.uuid4()}")
        response.raise_for_status()
        goal_id = response.json()["goalId"]
        goal = client.wait_for(goal_id, TERMINAL, timeout=max(1.0, deadline - time.monotonic()))
        receipt = goal.get("receipt") or {}
        failure = (goal.get("failure") or "")[:90] or None
        return Outcome(goal_id, goal["status"], time.monotonic() - started, receipt.get("orderId"), failure)
    finally:
        client.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goals", type=int, default=200)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--faulty-fraction", type=float, default=0.2)
    parser.add_argument("--deadline", type=float, default=900.0, help="seconds before the run gives up")
    args = parser.parse_args()

    with LocalStack() as stack:
        merchant = httpx.Client(base_url=stack.merchant_url, timeout=10)
        faulty = int(args.goals * args.faulty_fraction)
        route = "POST /checkout-sessions/{id}/complete"
        for mode, share in (("error_500", faulty - faulty // 3), ("error_429", faulty // 3)):
            if share:
                body = {"route": route, "mode": mode, "times": share, "retry_after": 1}
                merchant.post("/_sandbox/faults", json=body).raise_for_status()

        deadline = time.monotonic() + args.deadline
        wall_start = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            outcomes = list(pool.map(lambda n: run_one(stack.api_url, n, deadline), range(1, args.goals + 1)))
        wall = time.monotonic() - wall_start

        ledger = merchant.get("/_sandbox/ledger").json()
        api = CartPilotClient(stack.api_url)
        broken_chains = [o.goal_id for o in outcomes if not api.audit(o.goal_id)["verification"]["valid"]]

    statuses = Counter(outcome.status for outcome in outcomes)
    times = [outcome.seconds for outcome in outcomes]
    completed = [outcome for outcome in outcomes if outcome.status == "COMPLETED"]
    charges_per_checkout = Counter(charge["checkout_id"] for charge in ledger["charges"])
    order_ids = {order["id"] for order in ledger["orders"]}
    problems = []
    if any(status not in TERMINAL for status in statuses):
        problems.append("some goals did not reach a terminal status")
    if len(ledger["orders"]) != len(completed) or len(ledger["charges"]) != len(completed):
        problems.append(
            f"{len(ledger['orders'])} orders / {len(ledger['charges'])} charges for {len(completed)} completed goals"
        )
    if any(count > 1 for count in charges_per_checkout.values()):
        problems.append("a checkout was charged twice")
    if any(outcome.order_id not in order_ids for outcome in completed):
        problems.append("a completed goal's order is missing at the merchant")
    if ledger["refunds"]:
        problems.append(f"{len(ledger['refunds'])} refunds, but no goal was undone")
    if broken_chains:
        problems.append(f"{len(broken_chains)} audit chains do not verify")

    print(f"goals              {args.goals} ({faulty} with injected transient faults)")
    print(f"wall time          {wall:.1f} s")
    print(f"throughput         {args.goals / wall:.2f} goals/s")
    print(
        f"time to terminal   p50 {statistics.median(times):.2f} s   p95 {percentile(times, 0.95):.2f} s   max {max(times):.2f} s"
    )
    print(f"statuses           {dict(statuses)}")
    for reason, count in Counter(o.failure for o in outcomes if o.failure).most_common(5):
        print(f"  {count:>4} x {reason}")
    print(
        f"ledger             orders {len(ledger['orders'])}, charges {len(ledger['charges'])}, refunds {len(ledger['refunds'])}"
    )
    print(f"audit chains       {len(outcomes) - len(broken_chains)}/{len(outcomes)} verify")
    print(
        "ledger check       "
        + (
            "OK: no duplicate orders or charges, no lost audit records"
            if not problems
            else "; ".join(problems)
        )
    )
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
