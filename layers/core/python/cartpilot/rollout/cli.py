"""``cartpilot rollout show|set``: read and change a brand's rollout.

Against the local stack (``--api``, the default) it talks to the running stack's ``/_local/rollout``;
with ``--aws`` it writes an AppConfig hosted version and deploys it, and audits the change in the
stack's audit trail, using the deployment's settings from the environment (``ROLLOUT_APPCONFIG_*``
with the deployment strategy, ``AUDIT_TABLE``, ``AUDIT_BUCKET``, ``CARTPILOT_BRAND``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from cartpilot.rollout.model import RolloutStage


def _user_list(raw: str) -> list[str]:
    return [user.strip() for user in raw.split(",") if user.strip()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cartpilot rollout", description="a brand's staged rollout")
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("show", help="the settings in force and the recent changes")
    change = commands.add_parser("set", help="change the stage, the pilot or the kill switch (audited)")
    change.add_argument("stage", nargs="?", choices=[stage.value for stage in RolloutStage], default=None)
    change.add_argument("--pilot-users", type=_user_list, default=None, help="comma-separated user ids")
    change.add_argument(
        "--pilot-percent", type=int, default=None, help="0..100, by a stable hash of the user id"
    )
    change.add_argument("--kill-switch", choices=["on", "off"], default=None)
    change.add_argument("--reason", required=True, help="why: kept in the audit trail")
    change.add_argument("--actor", default=None, help="who (default: operator:$USER)")
    for command in (show, change):
        target = command.add_mutually_exclusive_group()
        target.add_argument("--api", default="http://127.0.0.1:8080", help="a running local stack")
        target.add_argument("--aws", action="store_true", help="the deployed stack named by the environment")
    return parser


def rollout_command(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        result = _run_on_aws(args) if args.aws else _run_locally(args)
    except RuntimeError as exc:
        print(f"cartpilot rollout: {exc}", file=sys.stderr)
        return 1
    if args.command == "show":
        _print_show(result)
    else:
        print(f"{_describe(result['from'])} -> {_describe(result['to'])}")
    return 0


def _change_body(args: argparse.Namespace) -> dict[str, Any]:
    import getpass

    body: dict[str, Any] = {"reason": args.reason, "actor": args.actor or f"operator:{getpass.getuser()}"}
    if args.stage is not None:
        body["stage"] = args.stage
    if args.pilot_users is not None:
        body["pilotUsers"] = args.pilot_users
    if args.pilot_percent is not None:
        body["pilotPercent"] = args.pilot_percent
    if args.kill_switch is not None:
        body["killSwitch"] = args.kill_switch == "on"
    return body


def _run_locally(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    url = args.api.rstrip("/") + "/_local/rollout"
    try:
        if args.command == "show":
            response = httpx.get(url, timeout=10)
        else:
            response = httpx.post(url, json=_change_body(args), timeout=10)
    except httpx.HTTPError as exc:
        raise RuntimeError(f"no local stack answers at {args.api} ({type(exc).__name__})") from None
    if response.status_code != 200:
        try:
            message = response.json().get("error", {}).get("message")
        except ValueError:
            # Not the stack's JSON error (another server on that port, or a crash page).
            message = None
        raise RuntimeError(message or f"HTTP {response.status_code}")
    result: dict[str, Any] = response.json()
    return result


def _run_on_aws(args: argparse.Namespace) -> dict[str, Any]:
    from cartpilot import wiring
    from cartpilot.rollout.desk import RolloutChangeRefused, recent_changes, set_stage
    from cartpilot.wiring.rollout import rollout_store

    brand = wiring.brand().name
    store = rollout_store()
    if args.command == "show":
        return {
            "brand": brand,
            "settings": store.read().model_dump(mode="json"),
            "changes": recent_changes(wiring.audit(), brand=brand),
        }
    body = _change_body(args)
    try:
        change = set_stage(
            store, wiring.audit(), brand=brand, actor=body["actor"], reason=body["reason"],
            stage=body.get("stage"), pilot_users=body.get("pilotUsers"),
            pilot_percent=body.get("pilotPercent"), kill_switch=body.get("killSwitch"),
        )  # fmt: skip
    except RolloutChangeRefused as exc:
        raise RuntimeError(str(exc)) from None
    before = change.before.model_dump(mode="json") if change.before is not None else None
    return {"from": before, "to": change.after.model_dump(mode="json")}


def _describe(settings: dict[str, Any] | None) -> str:
    if settings is None:
        return "(unreadable)"
    parts = [str(settings["stage"])]
    if settings.get("pilotUsers"):
        parts.append(f"pilot users {','.join(settings['pilotUsers'])}")
    if settings.get("pilotPercent"):
        parts.append(f"pilot {settings['pilotPercent']}%")
    parts.append(f"kill switch {'ON' if settings.get('killSwitch') else 'off'}")
    return " | ".join(parts)


def _print_show(result: dict[str, Any]) -> None:
    print(f"brand {result['brand']}: {_describe(result['settings'])}")
    if result.get("problem"):
        print(f"  {result['problem']}")
    if result.get("file"):
        print(f"  flags file {result['file']}")
    changes = result.get("changes") or []
    print("recent changes:" if changes else "no changes recorded")
    for change in changes:
        print(
            f"  {change['at']}  {change['actor']}: {_describe(change['from'])} -> {_describe(change['to'])}"
            f"  ({json.dumps(change['reason'])})"
        )
