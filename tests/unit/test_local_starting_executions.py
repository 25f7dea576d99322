"""moto's task-token calls while another execution is still starting (local/starting_executions.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.stepfunctions.parser.api import ExecutionStatus
from moto.stepfunctions.parser.models import StepFunctionsParserBackend, stepfunctions_parser_backends

from cartpilot_local.starting_executions import (
    install_starting_executions,
    starting_executions,
    uninstall_starting_executions,
)

REGION = "us-east-1"
ACCOUNT = "123456789012"
WAITING = {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 30, "End": True}}}


@pytest.fixture
def sfn() -> Iterator[Any]:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield boto3.client("stepfunctions", region_name=REGION)


def _running_execution_still_starting(sfn: Any) -> Any:
    """A RUNNING execution as moto holds it between its creation and its worker's first step: a
    worker without an environment (a stand-in, so no live worker thread is disturbed)."""
    arn = sfn.create_state_machine(
        name="waits", definition=json.dumps(WAITING), roleArn=f"arn:aws:iam::{ACCOUNT}:role/r"
    )["stateMachineArn"]
    backend = stepfunctions_parser_backends[ACCOUNT][REGION]
    (machine,) = [machine for machine in backend.state_machines if machine.arn == arn]
    starting = SimpleNamespace(status=ExecutionStatus.RUNNING, exec_worker=SimpleNamespace(env=None))
    machine.executions.append(starting)
    return starting


def test_without_the_seam_moto_fails_on_an_execution_still_starting(sfn: Any):
    _running_execution_still_starting(sfn)
    with pytest.raises(AttributeError, match="callback_pool_manager"):
        sfn.send_task_success(taskToken="token-nobody-waits-on", output="{}")


def test_with_the_seam_an_unknown_token_is_answered_as_step_functions_does(sfn: Any):
    _running_execution_still_starting(sfn)
    with starting_executions():
        for call in (
            lambda: sfn.send_task_success(taskToken="token-nobody-waits-on", output="{}"),
            lambda: sfn.send_task_failure(taskToken="token-nobody-waits-on", error="E", cause="c"),
            lambda: sfn.send_task_heartbeat(taskToken="token-nobody-waits-on"),
        ):
            with pytest.raises(ClientError) as raised:
                call()
            assert raised.value.response["Error"]["Code"] == "InvalidToken"


def test_install_twice_is_harmless_and_uninstall_restores_moto():
    original = StepFunctionsParserBackend.__dict__["_get_executions"]
    assert install_starting_executions() is True
    try:
        assert install_starting_executions() is False
        with starting_executions():  # an outer install owns it: leaving changes nothing
            pass
        assert StepFunctionsParserBackend.__dict__["_get_executions"] is not original
    finally:
        uninstall_starting_executions()
    assert StepFunctionsParserBackend.__dict__["_get_executions"] is original
