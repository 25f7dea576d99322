"""CartPilot against a UCP merchant in its own process, for each published version, with and without catalog.

The sandbox merchant runs as ``cartpilot merchant`` (as a merchant written by others would run), checks
every request it receives and every response it sends against the JSON Schemas of its version in
``../shared/specs``, and CartPilot's local stack points at it with ``cartpilot local --merchant-url``
(and ``--feed`` where the merchant has no catalog). The seed goal is approved; the low-risk goal runs
on its own; each ends COMPLETED with one order and one charge.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cartpilot_local.client import CartPilotClient
from cartpilot_local.stack import REPO_ROOT
from tests.conftest import SEED_GOAL
from tests.e2e.conftest import LOW_RISK_GOAL
from tests.e2e.stack_process import (
    MerchantProcess,
    StackProcess,
    running_merchant_process,
    running_stack_process,
    write_feed,
)

# 2026-01-11 defines no catalog capability: at a merchant of that version CartPilot always plans
# from the brand's product feed.
CONFORMANCE_DIR = REPO_ROOT / "test-results" / "ucp-conformance"
COMBINATIONS = [("2026-04-08", True), ("2026-04-08", False), ("2026-01-11", False)]


@pytest.fixture(params=COMBINATIONS, ids=lambda p: f"{p[0]}-{'catalog' if p[1] else 'feed'}")
def outside_merchant(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[MerchantProcess, StackProcess, bool]]:
    version, catalog = request.param
    feed = None if catalog else write_feed(tmp_path / "feed.tsv")
    with (
        running_merchant_process(tmp_path / "merchant.log", ucp_version=version, catalog=catalog) as merchant,
        running_stack_process(tmp_path / "stack.log", merchant_url=merchant.url, feed=feed) as stack,
    ):
        yield merchant, stack, catalog


def test_seed_and_low_risk_goals_complete_at_an_outside_merchant(
    outside_merchant: tuple[MerchantProcess, StackProcess, bool],
) -> None:
    merchant, stack, catalog = outside_merchant
    api = CartPilotClient(stack.api_url)

    seed = api.submit("user-1", SEED_GOAL).json()["goalId"]
    link = api.wait_for_approval_link(seed)
    assert api.decide(link, "approve").status_code == 200
    seed_done = api.wait_for(seed)
    assert seed_done["status"] == "COMPLETED", seed_done

    low_risk = api.submit("user-1", LOW_RISK_GOAL).json()["goalId"]
    low_done = api.wait_for(low_risk)
    assert low_done["status"] == "COMPLETED", low_done
    assert low_done["verdict"]["route"] == "auto"

    ledger = merchant.ledger()
    assert len(ledger["orders"]) == 2 and len(ledger["charges"]) == 2 and ledger["refunds"] == []
    charged = sorted(charge["amount"] for charge in ledger["charges"])
    planned = sorted(goal["plan"]["summary"]["total"]["amount_minor"] for goal in (seed_done, low_done))
    assert charged == planned

    report = merchant.conformance()
    summary = (
        f"UCP {report['version']} ({'catalog' if catalog else 'feed'}): {report['validated']['requests']} "
        f"requests and {report['validated']['responses']} responses validated against the schemas, "
        f"{len(report['violations'])} violations"
    )
    print(summary)
    # Also kept beside the other test artefacts: `make test` prints these lines after the run.
    CONFORMANCE_DIR.mkdir(parents=True, exist_ok=True)
    (CONFORMANCE_DIR / f"{report['version']}-{'catalog' if catalog else 'feed'}.txt").write_text(
        summary + "\n"
    )
    assert report["violations"] == []
    assert report["validated"]["requests"] > 0 and report["validated"]["responses"] > 0
