"""``cartpilot merchant``: run the sandbox merchant on its own, or write its catalog as a feed."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from cartpilot_local.merchant.handlers import ALL_PAYMENT_HANDLERS
from cartpilot_local.merchant.protocol import SUPPORTED_CURRENCIES, UCP_VERSIONS, V2026_04_08

DEFAULT_PORT = 8081


def add_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--port", type=int, default=DEFAULT_PORT)
    command.add_argument("--ucp-version", choices=UCP_VERSIONS, default=V2026_04_08)
    command.add_argument("--no-catalog", action="store_true", help="advertise no catalog capability")
    command.add_argument(
        "--validate-schemas",
        action="store_true",
        help="record schema conformance (GET /_sandbox/conformance)",
    )
    command.add_argument(
        "--api-key", default=None, help="require this key (X-API-Key or Authorization: Bearer)"
    )
    command.add_argument(
        "--payment-handler",
        action="append",
        choices=ALL_PAYMENT_HANDLERS,
        default=None,
        help="advertise only these handlers (repeatable; default: all)",
    )
    command.add_argument(
        "--write-feed", type=Path, default=None, metavar="FILE", help="write the catalog feed and exit"
    )
    command.add_argument(
        "--currency", default="CNY", choices=SUPPORTED_CURRENCIES, help="the feed's currency"
    )
    command.add_argument(
        "--base-url", default=None, help="the feed's link base (default: http://127.0.0.1:PORT)"
    )


def run_merchant(args: argparse.Namespace) -> int:
    from cartpilot_local.merchant.catalog import build_catalog
    from cartpilot_local.merchant.feed import write_feed

    if args.write_feed is not None:
        base_url = args.base_url or f"http://127.0.0.1:{args.port}"
        try:
            count = write_feed(args.write_feed, build_catalog(), currency=args.currency, base_url=base_url)
        except OSError as exc:
            print(f"cannot write {args.write_feed}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        print(f"wrote {count} products to {args.write_feed}")
        return 0

    from cartpilot_local.merchant.app import create_app
    from cartpilot_local.merchant.specs import SpecsMissing
    from cartpilot_local.servers import serve_in_thread

    try:
        app = create_app(
            ucp_version=args.ucp_version,
            catalog=not args.no_catalog,
            payment_handlers=args.payment_handler or ALL_PAYMENT_HANDLERS,
            validate_schemas=args.validate_schemas,
            api_key=args.api_key,
        )
    except SpecsMissing as exc:
        print(f"--validate-schemas: {exc}", file=sys.stderr)
        return 2
    try:
        server = serve_in_thread(app, port=args.port)
    except OSError as exc:
        print(f"cannot listen on port {args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    with server:
        mode = "catalog" if args.ucp_version == V2026_04_08 and not args.no_catalog else "no catalog"
        print(f"Sandbox merchant, UCP {args.ucp_version} ({mode}), at {server.url}")
        print(f"  discovery {server.url}/.well-known/ucp   ledger {server.url}/_sandbox/ledger")
        print("Press Ctrl-C to stop.", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping")
    return 0
