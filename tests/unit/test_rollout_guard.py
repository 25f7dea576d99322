"""The rollout guard: an anomaly alarm drops the brand to read-only, once, and tells its operators.

And the floor that makes the drop stick on AWS: the guard's restriction goes to an environment no
alarm monitors, so AppConfig's rollback of the live environment cannot undo it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.feature_flags.base import StoreProvider

from cartpilot.audit.trail import AuditTrail
from cartpilot.rollout.desk import ROLLOUT_CHANGED, audit_subject
from cartpilot.rollout.file_store import FileRolloutStore
from cartpilot.rollout.flags import RolloutFlags, StaticFlags, flags_document
from cartpilot.rollout.floor import FlooredRolloutStore, held_down
from cartpilot.rollout.gate import RolloutGate
from cartpilot.rollout.guard import NotAnAlarm, drop_to_read_only, fired_alarm
from cartpilot.rollout.model import PlannedOnlyReason, RolloutSettings, RolloutStage
from tests.fakes import InMemoryAuditRecords

BRAND = "sandbox"
ALARM = "CartPilot-sandbox-Anomaly-CompensationRate"
REASON = "Threshold Crossed: 1 datapoint [40.0 (30/11/26 13:00:00)] was greater than or equal to the threshold (10.0)."


def alarm_event(state: str = "ALARM", name: str = ALARM) -> dict[str, Any]:
    """EventBridge's event for an alarm changing state, as CloudWatch sends it."""
    return {
        "version": "0",
        "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": "123456789012",
        "time": "2026-11-30T13:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}"],
        "detail": {
            "alarmName": name,
            "state": {"value": state, "reason": REASON, "timestamp": "2026-11-30T13:00:00.000+0000"},
            "previousState": {"value": "OK", "reason": "fine", "timestamp": "2026-11-30T12:55:00.000+0000"},
            "configuration": {"metrics": []},
        },
    }


class MemoryStore:
    """A ``RolloutStore`` that records each write (one write = one AppConfig deployment on AWS)."""

    def __init__(self, settings: RolloutSettings) -> None:
        self.settings = settings
        self.writes: list[tuple[RolloutSettings, str, str]] = []
        self.refuse_writes = False
        self.flags: StoreProvider = self._Flags(self)

    class _Flags(StoreProvider):
        def __init__(self, owner: MemoryStore) -> None:
            self._owner = owner

        @property
        def get_raw_configuration(self) -> dict[str, Any]:
            return self.get_configuration()

        def get_configuration(self) -> dict[str, Any]:
            return flags_document(self._owner.settings)

    def read(self) -> RolloutSettings:
        return self.settings

    def write(self, settings: RolloutSettings, *, actor: str, reason: str) -> None:
        if self.refuse_writes:
            raise RuntimeError("ConflictException: a deployment is in progress")
        self.settings = settings
        self.writes.append((settings, actor, reason))


class Operators:
    def __init__(self) -> None:
        self.told: list[tuple[str, dict[str, Any]]] = []

    def tell(self, *, subject: str, message: dict[str, Any]) -> None:
        self.told.append((subject, message))


@pytest.fixture
def audit() -> AuditTrail:
    return AuditTrail(InMemoryAuditRecords())


def changes(audit: AuditTrail) -> list[Any]:
    return [r for r in audit.records(audit_subject(BRAND)) if r.event == ROLLOUT_CHANGED]


def guard(store: Any, audit: AuditTrail, operators: Operators, event: dict[str, Any] | None = None) -> Any:
    return drop_to_read_only(
        fired_alarm(event or alarm_event()), brand=BRAND, store=store, audit=audit, operators=operators
    )


# --- the drop ------------------------------------------------------------------------------------


