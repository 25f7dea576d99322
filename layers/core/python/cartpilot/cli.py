"""The ``cartpilot`` command. Product commands (``policy test``, ``keys rotate``, ``release``) live here; the
local stack's commands (``local``, ``demo``, ``plan``, ``submit``, …) come from the development
package when it is installed, so a platform team can run ``cartpilot policy test`` and
``cartpilot keys rotate`` with the core package alone."""

from __future__ import annotations

import argparse
import re
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


def release_command(argv: Sequence[str]) -> int:
    """``cartpilot release``: the release id of this checkout for a brand, and what it is made of."""
    parser = argparse.ArgumentParser(
        prog="cartpilot release",
        description="print the release id (code, prompts, UCP versions, policies) of this checkout",
    )
    parser.add_argument("--brand", default=None, help="default: $CARTPILOT_BRAND or sandbox")
    parser.add_argument(
        "--brands-dir", type=Path, default=None, help="default: $CARTPILOT_BRANDS_DIR or the shipped brands"
    )
    parser.add_argument("--json", action="store_true", help="print the id and its components as JSON")
    args = parser.parse_args(argv)

    from cartpilot.brands.config import BrandConfigError, brand_dir
    from cartpilot.release import ReleaseError, compute_release, release_lines
    from cartpilot.wiring.settings import brand_name

    name = args.brand or brand_name()
    if re.fullmatch(r"[a-z0-9][a-z0-9\-]{1,40}", name) is None:
        print(f"cartpilot release: {name[:60]!r} is not a brand name", file=sys.stderr)
        return 2
    try:
        # From the files, never a stamped environment: this is what the checkout would deploy.
        release = compute_release(brand_dir(name, args.brands_dir or brands_dir()), environ={})
    except (BrandConfigError, ReleaseError, LookupError, OSError) as exc:
        print(f"cartpilot release: brand {name}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    print(release.model_dump_json(indent=2) if args.json else "\n".join(release_lines(release)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["policy"]:
        return policy_command(args[1:])
    if args[:1] == ["release"]:
        return release_command(args[1:])
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
