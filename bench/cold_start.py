"""Import time of each Lambda handler module in a fresh interpreter, against `import boto3`.

A Lambda cold start pays for every import at init; this prints, per function, the
median wall time of importing its handler module in a new process (several runs),
beside the same measure for `import boto3` alone. Target: every handler under 1.5x
that baseline. The runs go round by round (boto3, then every handler, then again), so
load from other processes on the machine falls on the baseline and the handlers alike
rather than on whichever was measured while it lasted.

    .venv/bin/python bench/cold_start.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.5
_BASELINE = "(baseline) boto3"

# Time only the import; interpreter start-up is the same for every row and is left out.
_PROBE = """
import sys, time, importlib.util
start = time.perf_counter()
{body}
print(time.perf_counter() - start)
"""
_IMPORT_HANDLER = """
spec = importlib.util.spec_from_file_location("handler_under_test", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
assert callable(module.handler)
"""


def _time_once(body: str) -> float:
    env = {
        **os.environ,
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "PYTHONPATH": str(ROOT / "layers" / "core" / "python"),
        "PYTHONDONTWRITEBYTECODE": "0",
    }
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(body=body)], capture_output=True, text=True, env=env, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def median_seconds(bodies: dict[str, str], runs: int) -> dict[str, float]:
    """The median of ``runs`` timings of each body, taken round by round."""
    for body in bodies.values():
        _time_once(body)  # warm the bytecode cache so every measured run starts alike
    samples: dict[str, list[float]] = {name: [] for name in bodies}
    for _ in range(runs):
        for name, body in bodies.items():
            samples[name].append(_time_once(body))
    return {name: statistics.median(times) for name, times in samples.items()}


def handler_paths() -> dict[str, Path]:
    return {
        str(path.parent.relative_to(ROOT / "functions")): path
        for path in sorted((ROOT / "functions").rglob("app.py"))
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()

    bodies = {_BASELINE: "import boto3"}
    bodies.update({name: _IMPORT_HANDLER.format(path=str(path)) for name, path in handler_paths().items()})
    medians = median_seconds(bodies, args.runs)
    baseline = medians.pop(_BASELINE)
    print(f"{'function':<24} {'import ms':>10} {'x boto3':>8}")
    print(f"{'(baseline) boto3':<24} {baseline * 1000:>10.1f} {1.0:>8.2f}")
    figures: dict[str, float] = {}
    worst = 0.0
    for name, seconds in medians.items():
        figures[name] = seconds
        ratio = seconds / baseline
        worst = max(worst, ratio)
        flag = "" if ratio <= TARGET_RATIO else "  over target"
        print(f"{name:<24} {seconds * 1000:>10.1f} {ratio:>8.2f}{flag}")
    print(f"worst ratio {worst:.2f} (target <= {TARGET_RATIO})")
    if args.json:
        print(json.dumps({"baseline_s": baseline, "handlers_s": figures, "worst_ratio": worst}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
