"""``cartpilot rollout show|set``: against a running local stack's ``/_local/rollout`` and, with
``--aws``, against the deployment's AppConfig and audit trail (moto)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from cartpilot.rollout.cli import rollout_command
from cartpilot.rollout.desk import recent_changes
from cartpilot.rollout.model import RolloutSettings, RolloutStage
from cartpilot.wiring import rollout as wiring_rollout
from cartpilot_local.rollout import LocalRollout, rollout_routes
from cartpilot_local.servers import serve_in_thread
from tests.unit.appconfig_service import AppConfigService

BRAND = "sandbox"
PILOT = RolloutSettings(stage=RolloutStage.PILOT, pilotUsers=["user-1"], pilotPercent=10)
PILOT_LINE = "pilot | pilot users user-1 | pilot 10% | kill switch off"


def _changes() -> list[dict[str, Any]]:
    from cartpilot import wiring

    return recent_changes(wiring.audit(), brand=BRAND)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = rollout_command(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _refused(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Runs argv, expecting a refusal: (exit code, what stderr said)."""
    try:
        code = rollout_command(list(argv))
    except SystemExit as exc:  # argparse refuses what it can check itself
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


# --- the local stack -----------------------------------------------------------------------------


class Stack:
    def __init__(self, url: str, rollout: LocalRollout) -> None:
        self.url = url
        self.rollout = rollout


@pytest.fixture
def stack(aws_tables: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """The local stack's rollout routes on loopback, over a flags file at stage pilot."""
    monkeypatch.setenv("LOGNAME", "ana")
    monkeypatch.setenv("USER", "ana")
    rollout = LocalRollout(tmp_path, BRAND)
    rollout.initialise(PILOT)
    server = serve_in_thread(Starlette(routes=rollout_routes(rollout)))
    try:
        yield Stack(server.url, rollout)
    finally:
        server.stop()


def test_show_prints_the_stage_pilot_kill_switch_and_flags_file(stack: Stack, capsys):
    code, out, err = _run(capsys, "show", "--api", stack.url)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"brand {BRAND}: {PILOT_LINE}",
        f"  flags file {stack.rollout.path}",
        "no changes recorded",
    ]


def test_set_changes_the_flags_file_and_show_lists_the_audited_change(stack: Stack, capsys):
    code, out, err = _run(
        capsys, "set", "read-only", "--kill-switch", "on", "--reason", "incident 42",
        "--actor", "operator:bo", "--api", stack.url + "/",
    )  # fmt: skip
    assert (code, err) == (0, "")
    halted = "read-only | pilot users user-1 | pilot 10% | kill switch ON"
    assert out == f"{PILOT_LINE} -> {halted}\n"
    assert stack.rollout.store.read() == PILOT.model_copy(
        update={"stage": RolloutStage.READ_ONLY, "killSwitch": True}
    )
    (change,) = _changes()
    assert (change["actor"], change["reason"], change["to"]["killSwitch"]) == (
        "operator:bo",
        "incident 42",
        True,
    )

    code, out, _ = _run(capsys, "show", "--api", stack.url)
    lines = out.splitlines()
    assert code == 0 and lines[0] == f"brand {BRAND}: {halted}" and lines[2] == "recent changes:"
    assert lines[3] == f'  {change["at"]}  operator:bo: {PILOT_LINE} -> {halted}  ("incident 42")'


def test_set_takes_pilot_users_and_percent_and_names_the_operator_by_default(stack: Stack, capsys):
    code, out, _ = _run(
        capsys, "set", "--pilot-users", " user-9, user-2,,", "--pilot-percent", "0", "--reason", "smaller pilot",
        "--api", stack.url,
    )  # fmt: skip
    assert code == 0
    assert out == f"{PILOT_LINE} -> pilot | pilot users user-2,user-9 | kill switch off\n"
    assert stack.rollout.store.read() == RolloutSettings(
        stage=RolloutStage.PILOT, pilotUsers=["user-2", "user-9"], pilotPercent=0
    )
    assert [c["actor"] for c in _changes()] == ["operator:ana"]


def test_the_kill_switch_goes_off_again(stack: Stack, capsys):
    _run(capsys, "set", "--kill-switch", "on", "--reason", "halt", "--api", stack.url)
    code, out, _ = _run(capsys, "set", "--kill-switch", "off", "--reason", "resume", "--api", stack.url)
    assert code == 0 and out.endswith("-> " + PILOT_LINE + "\n")
    assert stack.rollout.store.read() == PILOT
    assert [c["reason"] for c in _changes()] == ["halt", "resume"]


BAD_INPUT = [
    pytest.param(["set", "sometimes", "--reason", "x"], 2, "invalid choice: 'sometimes'", id="unknown-stage"),
    pytest.param(["set", "--kill-switch", "maybe", "--reason", "x"], 2, "invalid choice: 'maybe'", id="kill-switch"),
    pytest.param(["set", "off"], 2, "the following arguments are required: --reason", id="no-reason"),
    pytest.param(["set", "--pilot-percent", "ten", "--reason", "x"], 2, "invalid int value", id="percent-not-int"),
    pytest.param(["set", "--pilot-percent", "101", "--reason", "x"], 1, "less than or equal to 100", id="percent-high"),
    pytest.param(["set", "--pilot-percent", "-1", "--reason", "x"], 1, "greater than or equal to 0", id="percent-low"),
    pytest.param(["set", "off", "--reason", "   "], 1, "a rollout change needs a reason", id="blank-reason"),
    pytest.param(["set", "--pilot-users", "bad user!", "--reason", "x"], 1, "pilot user ids must match", id="user-id"),
    pytest.param(["show", "--aws", "--api", "http://127.0.0.1:1"], 2, "not allowed with argument", id="two-targets"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "exit_code", "message"), BAD_INPUT)
