"""Which rollout store a deployment gets from its environment: none, the local file, AppConfig, or
AppConfig held down by its floor environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cartpilot.rollout.file_store import FileRolloutStore
from cartpilot.rollout.model import RolloutSettings, RolloutStage
from cartpilot.wiring import rollout as wiring_rollout
from cartpilot.wiring.rollout import reset_rollout, rollout_gate, rollout_store
from tests.unit.appconfig_service import AppConfigService

PILOT = RolloutSettings(stage=RolloutStage.PILOT, pilotUsers=["user-1"], pilotPercent=0)
ALL_SETTINGS = (
    wiring_rollout.ENV_FLAGS_FILE,
    wiring_rollout.ENV_APPLICATION,
    wiring_rollout.ENV_ENVIRONMENT,
    wiring_rollout.ENV_PROFILE,
    wiring_rollout.ENV_DEPLOYMENT_STRATEGY,
    wiring_rollout.ENV_MAX_AGE,
    wiring_rollout.ENV_FLOOR_ENVIRONMENT,
    wiring_rollout.ENV_FLOOR_DEPLOYMENT_STRATEGY,
)


@pytest.fixture(autouse=True)
def no_rollout_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ALL_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    reset_rollout()
    yield
    reset_rollout()


@pytest.fixture
def appconfig(monkeypatch: pytest.MonkeyPatch) -> Iterator[AppConfigService]:
    """A moto account with the rollout's application and profile; the stack's clients served by it."""
    from moto import mock_aws

    from cartpilot.adapters.aws import clients

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        clients.reset_clients()
        service = AppConfigService()
        service.serve(clients.appconfig())
        service.serve(clients.appconfigdata())
        monkeypatch.setenv(wiring_rollout.ENV_APPLICATION, service.application)
        monkeypatch.setenv(wiring_rollout.ENV_ENVIRONMENT, "env-live")
        monkeypatch.setenv(wiring_rollout.ENV_PROFILE, service.profile)
        yield service
        clients.reset_clients()


def test_without_a_rollout_everything_runs_and_nothing_can_change_that():
    store = rollout_store()
    assert store.read() == RolloutSettings()
    assert rollout_gate().may_mutate("anyone")
    rollout_gate().check_accepting()
    with pytest.raises(RuntimeError, match="no rollout store configured"):
        store.write(RolloutSettings(stage=RolloutStage.OFF), actor="operator:ana", reason="stop")
    assert rollout_store().read().stage is RolloutStage.ALL


def test_the_store_and_gate_are_kept_until_reset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    before = rollout_store()
    gate = rollout_gate()
    monkeypatch.setenv(wiring_rollout.ENV_FLAGS_FILE, str(tmp_path / "flags.json"))
    assert rollout_store() is before and rollout_gate() is gate
    reset_rollout()
    assert isinstance(rollout_store(), FileRolloutStore) and rollout_gate() is not gate


def test_the_local_stack_reads_its_flags_file_on_every_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "state" / "rollout-flags.json"
    monkeypatch.setenv(wiring_rollout.ENV_FLAGS_FILE, str(path))
    store = rollout_store()
    assert isinstance(store, FileRolloutStore) and store.path == path
    store.write(PILOT, actor="local", reason="local stack started")
    gate = rollout_gate()
    assert gate.may_mutate("user-1") and not gate.may_mutate("user-2")
    FileRolloutStore(path).write(PILOT.model_copy(update={"killSwitch": True}), actor="a", reason="r")
    assert not gate.may_mutate("user-1")


def test_the_flags_file_wins_over_appconfig(tmp_path: Path, appconfig: AppConfigService, monkeypatch):
    appconfig.deploy("env-live", RolloutSettings(stage=RolloutStage.OFF))
    monkeypatch.setenv(wiring_rollout.ENV_FLAGS_FILE, str(tmp_path / "flags.json"))
    FileRolloutStore(tmp_path / "flags.json").write(PILOT, actor="local", reason="start")
    assert rollout_store().read() == PILOT


def test_functions_read_appconfig_and_may_not_write_it(appconfig: AppConfigService):
    appconfig.deploy("env-live", PILOT)
    store = rollout_store()
    assert store.read() == PILOT
    assert rollout_gate().may_mutate("user-1") and not rollout_gate().may_mutate("user-2")
    with pytest.raises(RuntimeError, match="read only"):
        store.write(RolloutSettings(), actor="operator:ana", reason="all in")
    assert appconfig.deployments == [] and appconfig.versions == []


def test_with_a_deployment_strategy_a_change_is_a_hosted_version_deployed_with_it(
    appconfig: AppConfigService, monkeypatch: pytest.MonkeyPatch
):
    appconfig.deploy("env-live", PILOT)
    monkeypatch.setenv(wiring_rollout.ENV_DEPLOYMENT_STRATEGY, "strategy-gradual")
    monkeypatch.setenv(wiring_rollout.ENV_MAX_AGE, "0")
    store = rollout_store()
    store.write(RolloutSettings(), actor="operator:ana", reason="all in")
    assert [(d["EnvironmentId"], d["DeploymentStrategyId"]) for d in appconfig.deployments] == [
        ("env-live", "strategy-gradual")
    ]
    assert appconfig.settings("env-live") == RolloutSettings()
    assert store.read() == RolloutSettings()


def test_how_long_a_read_is_kept_comes_from_the_environment(
    appconfig: AppConfigService, monkeypatch: pytest.MonkeyPatch
):
    appconfig.deploy("env-live", PILOT)
    kept = rollout_store()
    assert kept.read() == PILOT
    appconfig.deploy("env-live", RolloutSettings(killSwitch=True))
    # The default keeps a read for seconds: the flip is not seen yet.
    assert kept.read() == PILOT
    monkeypatch.setenv(wiring_rollout.ENV_MAX_AGE, "0")
    reset_rollout()
    fresh = rollout_store()
    assert fresh.read().killSwitch
    appconfig.deploy("env-live", PILOT)
    assert fresh.read() == PILOT


def test_the_floor_environment_holds_the_live_settings_down(
    appconfig: AppConfigService, monkeypatch: pytest.MonkeyPatch
):
    appconfig.deploy("env-live", PILOT)
    appconfig.deploy("env-floor", RolloutSettings(stage=RolloutStage.READ_ONLY))
    monkeypatch.setenv(wiring_rollout.ENV_FLOOR_ENVIRONMENT, "env-floor")
    monkeypatch.setenv(wiring_rollout.ENV_MAX_AGE, "0")
    store = rollout_store()
    assert store.read() == PILOT.model_copy(update={"stage": RolloutStage.READ_ONLY})
    # What the functions' gate reads is held down too.
    assert not rollout_gate().may_mutate("user-1")
    assert rollout_gate().planned_only_reason("user-1") is not None


def test_a_restricting_change_goes_to_the_floor_first_with_its_own_strategy(
    appconfig: AppConfigService, monkeypatch: pytest.MonkeyPatch
):
    appconfig.deploy("env-live", PILOT)
    appconfig.deploy("env-floor", PILOT)
    monkeypatch.setenv(wiring_rollout.ENV_DEPLOYMENT_STRATEGY, "strategy-gradual")
    monkeypatch.setenv(wiring_rollout.ENV_FLOOR_ENVIRONMENT, "env-floor")
    monkeypatch.setenv(wiring_rollout.ENV_FLOOR_DEPLOYMENT_STRATEGY, "strategy-at-once")
    monkeypatch.setenv(wiring_rollout.ENV_MAX_AGE, "0")
    store = rollout_store()
    halted = PILOT.model_copy(update={"killSwitch": True})
    store.write(halted, actor="operator:ana", reason="incident")
    assert [(d["EnvironmentId"], d["DeploymentStrategyId"]) for d in appconfig.deployments] == [
        ("env-floor", "strategy-at-once"),
        ("env-live", "strategy-gradual"),
    ]
    assert appconfig.settings("env-floor") == RolloutSettings(stage=RolloutStage.PILOT, killSwitch=True)
    assert store.read() == halted


def test_a_floor_without_a_deployment_strategy_is_read_only(
    appconfig: AppConfigService, monkeypatch: pytest.MonkeyPatch
):
    appconfig.deploy("env-live", PILOT)
    appconfig.deploy("env-floor", PILOT)
    monkeypatch.setenv(wiring_rollout.ENV_DEPLOYMENT_STRATEGY, "strategy-gradual")
    monkeypatch.setenv(wiring_rollout.ENV_FLOOR_ENVIRONMENT, "env-floor")
    with pytest.raises(RuntimeError, match="read only"):
        rollout_store().write(RolloutSettings(stage=RolloutStage.OFF), actor="operator:ana", reason="stop")
    assert appconfig.deployments == []
