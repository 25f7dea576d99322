"""The ``cartpilot`` command. Product commands (``policy test``, ``keys rotate``) live here; the
local stack's commands (``local``, ``demo``, ``plan``, ``submit``, …) come from the development
package when it is installed, so a platform team can run ``cartpilot policy test`` and
``cartpilot keys rotate`` with the core package alone."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from cartpilot.brands.policy_tests import report
from cartpilot.wiring.settings import brands_dir


def policy_command(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="cartpilot policy", description="work with a brand's Cedar policies"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    test = commands.add_parser("test", help="run brands/BRAND/policy-tests.yaml")
    test.add_argument("brand", nargs="?", default="sandbox")
    test.add_argument(
        "--brands-dir", type=Path, default=None, help="default: $CARTPILOT_BRANDS_DIR or the shipped brands"
    )
    args = parser.parse_args(argv)
    return report(args.brand, args.brands_dir or brands_dir())


def keys_command(argv: Sequence[str]) -> int:
    """``cartpilot keys rotate|retire``: the UCP request-signing key ring in Secrets Manager."""
    parser = argparse.ArgumentParser(
        prog="cartpilot keys",
        description="rotate the key ring CartPilot signs UCP requests with (the secret a stack creates)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    rotate = commands.add_parser(
        "rotate", help="add a new current key; the old one stays published through the overlap"
    )
    rotate.add_argument("--secret", required=True, help="the signing-keys secret's name or ARN")
    retire = commands.add_parser("retire", help="unpublish a previous key at once (a compromised key)")
    retire.add_argument("--secret", required=True, help="the signing-keys secret's name or ARN")
    retire.add_argument("--kid", required=True, help="the key to unpublish")
    args = parser.parse_args(argv)

    from cartpilot.adapters.aws.signing_keys import retire_key, rotate_secret

    try:
        ring = rotate_secret(args.secret) if args.command == "rotate" else retire_key(args.secret, args.kid)
    except ValueError as exc:
        print(f"cartpilot keys: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # named by type only: AWS messages can quote the secret's ARN and more
        print(f"cartpilot keys: cannot update {args.secret}: {type(exc).__name__}", file=sys.stderr)
        return 1
    published = ", ".join(jwk["kid"] for jwk in ring.published())
    print(f"current key {ring.current.kid}; published: {published}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["policy"]:
        return policy_command(args[1:])
    if args[:1] == ["keys"]:
        return keys_command(args[1:])
    try:
        from cartpilot_local.cli import main as local_main
    except ImportError:
        print(
            "cartpilot: only 'cartpilot policy test' is available; the local stack's commands need "
            "the development install (pip install 'cartpilot[local]')",
            file=sys.stderr,
        )
        return 2
    code: int = local_main(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
