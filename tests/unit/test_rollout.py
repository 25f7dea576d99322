"""Staged rollout: the flags document, its Powertools evaluation, the stable hash and the gates."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.feature_flags import FeatureFlags
from aws_lambda_powertools.utilities.feature_flags.exceptions import SchemaValidationError

from cartpilot.audit.trail import AuditTrail
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.lifecycle import FINAL_STATUSES, may_move
from cartpilot.goals.model import GoalStatus
from cartpilot.goals.reasons import ReasonCode, reason_for_error
from cartpilot.plans.verdicts import RiskTier, Verdict
from cartpilot.rollout.desk import RolloutChangeRefused, audit_subject, recent_changes, set_stage
from cartpilot.rollout.file_store import FileFlagsStore, FileRolloutStore
from cartpilot.rollout.flags import (
    RolloutFlags,
    StaticFlags,
    flags_document,
    settings_from_document,
    user_bucket,
)
from cartpilot.rollout.gate import RolloutGate, RolloutHalted, RolloutOff
from cartpilot.rollout.model import PlannedOnlyReason, RolloutSettings, RolloutStage
from cartpilot.rollout.planned_only import hold_back
from tests.fakes.storage import InMemoryAuditRecords, InMemoryGoalStore


def gate_for(settings: RolloutSettings) -> RolloutGate:
    return RolloutGate(RolloutFlags(StaticFlags(flags_document(settings))))


SETTINGS = [
    RolloutSettings(),
    RolloutSettings(stage=RolloutStage.OFF),
    RolloutSettings(stage=RolloutStage.READ_ONLY, pilotUsers=["user-1"], pilotPercent=5),
    RolloutSettings(stage=RolloutStage.PILOT, pilotUsers=["user-2", "user-1"], pilotPercent=100),
    RolloutSettings(stage=RolloutStage.PILOT, pilotPercent=1, killSwitch=True),
    RolloutSettings(stage=RolloutStage.ALL, killSwitch=True),
]


@pytest.mark.parametrize("settings", SETTINGS)
def test_the_flags_document_round_trips(settings: RolloutSettings) -> None:
    document = flags_document(settings)
    # A JSON trip, as AppConfig and the file hand it back.
    assert settings_from_document(json.loads(json.dumps(document))) == settings


def test_the_document_is_what_powertools_evaluates() -> None:
    document = flags_document(RolloutSettings(stage=RolloutStage.PILOT, pilotUsers=["user-1"]))
    flags = FeatureFlags(store=StaticFlags(document))
    assert flags.evaluate(name="stage", default="x") == "pilot"
    assert flags.evaluate(name="kill_switch", default=True) is False
    context = {"user_id": "user-1", "user_bucket": user_bucket("user-1")}
    assert flags.evaluate(name="mutations", context=context, default=False) is True
    context = {"user_id": "user-2", "user_bucket": user_bucket("user-2")}
    assert flags.evaluate(name="mutations", context=context, default=False) is False


def test_a_hand_edited_document_that_breaks_the_schema_is_refused() -> None:
    document = flags_document(RolloutSettings())
    document["kill_switch"]["default"] = "yes"
    with pytest.raises(SchemaValidationError):
        settings_from_document(document)


def test_the_user_bucket_is_stable_and_spread() -> None:
    # Fixed values: the same on every machine and every run (not Python's salted hash()).
    assert [user_bucket(u) for u in ("user-1", "user-2", "shopper-0001")] == [94, 87, 30]
    import hashlib

    assert user_bucket("user-2") == int.from_bytes(hashlib.sha256(b"user-2").digest()[:8], "big") % 100
    buckets = [user_bucket(f"u{i}") for i in range(10_000)]
    assert 900 < sum(b < 10 for b in buckets) < 1100


def test_pilot_percent_picks_the_users_whose_bucket_is_below_it() -> None:
    gate = gate_for(RolloutSettings(stage=RolloutStage.PILOT, pilotPercent=30))
    users = [f"shopper-{i:04d}" for i in range(1, 301)]
    chosen = {u for u in users if gate.may_mutate(u)}
    assert chosen == {u for u in users if user_bucket(u) < 30}
    # Same user, same answer, every time.
    assert chosen == {u for u in users if gate.may_mutate(u)}
    assert not any(gate_for(RolloutSettings(stage=RolloutStage.PILOT)).may_mutate(u) for u in users)
    assert all(
        gate_for(RolloutSettings(stage=RolloutStage.PILOT, pilotPercent=100)).may_mutate(u) for u in users
    )


@pytest.mark.parametrize(
    ("settings", "user", "reason"),
    [
        (RolloutSettings(), "user-2", None),
        (
            RolloutSettings(stage=RolloutStage.READ_ONLY, pilotUsers=["user-1"]),
            "user-1",
            PlannedOnlyReason.READ_ONLY,
        ),
        (RolloutSettings(stage=RolloutStage.PILOT, pilotUsers=["user-1"]), "user-1", None),
        (
            RolloutSettings(stage=RolloutStage.PILOT, pilotUsers=["user-1"]),
            "user-2",
            PlannedOnlyReason.PILOT_EXCLUDED,
        ),
        (RolloutSettings(killSwitch=True), "user-1", PlannedOnlyReason.KILL_SWITCH),
        (RolloutSettings(stage=RolloutStage.OFF), "user-1", PlannedOnlyReason.OFF),
    ],
)
def test_which_plans_are_held_back(
    settings: RolloutSettings, user: str, reason: PlannedOnlyReason | None
) -> None:
    assert gate_for(settings).planned_only_reason(user) == reason


def test_intake_and_step_gates() -> None:
    with pytest.raises(RolloutOff):
        gate_for(RolloutSettings(stage=RolloutStage.OFF)).check_accepting()
    gate_for(RolloutSettings(stage=RolloutStage.READ_ONLY)).check_accepting()
    with pytest.raises(RolloutHalted):
        gate_for(RolloutSettings(killSwitch=True)).check_step()
    # Without the goal's user only the kill switch is known; with it, the stage in force decides too.
    gate_for(RolloutSettings(stage=RolloutStage.READ_ONLY)).check_step()
    for dropped in (
        RolloutSettings(stage=RolloutStage.READ_ONLY),
        RolloutSettings(stage=RolloutStage.OFF),
        RolloutSettings(stage=RolloutStage.PILOT, pilotUsers=["user-2"]),
    ):
        with pytest.raises(RolloutHalted, match="no longer lets this plan run"):
            gate_for(dropped).check_step("user-1")
    gate_for(RolloutSettings(stage=RolloutStage.PILOT, pilotUsers=["user-1"])).check_step("user-1")
    gate_for(RolloutSettings(stage=RolloutStage.ALL)).check_step("user-1")


def test_a_change_naming_the_stage_replaces_an_unreadable_document(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text("{garbage", encoding="utf-8")
    store = FileRolloutStore(path)
    audit = AuditTrail(InMemoryAuditRecords())
    with pytest.raises(RolloutChangeRefused, match="set a stage to replace it"):
        set_stage(store, audit, brand="sandbox", actor="operator:ana", reason="recover", kill_switch=False)
    assert path.read_text(encoding="utf-8") == "{garbage" and audit.records(audit_subject("sandbox")) == []

    change = set_stage(
        store, audit, brand="sandbox", actor="operator:ana", reason="recover", stage="read-only"
    )

    assert change.before is None and store.read() == RolloutSettings(stage=RolloutStage.READ_ONLY)
    (record,) = audit.records(audit_subject("sandbox"))
    assert record.detail["from"] is None and record.detail["to"]["stage"] == "read-only"


def test_an_unreadable_store_fails_closed(tmp_path: Path) -> None:
    gate = RolloutGate(RolloutFlags(FileFlagsStore(tmp_path / "missing.json")))
    with pytest.raises(RolloutHalted):
        gate.check_step()
    assert gate.planned_only_reason("user-1") is PlannedOnlyReason.KILL_SWITCH


def test_planned_only_is_final_and_follows_validation_only() -> None:
    assert GoalStatus.PLANNED_ONLY in FINAL_STATUSES
    assert [s for s in GoalStatus if may_move(s, GoalStatus.PLANNED_ONLY)] == [
        GoalStatus.VALIDATING,
        GoalStatus.PLANNED_ONLY,
    ]
    assert reason_for_error("RolloutHalted") is ReasonCode.ROLLOUT_HALTED
    assert {r.value for r in PlannedOnlyReason} <= {c.value for c in ReasonCode}


class RecordingCounters:
    def __init__(self) -> None:
        self.released: list[str] = []

    def release(self, goal_id: str, *, at: datetime) -> bool:
        self.released.append(goal_id)
        return True


def _verdict(tier: RiskTier, route: Any) -> Verdict:
    return Verdict(planId="p", planHash="sha256:x", tier=tier, route=route, checkedAt="2026-01-01T00:00:00Z")


def test_hold_back_routes_planned_only_and_gives_the_limit_hold_back() -> None:
    ledger = GoalLedger(InMemoryGoalStore(), AuditTrail(InMemoryAuditRecords()))
    counters = RecordingCounters()
    gate = gate_for(RolloutSettings(stage=RolloutStage.READ_ONLY))
    verdict, planned = hold_back(
        "g-1",
        "user-1",
        _verdict(RiskTier.APPROVAL, "approve"),
        gate=gate,
        ledger=ledger,
        counters=counters,  # type: ignore[arg-type]
    )
    assert verdict.route == "planned-only" and verdict.tier is RiskTier.APPROVAL
    assert planned is not None and planned.model_dump(mode="json") == {
        "reason": "ROLLOUT_READ_ONLY",
        "wouldRoute": "approve",
        "tier": "APPROVAL",
    }
    assert counters.released == ["g-1"]


def test_a_denied_plan_stays_denied_at_every_stage() -> None:
    ledger = GoalLedger(InMemoryGoalStore(), AuditTrail(InMemoryAuditRecords()))
    for settings in SETTINGS:
        counters = RecordingCounters()
        denied = _verdict(RiskTier.DENY, "deny")
        verdict, planned = hold_back(
            "g-1",
            "user-1",
            denied,
            gate=gate_for(settings),
            ledger=ledger,
            counters=counters,  # type: ignore[arg-type]
        )
        assert (verdict, planned, counters.released) == (denied, None, [])


def test_stage_changes_are_written_and_audited(tmp_path: Path) -> None:
    store = FileRolloutStore(tmp_path / "flags.json")
    store.write(RolloutSettings(), actor="local", reason="start")
    audit = AuditTrail(InMemoryAuditRecords())
    change = set_stage(
        store, audit, brand="sandbox", actor="operator:ana", reason="pilot week 1",
        stage="pilot", pilot_users=["user-1"], pilot_percent=5,
    )  # fmt: skip
    assert (
        store.read()
        == change.after
        == RolloutSettings(stage=RolloutStage.PILOT, pilotUsers=["user-1"], pilotPercent=5)
    )
    set_stage(store, audit, brand="sandbox", actor="guard", reason="alarm", kill_switch=True)
    (record, _second) = audit.records(audit_subject("sandbox"))
    assert (record.actor, record.event, record.status) == ("operator:ana", "rollout.changed", "pilot")
    assert record.detail["from"]["stage"] == "all" and record.detail["to"]["stage"] == "pilot"
    assert record.detail["reason"] == "pilot week 1"
    changes = recent_changes(audit, brand="sandbox")
    assert [(c["actor"], c["to"]["killSwitch"]) for c in changes] == [
        ("operator:ana", False),
        ("guard", True),
    ]


@pytest.mark.parametrize(
    "change",
    [
        {"reason": " "},
        {"reason": "x", "stage": "sometimes"},
        {"reason": "x", "pilot_percent": 101},
        {"reason": "x", "pilot_users": ["bad user!"]},
    ],
)
def test_a_bad_change_changes_nothing(tmp_path: Path, change: dict[str, Any]) -> None:
    store = FileRolloutStore(tmp_path / "flags.json")
    store.write(RolloutSettings(), actor="local", reason="start")
    before = store.path.read_bytes()
    audit = AuditTrail(InMemoryAuditRecords())
    with pytest.raises(ValueError):
        set_stage(store, audit, brand="sandbox", actor="operator:ana", **change)
    assert store.path.read_bytes() == before
    assert audit.records(audit_subject("sandbox")) == []
    assert isinstance(RolloutChangeRefused("x"), ValueError)


def test_the_file_store_is_read_on_every_check(tmp_path: Path) -> None:
    store = FileRolloutStore(tmp_path / "flags.json")
    store.write(RolloutSettings(), actor="local", reason="start")
    gate = RolloutGate(RolloutFlags(store.flags))
    assert gate.may_mutate("user-1")
    store.write(RolloutSettings(killSwitch=True), actor="local", reason="flip")
    assert not gate.may_mutate("user-1")
