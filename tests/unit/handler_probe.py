"""Runs a probe script in a fresh interpreter as a Lambda environment would import a handler: the
sandbox brand, tracing off, the core layer on the path. Fresh, because what an import loads is the
question, and this test process has loaded everything already."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run_probe(probe: str, *args: str) -> Any:
    """The probe's last line of output, as JSON."""
    env = {
        **os.environ,
        "AWS_DEFAULT_REGION": "us-east-1",
        "CARTPILOT_BRAND": "sandbox",
        "CARTPILOT_BRANDS_DIR": str(REPO / "brands"),
        "POWERTOOLS_TRACE_DISABLED": "true",
        "PYTHONPATH": str(REPO / "layers" / "core" / "python"),
    }
    out = subprocess.run(
        [sys.executable, "-c", probe, *args], capture_output=True, text=True, env=env, check=True, cwd=REPO
    )
    return json.loads(out.stdout.strip().splitlines()[-1])
