"""The ``cartpilot`` command. Product commands live here; the local stack's commands
(``local``, ``demo``, ``plan``, ``submit``, …) come from the development package when it is
installed, so a platform team can run ``cartpilot policy test`` with the core package alone."""

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


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["policy"]:
        return policy_command(args[1:])
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
