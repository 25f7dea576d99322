"""The validator's start-up: its handler module imports none of what judging needs (the brand, its
Cedar policies, the plan models), the before-snapshot hook loads all of it, and a bad brand or policy
file fails that hook, or the first invocation, before any goal is judged."""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cartpilot import wiring
from cartpilot.audit.trail import AuditTrail
from cartpilot.brands.config import BrandConfigError
from cartpilot.brands.policy import PolicyFileError
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.model import GoalContext, GoalRecord, GoalStatus
from cartpilot.kernel import snapstart
from cartpilot.plans import validation
from cartpilot.plans.verdicts import Finding, RiskTier, Verdict
from cartpilot.wiring import validator
from cartpilot_local.lambda_runtime import LambdaContext, load_handler
from tests.fakes import InMemoryAuditRecords, InMemoryGoalStore
from tests.unit.handler_probe import run_probe

REPO = Path(__file__).resolve().parents[2]
HANDLER = REPO / "functions" / "validator" / "app.py"
GOAL_ID = "g-startup"
PLAN_HASH = "sha256:" + "a" * 64

# What judging loads; the handler module must leave every one of them to the snapshot or first goal.
HEAVY = ("cedarpy", "yaml", "cartpilot.brands.policy", "cartpilot.brands.config", *validator.JUDGING_MODULES)

_PROBE = """
import importlib.util, json, sys
from cartpilot.kernel import models, snapstart

heavy = json.loads(sys.argv[2])
spec = importlib.util.spec_from_file_location("validator_under_test", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
at_import = sorted(name for name in heavy if name in sys.modules)
hooks = [f"{hook.__module__}.{hook.__qualname__}" for hook in snapstart.snapshot_hooks()]
snapstart.run_before_snapshot()
from cartpilot.brands import policy
print(json.dumps({
    "at_import": at_import,
    "hooks": hooks,
    "after_hooks": sorted(name for name in heavy if name in sys.modules),
    "policies_loaded": policy._cached_policies.cache_info().currsize,
    "unbuilt": len(models.unbuilt_models()),
}))
"""


@pytest.fixture
def brand_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the sandbox brand the test may break, as the deployment's brand."""
    root = tmp_path / "brands"
    shutil.copytree(REPO / "brands" / "sandbox", root / "sandbox")
    monkeypatch.setenv("CARTPILOT_BRAND", "sandbox")
    monkeypatch.setenv("CARTPILOT_BRANDS_DIR", str(root))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    snapstart.forget_hooks()
    wiring.reset()
    yield root / "sandbox"
    snapstart.forget_hooks()
    wiring.reset()


def break_policies(directory: Path) -> None:
    path = directory / "policies.cedar"
    text = path.read_text(encoding="utf-8")
    path.write_text(text + '\n@id("broken")\n@reason("broken")\npermit (principal, action, resource) when {\n',
                    encoding="utf-8")  # fmt: skip


def load_validator() -> Callable[[dict[str, Any], LambdaContext], dict[str, Any]]:
    return load_handler(HANDLER)


def context() -> LambdaContext:
    return LambdaContext(
        function_name="validator",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:validator",
    )


def ledger_with_a_goal(records: InMemoryAuditRecords) -> GoalLedger:
    ledger = GoalLedger(InMemoryGoalStore(), AuditTrail(records))
    ledger.store.create(
        GoalRecord(goalId=GOAL_ID, userId="user-1", brand="sandbox", goal="socks", context=GoalContext(),
                   status=GoalStatus.PLANNING, requestHash="h", planHash=PLAN_HASH,
                   createdAt="2026-11-25T00:00:00Z", updatedAt="2026-11-25T00:00:00Z")
    )  # fmt: skip
    return ledger


def test_the_handler_imports_none_of_the_judging_and_the_snapshot_hook_loads_it_all() -> None:
    report = run_probe(_PROBE, str(HANDLER), json.dumps(HEAVY))
    assert report["at_import"] == []
    assert report["hooks"] == ["cartpilot.wiring.validator.prepare"]
    assert report["after_hooks"] == sorted(HEAVY)
    assert report["policies_loaded"] == 1
    assert report["unbuilt"] == 0


def test_the_snapshot_hook_raises_on_a_bad_policy_file_naming_file_and_line(brand_dir: Path) -> None:
    break_policies(brand_dir)
    load_validator()  # the import itself does not read the brand
    with pytest.raises(PolicyFileError) as raised:
        snapstart.run_before_snapshot()
    assert raised.value.path == brand_dir / "policies.cedar"
    assert raised.value.line is not None and raised.value.line > 1


def test_the_snapshot_hook_raises_on_a_bad_brand_file(brand_dir: Path) -> None:
    (brand_dir / "brand.yaml").write_text("limits: [unclosed\n", encoding="utf-8")
    load_validator()
    with pytest.raises(BrandConfigError, match=r"brand\.yaml is not valid YAML"):
        snapstart.run_before_snapshot()


def test_the_first_invocation_with_a_bad_policy_file_fails_and_judges_nothing(
    brand_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = InMemoryAuditRecords()
    ledger = ledger_with_a_goal(records)
    # Cached like the factories they stand for, so wiring.reset() can forget them.
    monkeypatch.setattr(wiring, "ledger", functools.cache(lambda: ledger))
    judged: list[str] = []

    def judge(goal_id: str, plan_hash: str, **_: Any) -> Verdict:
        judged.append(goal_id)
        return Verdict(
            planId="p-1",
            planHash=plan_hash,
            tier=RiskTier.AUTO,
            route="auto",
            approver=None,
            reasons=[Finding(policyId="test.policy", tier=RiskTier.AUTO, message="within policy")],
            checkedAt="2026-11-25T00:00:01Z",
        )

    monkeypatch.setattr(validation, "validate_goal", judge)
    monkeypatch.setattr("cartpilot.wiring.mandates.mandate_guard", lambda: None)
    monkeypatch.setattr("cartpilot.wiring.rollout.rollout_gate", functools.cache(lambda: None))
    monkeypatch.setattr(wiring, "counters", functools.cache(lambda: None))
    break_policies(brand_dir)
    handler = load_validator()
    event = {"goalId": GOAL_ID, "planId": "p-1", "planHash": PLAN_HASH}

    for _ in range(2):  # a failed load is not kept: each invocation fails the same way
        with pytest.raises(PolicyFileError, match=r"policies\.cedar, line \d+"):
            handler(event, context())
    assert judged == []
    goal = ledger.store.require(GOAL_ID)
    assert goal.status is GoalStatus.PLANNING
    assert records.all(GOAL_ID) == []

    # Once the file is fixed the same environment judges the goal.
    shutil.copy(REPO / "brands" / "sandbox" / "policies.cedar", brand_dir / "policies.cedar")
    assert handler(event, context()) == {"route": "auto", "tier": "AUTO", "planHash": PLAN_HASH}
    assert judged == [GOAL_ID]
