"""The ``cartpilot`` command: run the local stack, the demo, the planner, and talk to an API."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import uuid
from typing import Any

import httpx


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def cmd_local(args: argparse.Namespace) -> int:
    from cartpilot_local.stack import LocalStack

    with LocalStack(
        brand=args.brand, api_port=args.port, merchant_port=args.merchant_port, log_level=args.log_level
    ) as stack:
        print(f"CartPilot local stack ({args.brand})")
        print(
            f"  API       {stack.api_url}   (OpenAPI: {stack.api_url}/openapi.json, outbox: {stack.api_url}/_local/outbox)"
        )
        print(f"  Merchant  {stack.merchant_url}   (ledger: {stack.merchant_url}/_sandbox/ledger)")
        print("Press Ctrl-C to stop.", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from cartpilot_local.demo import run_demo

    return run_demo()


def cmd_plan(args: argparse.Namespace) -> int:
    """Prints only the plan JSON on stdout, grounded against the sandbox merchant in-process."""
    from cartpilot.brands import load_brand
    from cartpilot.clock import today
    from cartpilot.connectors.ucp import UcpMerchant
    from cartpilot.goals import GoalContext
    from cartpilot.planning.rules import PlanningFailed, PlanningRequest, RulesPlanner
    from cartpilot.users import directory_for

    brand = load_brand(args.brand)
    profile = directory_for(brand).get(args.user)
    if profile is None:
        print(f"unknown user {args.user}", file=sys.stderr)
        return 2
    server = None
    merchant_url = args.merchant_url
    if merchant_url is None:
        from cartpilot_local.merchant.app import create_app
        from cartpilot_local.servers import serve_in_thread

        server = serve_in_thread(create_app())
        merchant_url = server.url
    try:
        merchant = UcpMerchant.for_url(merchant_url)
        planner = RulesPlanner(merchant.catalog, merchant.fulfillment)
        request = PlanningRequest(
            goalId="g-cli", goal=args.goal, context=GoalContext(), profile=profile, brand=brand, today=today()
        )
        try:
            plan = planner.plan(request)
        except PlanningFailed as exc:
            print(f"planning failed: {exc}", file=sys.stderr)
            return 1
        _print_json(plan.model_dump(mode="json"))
        return 0
    finally:
        if server is not None:
            server.stop()


def _client(args: argparse.Namespace) -> Any:
    from cartpilot_local.client import CartPilotClient

    return CartPilotClient(args.api)


def cmd_submit(args: argparse.Namespace) -> int:
    context = json.loads(args.context) if args.context else None
    response = _client(args).submit(args.user, args.goal, context, key=args.key or str(uuid.uuid4()))
    _print_json(response.json())
    return 0 if response.status_code < 300 else 1


def cmd_status(args: argparse.Namespace) -> int:
    client = _client(args)
    goal = client.wait_for(args.goal_id, timeout=args.wait) if args.wait else client.goal(args.goal_id)
    _print_json(goal)
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    from cartpilot_local.client import ApprovalLink, CartPilotClient

    link = ApprovalLink.parse(args.link)
    base = link.url.split("/approvals/")[0]
    response = CartPilotClient(base).decide(link, "reject" if args.reject else "approve", args.phrase)
    print(f"{response.status_code}")
    return 0 if response.status_code == 200 else 1


def cmd_audit(args: argparse.Namespace) -> int:
    audit = _client(args).audit(args.goal_id)
    if args.verify:
        verification = audit["verification"]
        print(f"{verification['count']} records; chain {'valid' if verification['valid'] else 'BROKEN'}")
        for problem in verification["problems"]:
            print(f"  - {problem}")
        return 0 if verification["valid"] else 1
    _print_json(audit)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cartpilot", description="CartPilot: plan, approve and execute purchases safely."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    local = sub.add_parser("local", help="run the whole stack on 127.0.0.1 until interrupted")
    local.add_argument("--port", type=int, default=8080)
    local.add_argument("--merchant-port", type=int, default=8081)
    local.add_argument("--brand", default="sandbox")
    local.add_argument("--log-level", default="WARNING")
    local.set_defaults(func=cmd_local)

    demo = sub.add_parser("demo", help="run the seed scenario end to end on a fresh local stack")
    demo.set_defaults(func=cmd_demo)

    plan = sub.add_parser("plan", help="print the plan for a goal (JSON on stdout)")
    plan.add_argument("goal")
    plan.add_argument("--user", default="user-1")
    plan.add_argument("--brand", default="sandbox")
    plan.add_argument(
        "--merchant-url", default=None, help="a running UCP merchant; default: the sandbox, in-process"
    )
    plan.set_defaults(func=cmd_plan)

    for name, func, help_text in (
        ("submit", cmd_submit, "submit a goal to a running API"),
        ("status", cmd_status, "show a goal"),
        ("audit", cmd_audit, "show a goal's audit trail"),
    ):
        command = sub.add_parser(name, help=help_text)
        command.add_argument("--api", default="http://127.0.0.1:8080")
        if name == "submit":
            command.add_argument("goal")
            command.add_argument("--user", default="user-1")
            command.add_argument("--key", default=None, help="Idempotency-Key (default: a new one)")
            command.add_argument("--context", default=None, help="the goal's context as JSON")
        else:
            command.add_argument("goal_id")
        if name == "status":
            command.add_argument("--wait", type=float, default=0, help="seconds to wait for a settled status")
        if name == "audit":
            command.add_argument("--verify", action="store_true", help="exit 1 unless the chain verifies")
        command.set_defaults(func=func)

    approve = sub.add_parser("approve", help="approve (or --reject) through an approval link")
    approve.add_argument("link")
    approve.add_argument("--reject", action="store_true")
    approve.add_argument("--phrase", default=None)
    approve.set_defaults(func=cmd_approve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except httpx.HTTPError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
