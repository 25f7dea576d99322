"""bench/cost.py runs a goal on its own local stack and prints the figures in the issue's shape."""

from __future__ import annotations

import json
import subprocess
import sys

from cartpilot_local.stack import REPO_ROOT


def test_cost_json_for_the_auto_and_delivered_paths_has_the_documented_shape():
    # Its own process: the bench starts a local stack, and only one fits in a process.
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "cost.py"), "--json", "--goals", "1", "--paths", "auto,delivered",
         "--warmup", "0"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=REPO_ROOT,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout)

    assert set(result["paths"]) == {"auto", "delivered"}
    auto = result["paths"]["auto"]
    assert auto["statuses"] == ["COMPLETED"]
    for name in ("transitions", "invocations", "ddb_read_units", "ddb_write_units", "usd_per_1000_goals"):
        assert isinstance(auto[name], int | float) and auto[name] > 0, name
    assert auto["log_bytes"] == auto["state_machine_log_bytes"] + auto["lambda_log_bytes"]
    assert abs(auto["usd_per_1000_goals"] - sum(auto["breakdown"].values())) < 0.001
    # One goal submitted through the API; the bench's own reads of the goal are not counted.
    assert auto["api_routes"].count("POST /goals") == 1
    assert not [route for route in auto["api_routes"] if route.startswith("GET /goals")]
    assert {"planner", "payment", "checkout"} <= set(auto["functions"])

    # The same goal's whole life: the order webhooks for shipped and delivered through the API, and
    # the shipment notices by topic and email, on top of what the auto path counts.
    delivered = result["paths"]["delivered"]
    assert delivered["statuses"] == ["COMPLETED (delivered)"]
    assert set(delivered) == set(auto)
    assert delivered["api_routes"].count("POST /webhooks/merchants/sandbox-merchant") == 2
    assert delivered["notifications"] >= auto["notifications"] + 4
    assert delivered["usd_per_1000_goals"] > auto["usd_per_1000_goals"]
    assert abs(delivered["usd_per_1000_goals"] - sum(delivered["breakdown"].values())) < 0.001

    planner = result["planner"]
    assert planner["prompt_tokens_median"] >= 0 and planner["completion_tokens_median"] >= 0
    assert planner["cases"] > 0 and planner["usd_per_1000_plans"] > 0
    assert result["usd_per_1000_goals_with_planner"] > auto["usd_per_1000_goals"]