def test_an_alarm_drops_a_pilot_brand_to_read_only_audited_once_and_tells_the_operators(audit):
    store = MemoryStore(RolloutSettings(stage=RolloutStage.PILOT, pilotUsers=["user-1"], pilotPercent=10))
    operators = Operators()

    outcome = guard(store, audit, operators)

    assert (outcome.before, outcome.after, outcome.changed) == (
        RolloutStage.PILOT,
        RolloutStage.READ_ONLY,
        True,
    )
    assert store.settings.stage is RolloutStage.READ_ONLY
    # The pilot list survives the drop, so raising the stage again restores it.
    assert (store.settings.pilotUsers, store.settings.pilotPercent) == (["user-1"], 10)
    assert [(actor, reason) for _, actor, reason in store.writes] == [(f"alarm:{ALARM}", REASON)]
    [record] = changes(audit)
    assert record.actor == f"alarm:{ALARM}"
    assert record.detail["from"]["stage"] == "pilot" and record.detail["to"]["stage"] == "read-only"
    assert record.detail["reason"] == REASON
    [(subject, message)] = operators.told
    assert ALARM in subject and "read-only" in subject
    assert message["alarm"] == ALARM and message["after"] == "read-only" and message["changed"] is True


@pytest.mark.parametrize("stage", [RolloutStage.READ_ONLY, RolloutStage.OFF])
def test_an_alarm_on_a_brand_already_read_only_or_off_changes_nothing_but_still_tells(audit, stage):
    store = MemoryStore(RolloutSettings(stage=stage))
    operators = Operators()

    outcome = guard(store, audit, operators)

    assert outcome.changed is False and outcome.after is stage
    assert store.writes == []  # no new hosted version, no deployment
    assert changes(audit) == []
    assert len(operators.told) == 1 and operators.told[0][1]["changed"] is False


def test_the_same_event_twice_changes_the_brand_once(audit):
    store = MemoryStore(RolloutSettings(stage=RolloutStage.ALL))
    operators = Operators()
    guard(store, audit, operators)
    guard(store, audit, operators)
    assert len(store.writes) == 1 and len(changes(audit)) == 1
    assert [message["changed"] for _, message in operators.told] == [True, False]


def test_the_operators_message_carries_no_goal_or_shopper_data(audit):
    operators = Operators()
    guard(MemoryStore(RolloutSettings(stage=RolloutStage.PILOT, pilotUsers=["user-1"])), audit, operators)
    [(subject, message)] = operators.told
    text = subject + json.dumps(message)
    assert "user-1" not in text and "pilotUsers" not in text
    assert set(message) == {
        "kind", "brand", "alarm", "before", "after", "changed", "alarmReason", "alarmAt", "next",
    }  # fmt: skip


@pytest.mark.parametrize(
    "event",
    [
        alarm_event(state="OK"),
        alarm_event(state="INSUFFICIENT_DATA"),
        {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}},
        {"detail": {"alarmName": ALARM, "state": {"value": "ALARM"}}},
        {},
    ],
    ids=["ok", "insufficient-data", "another-event", "no-source", "empty"],
)
def test_anything_but_an_alarm_entering_alarm_is_refused_before_anything_changes(event):
    with pytest.raises(NotAnAlarm):
        fired_alarm(event)


def test_the_local_file_store_is_dropped_to_read_only(tmp_path: Path, audit):
    store = FileRolloutStore(tmp_path / "rollout.json")
    store.write(RolloutSettings(stage=RolloutStage.ALL), actor="test", reason="start")
    guard(store, audit, Operators())
    assert store.read().stage is RolloutStage.READ_ONLY
    gate = RolloutGate(RolloutFlags(store.flags))
    assert gate.planned_only_reason("user-1") is PlannedOnlyReason.READ_ONLY


def test_an_unreadable_document_is_replaced_by_read_only(tmp_path: Path, audit):
    path = tmp_path / "rollout.json"
    path.write_text("{garbage", encoding="utf-8")
    operators = Operators()
    outcome = guard(FileRolloutStore(path), audit, operators)
    assert (outcome.before, outcome.after, outcome.changed) == (None, RolloutStage.READ_ONLY, True)
    assert FileRolloutStore(path).read().stage is RolloutStage.READ_ONLY
    assert len(changes(audit)) == 1 and len(operators.told) == 1


