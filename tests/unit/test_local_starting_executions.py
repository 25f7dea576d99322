"""moto's task-token calls while another execution is still starting (local/starting_executions.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
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
    """A RUNNING execution as moto holds it between its creation and its worker's first step."""
    arn = sfn.create_state_machine(
        name="waits", definition=json.dumps(WAITING), roleArn=f"arn:aws:iam::{ACCOUNT}:role/r"
    )["stateMachineArn"]
    execution_arn = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    backend = stepfunctions_parser_backends[ACCOUNT][REGION]
    deadline = time.monotonic() + 5
    while (execution := backend.describe_execution(execution_arn)).exec_worker is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    execution.exec_worker.env = None  # the moment before the worker builds its environment
    return execution


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