def test_bad_input_exits_non_zero_with_a_clear_message_and_changes_nothing(
    stack: Stack, capsys, argv: list[str], exit_code: int, message: str
):
    before = stack.rollout.path.read_bytes()
    code, err = _refused(capsys, *argv, *([] if "--api" in argv else ["--api", stack.url]))
    assert code == exit_code and message in err
    if exit_code == 1:
        assert err.startswith("cartpilot rollout: ")
    assert stack.rollout.path.read_bytes() == before
    assert _changes() == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("command", [["show"], ["set", "off", "--reason", "x"]])
def test_no_local_stack_running_is_said_plainly(capsys, command: list[str]):
    api = f"http://127.0.0.1:{_free_port()}"
    code, out, err = _run(capsys, *command, "--api", api)
    assert (code, out) == (1, "")
    assert err == f"cartpilot rollout: no local stack answers at {api} (ConnectError)\n"


def test_a_server_that_is_not_the_stack_is_said_plainly(capsys):
    async def not_here(request: Any) -> PlainTextResponse:
        return PlainTextResponse("Not Found", status_code=404)

    server = serve_in_thread(Starlette(routes=[Route("/_local/rollout", not_here, methods=["GET", "POST"])]))
    try:
        code, out, err = _run(capsys, "show", "--api", server.url)
    finally:
        server.stop()
    assert (code, out) == (1, "")
    assert err == "cartpilot rollout: HTTP 404\n"


# --- --aws: AppConfig and the stack's audit trail ------------------------------------------------


@pytest.fixture
def deployed(aws_tables: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> AppConfigService:
    """The deployment's AppConfig (live environment at stage pilot) named by the environment."""
    from cartpilot.adapters.aws import clients

    service = AppConfigService()
    service.serve(clients.appconfig())
    service.serve(clients.appconfigdata())
    service.deploy("env-live", PILOT)
    for name, value in {
        wiring_rollout.ENV_APPLICATION: service.application,
        wiring_rollout.ENV_ENVIRONMENT: "env-live",
        wiring_rollout.ENV_PROFILE: service.profile,
        wiring_rollout.ENV_DEPLOYMENT_STRATEGY: "strategy-all-at-once",
        wiring_rollout.ENV_MAX_AGE: "0",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(wiring_rollout.ENV_FLAGS_FILE, raising=False)
    monkeypatch.delenv(wiring_rollout.ENV_FLOOR_ENVIRONMENT, raising=False)
    wiring_rollout.reset_rollout()
    return service


def test_show_on_aws_prints_the_deployed_settings(deployed: AppConfigService, capsys):
    code, out, err = _run(capsys, "show", "--aws")
    assert (code, err) == (0, "")
    assert out.splitlines() == [f"brand {BRAND}: {PILOT_LINE}", "no changes recorded"]


def test_set_on_aws_deploys_a_hosted_version_and_audits_it(deployed: AppConfigService, capsys):
    code, out, err = _run(
        capsys, "set", "off", "--reason", "stop the pilot", "--actor", "operator:bo", "--aws"
    )
    assert (code, err) == (0, "")
    assert out == f"{PILOT_LINE} -> off | pilot users user-1 | pilot 10% | kill switch off\n"
    off = PILOT.model_copy(update={"stage": RolloutStage.OFF})
    assert deployed.settings("env-live") == off
    assert [
        (d["EnvironmentId"], d["DeploymentStrategyId"], d["Description"]) for d in deployed.deployments
    ] == [("env-live", "strategy-all-at-once", "operator:bo: stop the pilot")]
    (change,) = _changes()
    assert (change["actor"], change["reason"], change["from"]["stage"], change["to"]["stage"]) == (
        "operator:bo", "stop the pilot", "pilot", "off"
    )  # fmt: skip

    code, out, _ = _run(capsys, "show", "--aws")
    assert code == 0
    assert out.splitlines()[:2] == [
        f"brand {BRAND}: off | pilot users user-1 | pilot 10% | kill switch off",
        "recent changes:",
    ]
    assert '("stop the pilot")' in out.splitlines()[2]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["set", "--pilot-percent", "250", "--reason", "x"], "less than or equal to 100"),
        (["set", "all", "--reason", ""], "a rollout change needs a reason"),
        (["set", "all", "--reason", "x" * 501], "longer than 500 characters"),
        (["set", "--pilot-users", "a b", "--reason", "x"], "pilot user ids must match"),
    ],
)
def test_a_refused_change_on_aws_deploys_nothing_and_audits_nothing(
    deployed: AppConfigService, capsys, argv: list[str], message: str
):
    code, out, err = _run(capsys, *argv, "--aws")
    assert (code, out) == (1, "")
    assert err.startswith("cartpilot rollout: ") and message in err
    assert (deployed.versions, deployed.deployments) == ([], [])
    assert deployed.settings("env-live") == PILOT
    assert _changes() == []


def test_a_stack_without_a_rollout_shows_stage_all_and_refuses_changes(
    aws_tables: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys
):
    for name in (wiring_rollout.ENV_FLAGS_FILE, wiring_rollout.ENV_APPLICATION):
        monkeypatch.delenv(name, raising=False)
    wiring_rollout.reset_rollout()
    code, out, _ = _run(capsys, "show", "--aws")
    assert code == 0 and out.splitlines()[0] == f"brand {BRAND}: all | kill switch off"
    code, out, err = _run(capsys, "set", "off", "--reason", "stop", "--aws")
    assert (code, out) == (1, "")
    assert err == "cartpilot rollout: this deployment has no rollout store configured\n"
    assert _changes() == []
