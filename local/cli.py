"""The ``cartpilot`` command: run the local stack, the demo, the planner, and talk to an API."""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import threading
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _planner_overrides(args: argparse.Namespace) -> Any:
    """The environment's planner overrides, with this command's flags on top."""
    import dataclasses
    import os

    from cartpilot.planning.setup import PlannerOverrides

    flags = {
        "provider": args.planner,
        "base_url": args.llm_url,
        "model": args.model,
        "api_key_env": getattr(args, "api_key_env", None),
    }
    return dataclasses.replace(
        PlannerOverrides.from_env(os.environ), **{name: value for name, value in flags.items() if value}
    )


def cmd_local(args: argparse.Namespace) -> int:
    import os

    from cartpilot.planning.setup import ENV_LLM_MODEL, ENV_LLM_URL, ENV_PLANNER
    from cartpilot_local.stack import LocalStack

    # The planner function runs in this process and reads its choice from the environment.
    for name, value in (
        (ENV_PLANNER, args.planner),
        (ENV_LLM_URL, args.llm_url),
        (ENV_LLM_MODEL, args.model),
    ):
        if value:
            os.environ[name] = value
    with LocalStack(
        brand=args.brand,
        api_port=args.port,
        merchant_port=args.merchant_port,
        log_level=args.log_level,
        merchant_url=args.merchant_url,
        merchant_feed=_feed_location(args.feed),
        merchant_api_key=_merchant_api_key(args),
        rollout=_rollout_settings(args),
    ) as stack:
        print(f"CartPilot local stack ({args.brand})")
        if stack.rollout is not None:
            print(f"  Rollout   {args.rollout} (flags: {stack.rollout.path}; change: cartpilot rollout set)")
        print(
            f"  API       {stack.api_url}   (OpenAPI: {stack.api_url}/openapi.json, outbox: {stack.api_url}/_local/outbox)"
        )
        if args.merchant_url:
            print(
                f"  Merchant  {stack.merchant_url}   (outside merchant{', feed ' + args.feed if args.feed else ''})"
            )
        else:
            print(f"  Merchant  {stack.merchant_url}   (ledger: {stack.merchant_url}/_sandbox/ledger)")
        print("Press Ctrl-C to stop.", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping")
    return 0


def _feed_location(feed: str | None) -> str | None:
    """A feed path made absolute (the functions may run elsewhere than the shell); URLs as given."""
    if feed is None or feed.startswith(("http://", "https://")):
        return feed
    return str(Path(feed).resolve())


def _merchant_api_key(args: argparse.Namespace) -> tuple[str, str] | None:
    """(header, value) of the credential the merchant issued, read from the named variable."""
    if not args.merchant_api_key_env:
        return None
    value = os.environ.get(args.merchant_api_key_env)
    if not value:
        raise SystemExit(f"--merchant-api-key-env: ${args.merchant_api_key_env} is not set")
    return args.merchant_api_key_header, value


def _add_merchant_flags(command: argparse.ArgumentParser, *, default_help: str) -> None:
    command.add_argument(
        "--merchant-url", default=None, help=f"a running UCP merchant; default: {default_help}"
    )
    command.add_argument(
        "--merchant-api-key-env",
        default=None,
        metavar="NAME",
        help="environment variable holding the credential the merchant issued (sent on every request)",
    )
    command.add_argument(
        "--merchant-api-key-header",
        default="Authorization",
        help="how to send it: Authorization (as a Bearer token, the default) or a header such as X-API-Key",
    )
    command.add_argument(
        "--feed",
        default=None,
        help="the merchant's product feed (Google Merchant Center TSV or XML), by path or URL, "
        "for a merchant without a catalog",
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from cartpilot_local.demo import run_demo

    return run_demo()


def cmd_plan(args: argparse.Namespace) -> int:
    """Prints only the plan JSON on stdout, grounded against the sandbox merchant in-process or the
    merchant at ``--merchant-url``; every refusal is one line on stderr and a non-zero exit."""
    from cartpilot.brands.config import BrandConfigError, load_brand
    from cartpilot.brands.users import directory_for
    from cartpilot.commerce.errors import ConnectorError
    from cartpilot.commerce.feed import FeedError, FeedSource
    from cartpilot.commerce.ucp import UcpMerchant
    from cartpilot.goals.model import GoalContext
    from cartpilot.kernel.clock import today
    from cartpilot.kernel.errors import MissingSetting
    from cartpilot.planning.rules import PlanningFailed, PlanningRequest
    from cartpilot.planning.setup import configured_planner
    from cartpilot_local.platform import served_platform

    try:
        brand = load_brand(args.brand)
    except BrandConfigError as exc:
        return _refuse(f"brand {args.brand}: {exc}")
    profile = directory_for(brand).get(args.user)
    if profile is None:
        return _refuse(f"unknown user {args.user}", code=2)
    with ExitStack() as running:
        identity = running.enter_context(served_platform())
        merchant_url = args.merchant_url
        if merchant_url is None:
            from cartpilot_local.merchant.app import create_app
            from cartpilot_local.servers import serve_in_thread

            sandbox = serve_in_thread(create_app())
            running.callback(sandbox.stop)
            merchant_url = sandbox.url
        api_key = _merchant_api_key(args)
        auth = None
        if api_key is not None:
            from cartpilot.commerce.http import MerchantAuth

            header, value = api_key
            auth = MerchantAuth(header=header, scheme=MerchantAuth.scheme_for(header), secret=lambda: value)
        merchant = UcpMerchant.for_url(merchant_url, identity=identity, auth=auth)
        running.callback(merchant.close)
        merchant_config = brand.merchant().model_copy(update={"url": merchant_url})
        feed = FeedSource(_feed_location(args.feed) or args.feed) if args.feed else None
        try:
            planner = configured_planner(
                brand,
                merchant,
                merchant_config=merchant_config,
                feed=feed,
                environ=os.environ,
                overrides=_planner_overrides(args),
            )
        except MissingSetting as exc:
            return _refuse(f"planner not configured: {exc}", code=2)
        request = PlanningRequest(
            goalId="g-cli", goal=args.goal, context=GoalContext(), profile=profile, brand=brand, today=today()
        )
        try:
            plan = planner.plan(request)
        except PlanningFailed as exc:
            return _refuse(f"planning failed: {exc}")
        except (ConnectorError, FeedError) as exc:
            return _refuse(f"merchant {merchant_url} refused: {exc}")
    if plan.planner.fallbackReason:
        print(f"note: the rules planner stood in: {plan.planner.fallbackReason}", file=sys.stderr)
    from cartpilot.planning.service import with_release
    from cartpilot.release import compute_release

    _print_json(with_release(plan, compute_release(brand.directory, environ={}).id).model_dump(mode="json"))
    return 0


def _refuse(message: str, *, code: int = 1) -> int:
    """A refusal as one line: no traceback for a merchant's or a planner's no."""
    print(" ".join(message.split()), file=sys.stderr)
    return code


def cmd_keys(args: argparse.Namespace) -> int:
    """Listed here for ``--help``; the command itself is the product's (``cartpilot.cli``)."""
    from cartpilot.cli import keys_command

    return keys_command(list(args.keys_args))


def cmd_rollout(args: argparse.Namespace) -> int:
    """Listed here for ``--help``; the command itself is the product's (``cartpilot.rollout.cli``)."""
    from cartpilot.rollout.cli import rollout_command

    return rollout_command(list(args.rollout_args))


def _rollout_settings(args: argparse.Namespace) -> Any:
    from cartpilot.rollout.model import RolloutSettings

    users = [user.strip() for user in (args.pilot_users or "").split(",") if user.strip()]
    try:
        return RolloutSettings(stage=args.rollout, pilotUsers=users, pilotPercent=args.pilot_percent)
    except ValueError as exc:
        raise SystemExit(f"--rollout: {exc}") from None


def cmd_release(args: argparse.Namespace) -> int:
    """Listed here for ``--help``; the command itself is the product's (``cartpilot.cli``)."""
    from cartpilot.cli import release_command

    return release_command(list(args.release_args))


def cmd_policy_test(args: argparse.Namespace) -> int:
    """Listed here for ``--help``; the command itself is the product's (``cartpilot.cli``)."""
    from cartpilot.cli import policy_command

    return policy_command(
        ["test", args.brand, *(["--brands-dir", str(args.brands_dir)] if args.brands_dir else [])]
    )


def _client(args: argparse.Namespace) -> Any:
    from cartpilot_local.client import CartPilotClient

    return CartPilotClient(args.api, principal=args.principal)


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
    client = CartPilotClient(base, principal=args.principal)
    decision = "reject" if args.reject else "send-code" if args.send_code else "approve"
    response = client.decide(link, decision, args.phrase, otp=args.otp)
    print(f"{response.status_code}")
    return 0 if response.status_code == 200 else 1


def cmd_undo(args: argparse.Namespace) -> int:
    response = _client(args).undo(args.goal_id)
    _print_json(response.json())
    return 0 if response.status_code < 300 else 1


def cmd_audit(args: argparse.Namespace) -> int:
    client = _client(args)
    audit = client.audit(args.goal_id)
    if args.verify:
        return _verify_audit(audit, client, args.public_keys)
    _print_json(audit)
    return 0


def cmd_mandate_export(args: argparse.Namespace) -> int:
    """Prints the schedule's mandate as an SD-JWT; with --verify, checks it here and prints its claims."""
    from cartpilot.audit.public_keys import PublishedKeys
    from cartpilot.schedules.ap2 import MandateTokenInvalid, verify_open_mandate

    client = _client(args)
    response = client.schedule_mandate(args.schedule_id)
    if response.status_code != 200:
        _print_json(response.json())
        return 1
    token: str = response.json()["token"]
    if not args.verify:
        print(token)
        return 0
    published = PublishedKeys.model_validate(client.audit_keys())
    keys = {key.kid: base64.b64decode(key.publicKey) for key in published.keys}
    try:
        claims = verify_open_mandate(token, keys)
    except MandateTokenInvalid as exc:
        return _refuse(f"the mandate does not verify with the keys at {client.api_url}/audit/keys: {exc}")
    _print_json(claims)
    return 0


def _verify_audit(audit: dict[str, Any], client: Any, pinned: str | None) -> int:
    """Verifies here, with the published (or pinned) public keys; the server's verdict is only compared."""
    from cartpilot.audit.client_check import verify_audit_document

    if pinned is not None:
        keys, source = json.loads(Path(pinned).read_text(encoding="utf-8")), pinned
    else:
        keys, source = client.audit_keys(), f"{client.api_url}/audit/keys"
    verification = verify_audit_document(audit, keys)
    verdict = "valid" if verification.valid else "BROKEN"
    print(
        f"{verification.count} records; chain {verdict} "
        f"(verified on this machine with {len(keys.get('keys', []))} public keys from {source})"
    )
    for problem in verification.problems:
        print(f"  - {problem}")
    for signed in verification.signatures:
        print(f"  plan {signed.planId} ({signed.event}, #{signed.seq}): signature {signed.result}")
    if audit.get("verification", {}).get("valid") != verification.valid:
        print(f"  note: the server's own verdict was {'valid' if not verification.valid else 'BROKEN'}")
    return 0 if verification.valid else 1


def _add_principal_flag(command: argparse.ArgumentParser, who: str) -> None:
    command.add_argument(
        "--principal",
        default=None,
        help=f"{who}; sent as X-Local-Principal, which the local stack's gateway takes as the IAM caller "
        "(default there: assistant)",
    )


def _add_planner_flags(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--planner", choices=("rules", "openai", "bedrock"), default=None, help="default: the brand's planner"
    )
    command.add_argument(
        "--llm-url", default=None, help="OpenAI-compatible base URL, e.g. http://127.0.0.1:11434/v1"
    )
    command.add_argument("--model", default=None, help="model name, e.g. qwen-plus or qwen3:8b")


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
    local.add_argument(
        "--rollout",
        choices=["off", "read-only", "pilot", "all"],
        default="all",
        help="the brand's rollout stage",
    )
    local.add_argument("--pilot-users", default=None, help="at --rollout pilot: comma-separated user ids")
    local.add_argument("--pilot-percent", type=int, default=0, help="at --rollout pilot: 0..100 of all users")
    _add_merchant_flags(local, default_help="start the sandbox merchant on --merchant-port")
    _add_planner_flags(local)
    local.set_defaults(func=cmd_local)

    demo = sub.add_parser("demo", help="run the seed scenario end to end on a fresh local stack")
    demo.set_defaults(func=cmd_demo)

    from cartpilot_local.merchant import cli as merchant_cli

    merchant = sub.add_parser(
        "merchant", help="run the sandbox UCP merchant alone, or write its product feed"
    )
    merchant_cli.add_arguments(merchant)
    merchant.set_defaults(func=merchant_cli.run_merchant)

    plan = sub.add_parser("plan", help="print the plan for a goal (JSON on stdout)")
    plan.add_argument("goal")
    plan.add_argument("--user", default="user-1")
    plan.add_argument("--brand", default="sandbox")
    _add_merchant_flags(plan, default_help="the sandbox, in-process")
    _add_planner_flags(plan)
    plan.add_argument(
        "--api-key-env",
        default=None,
        help="name of the environment variable holding the LLM API key (default: CARTPILOT_LLM_API_KEY)",
    )
    plan.set_defaults(func=cmd_plan)

    policy = sub.add_parser("policy", help="work with a brand's Cedar policies")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True)
    policy_test = policy_sub.add_parser("test", help="run brands/BRAND/policy-tests.yaml")
    policy_test.add_argument("brand", nargs="?", default="sandbox")
    policy_test.add_argument(
        "--brands-dir", type=Path, default=None, help="default: $CARTPILOT_BRANDS_DIR or the shipped brands"
    )
    policy_test.set_defaults(func=cmd_policy_test)

    for name, func, help_text in (
        ("submit", cmd_submit, "submit a goal to a running API"),
        ("status", cmd_status, "show a goal"),
        ("audit", cmd_audit, "show a goal's audit trail"),
        ("undo", cmd_undo, "undo a completed goal inside its undo window"),
    ):
        command = sub.add_parser(name, help=help_text)
        command.add_argument("--api", default="http://127.0.0.1:8080")
        _add_principal_flag(command, "the API client to act as")
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
            command.add_argument(
                "--verify",
                action="store_true",
                help="verify here, with the public keys; exit 1 on any problem",
            )
            command.add_argument(
                "--public-keys", default=None, help="a pinned copy of GET /audit/keys to verify with"
            )
        command.set_defaults(func=func)

    mandate = sub.add_parser("mandate", help="work with a schedule's standing mandate")
    mandate_sub = mandate.add_subparsers(dest="mandate_command", required=True)
    export = mandate_sub.add_parser(
        "export", help="print a schedule's mandate as an AP2 open mandate SD-JWT (application/sd-jwt)"
    )
    export.add_argument("schedule_id")
    export.add_argument("--api", default="http://127.0.0.1:8080")
    _add_principal_flag(export, "the API client that created the schedule")
    export.add_argument(
        "--verify",
        action="store_true",
        help="verify it here with the public keys of GET /audit/keys and print its disclosed claims",
    )
    export.set_defaults(func=cmd_mandate_export)

    keys = sub.add_parser("keys", help="rotate or retire the UCP request-signing keys (keys rotate --help)")
    keys.add_argument("keys_args", nargs=argparse.REMAINDER)
    keys.set_defaults(func=cmd_keys)

    rollout = sub.add_parser("rollout", help="show or change the brand's rollout stage (rollout --help)")
    rollout.add_argument("rollout_args", nargs=argparse.REMAINDER)
    rollout.set_defaults(func=cmd_rollout)

    release = sub.add_parser(
        "release", help="print the release id of this checkout and its components (release --help)"
    )
    release.add_argument("release_args", nargs=argparse.REMAINDER)
    release.set_defaults(func=cmd_release)

    approve = sub.add_parser("approve", help="approve (or --reject) through an approval link")
    approve.add_argument("link")
    approve.add_argument("--reject", action="store_true")
    approve.add_argument("--phrase", default=None)
    approve.add_argument("--otp", default=None, help="the one-time code a step-up approval needs")
    approve.add_argument(
        "--send-code", action="store_true", help="send the one-time code by SMS; decides nothing"
    )
    _add_principal_flag(approve, "who decides a staff link (a staff member, e.g. staff-1)")
    approve.set_defaults(func=cmd_approve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except httpx.HTTPError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader stopped early (`cartpilot plan … | head`): as other command-line tools, stop quietly.
        sys.stderr.close()
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