# --- the floor (AWS: the live environment is monitored, the floor is not) -----------------------


def floored(live: RolloutSettings, floor: RolloutSettings | None = None) -> FlooredRolloutStore:
    return FlooredRolloutStore(MemoryStore(live), MemoryStore(floor or RolloutSettings()))  # type: ignore[arg-type]


def test_the_stricter_stage_and_either_kill_switch_are_in_force():
    live = RolloutSettings(stage=RolloutStage.ALL, pilotUsers=["user-1"])
    assert held_down(live, RolloutSettings(stage=RolloutStage.READ_ONLY)).stage is RolloutStage.READ_ONLY
    assert held_down(live, RolloutSettings(killSwitch=True)).killSwitch is True
    assert held_down(RolloutSettings(stage=RolloutStage.OFF), RolloutSettings()).stage is RolloutStage.OFF
    assert held_down(live, RolloutSettings()) == live


def test_the_guard_drop_lands_on_the_floor_and_survives_a_rollback_of_the_live_environment(audit):
    store = floored(RolloutSettings(stage=RolloutStage.PILOT, pilotUsers=["user-1"]))
    guard(store, audit, Operators())
    live, floor = store.live, store.floor
    assert floor.read().stage is RolloutStage.READ_ONLY  # type: ignore[attr-defined]

    # AppConfig rolls the live environment's deployment back (an alarm is firing): the floor holds.
    live.settings = RolloutSettings(stage=RolloutStage.PILOT, pilotUsers=["user-1"])  # type: ignore[attr-defined]
    assert store.read().stage is RolloutStage.READ_ONLY
    gate = RolloutGate(RolloutFlags(store.flags))
    assert gate.planned_only_reason("user-1") is PlannedOnlyReason.READ_ONLY


def test_a_drop_still_holds_when_the_live_environment_refuses_the_deployment(audit):
    store = floored(RolloutSettings(stage=RolloutStage.ALL))
    store.live.refuse_writes = True  # type: ignore[attr-defined]
    guard(store, audit, Operators())
    assert store.read().stage is RolloutStage.READ_ONLY
    assert len(changes(audit)) == 1


def test_raising_the_stage_again_goes_through_the_live_environment_then_lifts_the_floor():
    store = floored(
        RolloutSettings(stage=RolloutStage.READ_ONLY), RolloutSettings(stage=RolloutStage.READ_ONLY)
    )
    store.write(RolloutSettings(stage=RolloutStage.PILOT, pilotUsers=["user-2"]), actor="ops", reason="clear")
    assert store.live.writes[0][0].stage is RolloutStage.PILOT  # type: ignore[attr-defined]
    assert store.floor.read().stage is RolloutStage.PILOT
    assert store.read().pilotUsers == ["user-2"]


def test_a_relaxing_change_the_live_environment_refuses_leaves_the_floor_down():
    store = floored(
        RolloutSettings(stage=RolloutStage.READ_ONLY), RolloutSettings(stage=RolloutStage.READ_ONLY)
    )
    store.live.refuse_writes = True  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError):
        store.write(RolloutSettings(stage=RolloutStage.ALL), actor="ops", reason="clear")
    assert store.read().stage is RolloutStage.READ_ONLY and store.floor.writes == []  # type: ignore[attr-defined]


def test_the_held_down_document_is_a_valid_flags_document():
    store = floored(RolloutSettings(stage=RolloutStage.ALL), RolloutSettings(killSwitch=True))
    flags = RolloutFlags(store.flags)
    assert flags.kill_switch() is True and flags.stage() is RolloutStage.ALL
    assert RolloutFlags(StaticFlags(flags_document(RolloutSettings()))).kill_switch() is False
