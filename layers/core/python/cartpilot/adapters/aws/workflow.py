"""The order flow on Step Functions: start an execution, resume or fail a waiting task."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.retries.standard import RetryContext, ThrottledRetryableChecker, TransientRetryableChecker

from cartpilot.goals.ports import TaskTokenGone, WorkflowUnavailable

# Step Functions' answers when the flow has stopped waiting for a task token
# (timed out, finished, or the token is otherwise unknown).
TASK_TOKEN_GONE = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})


class UndoFlowNotConfigured(RuntimeError):
    """This function was deployed without the undo flow's ARN."""


class StepFunctionsWorkflow:
    def __init__(
        self, client: Any, state_machine_arn: str, undo_state_machine_arn: str | None = None
    ) -> None:
        self._client = client
        self._state_machine_arn = state_machine_arn
        self._undo_state_machine_arn = undo_state_machine_arn

    def start(self, name: str, flow_input: dict[str, Any]) -> str:
        """Execution names are unique per state machine, so a second start of the same goal starts nothing."""
        return self._start(self._state_machine_arn, name, flow_input)

    def start_undo(self, name: str, flow_input: dict[str, Any]) -> str:
        if self._undo_state_machine_arn is None:
            raise UndoFlowNotConfigured("environment variable UNDO_STATE_MACHINE_ARN is not set")
        return self._start(self._undo_state_machine_arn, name, flow_input)

    def _start(self, state_machine_arn: str, name: str, flow_input: dict[str, Any]) -> str:
        try:
            response = self._client.start_execution(
                stateMachineArn=state_machine_arn, name=name, input=json.dumps(flow_input)
            )
            return str(response["executionArn"])
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ExecutionAlreadyExists":
                raise
            arn = state_machine_arn.replace(":stateMachine:", ":execution:")
            return f"{arn}:{name}"

    def succeed(self, task_token: str, output: dict[str, Any]) -> None:
        try:
            self._client.send_task_success(taskToken=task_token, output=json.dumps(output))
        except ClientError as exc:
            _raise_if_token_gone(exc)
            _raise_if_transient(exc)
            raise
        except BotoCoreError as exc:
            _raise_if_transient(exc)
            raise

    def fail(self, task_token: str, *, error: str, cause: str) -> None:
        try:
            self._client.send_task_failure(taskToken=task_token, error=error, cause=cause)
        except ClientError as exc:
            _raise_if_token_gone(exc)
            _raise_if_transient(exc)
            raise
        except BotoCoreError as exc:
            _raise_if_transient(exc)
            raise


def _raise_if_token_gone(exc: ClientError) -> None:
    code = exc.response["Error"]["Code"]
    if code in TASK_TOKEN_GONE:
        raise TaskTokenGone(code) from exc


def _raise_if_transient(exc: ClientError | BotoCoreError) -> None:
    """Throttling, a 5xx or a connection that failed even after botocore's own retries: the caller
    may try again later. botocore's retry checkers decide, so the two agree on what is transient."""
    if isinstance(exc, ClientError):
        context = RetryContext(attempt_number=1, parsed_response=exc.response)
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        transient = status >= 500 or any(
            checker.is_retryable(context)
            for checker in (ThrottledRetryableChecker(), TransientRetryableChecker())
        )
    else:
        transient = TransientRetryableChecker().is_retryable(
            RetryContext(attempt_number=1, caught_exception=exc)
        )
    if transient:
        raise WorkflowUnavailable(type(exc).__name__) from exc
