"""Runs ``arn:aws:states:::states:startExecution`` tasks in moto's engine as Step Functions does.

The order flow starts its step loop as a nested (Express) execution with
``startExecution.sync:2``. moto's ``StateTaskServiceSfn`` has the integration but speaks boto3's
dialect where the service speaks its own: it hands the state's parameters (``StateMachineArn``,
``Input``, ``Name``) to boto3 unchanged, reads ``ExecutionArn`` from a boto3 answer that says
``executionArn``, and returns boto3's lowercase ``describe_execution`` keys as the task's result.
This module replaces exactly those methods, so the rest of the engine (Retry, Catch,
ResultSelector, timeouts, history) stays moto's:

- request: ``StateMachineArn``, ``Input``, ``Name``, ``TraceHeader`` become boto3's
  ``stateMachineArn``, ``input`` (JSON text; an object is serialised, none is ``{}``), ``name``,
  ``traceHeader``.
- request-response result: ``{"ExecutionArn", "StartDate"}``.
- ``.sync`` / ``.sync:2`` result: the child's description with Step Functions' names
  (``ExecutionArn``, ``StateMachineArn``, ``Name``, ``Status``, ``StartDate``, ``StopDate``,
  ``Input``, ``InputDetails``, ``Output``, ``OutputDetails``); ``.sync`` keeps ``Input`` and
  ``Output`` as JSON text, ``.sync:2`` parses them. Dates are epoch milliseconds.
- a child that ends FAILED, TIMED_OUT or ABORTED fails the task with ``States.TaskFailed``, whose
  ``Cause`` is that same description as JSON text, carrying the child's ``Error`` and ``Cause``.

moto polls a running child every half second; here the wait polls every few milliseconds, so a
nested step loop adds no idle time to a goal. Nothing in a Lambda bundle imports this module.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast

from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
    StatesErrorNameType,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
    StateTaskServiceSfn,
)
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for

# Step Functions' parameter names of StartExecution -> boto3's.
START_EXECUTION_PARAMETERS = {
    "StateMachineArn": "stateMachineArn",
    "Input": "input",
    "Name": "name",
    "TraceHeader": "traceHeader",
}
# describe_execution's keys -> the names a .sync task's result uses.
_DESCRIPTION_FIELDS = {
    "executionArn": "ExecutionArn",
    "stateMachineArn": "StateMachineArn",
    "name": "Name",
    "status": "Status",
    "startDate": "StartDate",
    "stopDate": "StopDate",
    "input": "Input",
    "inputDetails": "InputDetails",
    "output": "Output",
    "outputDetails": "OutputDetails",
    "error": "Error",
    "cause": "Cause",
    "redriveCount": "RedriveCount",
    "redriveStatus": "RedriveStatus",
    "redriveStatusReason": "RedriveStatusReason",
}
ENDED_WITHOUT_SUCCESS = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
# Between looks at a running child: short at first (most children finish in milliseconds), then
# no more than moto's engine takes to run a state.
FIRST_POLL_SECONDS = 0.005
LONGEST_POLL_SECONDS = 0.05


def start_execution_request(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """boto3's ``start_execution`` arguments for a task state's StartExecution parameters."""
    request: dict[str, Any] = {}
    for name, value in parameters.items():
        request[START_EXECUTION_PARAMETERS.get(name, name)] = value
    given = request.get("input")
    if given is None:
        request["input"] = "{}"  # the service's default: an execution's input is always JSON
    elif not isinstance(given, str):
        request["input"] = json.dumps(given, separators=(",", ":"))
    return request


def epoch_millis(value: Any) -> Any:
    """Dates as the service's task results carry them: milliseconds since the epoch."""
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return value


def submission_result(response: Mapping[str, Any]) -> dict[str, Any]:
    """The request-response result: the started execution's ARN and start date."""
    return {"ExecutionArn": response["executionArn"], "StartDate": epoch_millis(response["startDate"])}


def execution_result(description: Mapping[str, Any], *, parse_json: bool) -> dict[str, Any]:
    """A ``.sync`` (``parse_json=False``) or ``.sync:2`` result from ``describe_execution``'s answer."""
    result: dict[str, Any] = {}
    for key, value in description.items():
        name = _DESCRIPTION_FIELDS.get(key)
        if name is None:
            continue
        if isinstance(value, Mapping):  # inputDetails / outputDetails: {"included": true}
            value = {inner[:1].upper() + inner[1:]: item for inner, item in value.items()}
        elif name in ("Input", "Output") and parse_json and isinstance(value, str):
            value = json.loads(value)
        result[name] = epoch_millis(value)
    if "Input" in result and "InputDetails" not in result:
        result["InputDetails"] = {"Included": True}
    if "Output" in result and "OutputDetails" not in result:
        result["OutputDetails"] = {"Included": True}
    return result


# --- the replaced methods ------------------------------------------------------------------------


def _normalise_parameters(
    task: StateTaskServiceSfn,
    parameters: dict[str, Any],
    boto_service_name: str | None = None,
    service_action_name: str | None = None,
) -> None:
    if service_action_name is None and task._get_boto_service_action() == "start_execution":
        request = start_execution_request(parameters)
        parameters.clear()
        parameters.update(request)


def _eval_service_task(
    task: StateTaskServiceSfn,
    env: Any,
    resource_runtime_part: Any,
    normalised_parameters: dict[str, Any],
    state_credentials: Any,
) -> None:
    client = boto_client_for(
        region=resource_runtime_part.region, service="stepfunctions", state_credentials=state_credentials
    )
    response = getattr(client, task._get_boto_service_action())(**normalised_parameters)
    response.pop("ResponseMetadata", None)
    if task._get_boto_service_action() == "start_execution":
        response = submission_result(response)
    env.stack.append(response)


def _wait_for_child(
    task: StateTaskServiceSfn,
    env: Any,
    resource_runtime_part: Any,
    state_credentials: Any,
    *,
    parse_json: bool,
) -> Callable[[], Any]:
    """The resolver moto's ``_eval_sync`` calls: the child's result once it ended (None while it runs,
    or when the task itself stopped: timed out, or its execution ended)."""
    client: Any = boto_client_for(
        region=resource_runtime_part.region, service="stepfunctions", state_credentials=state_credentials
    )
    execution_arn = env.stack.pop()["ExecutionArn"]

    def resolve() -> Any:
        delay = FIRST_POLL_SECONDS
        while env.is_running():
            description = client.describe_execution(executionArn=execution_arn)
            status = str(description["status"])
            if status != "RUNNING":
                return _ended(task, env, execution_result(description, parse_json=parse_json))
            time.sleep(delay)  # a poll interval, with the child's status re-read after it
            delay = min(delay * 2, LONGEST_POLL_SECONDS)
        return None

    return resolve


def _ended(task: StateTaskServiceSfn, env: Any, result: dict[str, Any]) -> dict[str, Any]:
    if result["Status"] not in ENDED_WITHOUT_SUCCESS:
        return result
    raise FailureEventException(
        FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
            event_type=HistoryEventType.TaskFailed,
            event_details=cast(
                EventDetails,
                {
                    "taskFailedEventDetails": TaskFailedEventDetails(
                        resource=task._get_sfn_resource(),
                        resourceType=task._get_sfn_resource_type(),
                        error=StatesErrorNameType.StatesTaskFailed.to_name(),
                        cause=json.dumps(result, separators=(",", ":")),
                    )
                },
            ),
        )
    )


def _build_sync_resolver(
    task: StateTaskServiceSfn,
    env: Any,
    resource_runtime_part: Any,
    normalised_parameters: dict[str, Any],
    state_credentials: Any,
) -> Callable[[], Any]:
    return _wait_for_child(task, env, resource_runtime_part, state_credentials, parse_json=False)


def _build_sync2_resolver(
    task: StateTaskServiceSfn,
    env: Any,
    resource_runtime_part: Any,
    normalised_parameters: dict[str, Any],
    state_credentials: Any,
) -> Callable[[], Any]:
    return _wait_for_child(task, env, resource_runtime_part, state_credentials, parse_json=True)


_REPLACEMENTS: dict[str, Callable[..., Any]] = {
    "_normalise_parameters": _normalise_parameters,
    "_eval_service_task": _eval_service_task,
    "_build_sync_resolver": _build_sync_resolver,
    "_build_sync2_resolver": _build_sync2_resolver,
}
_lock = threading.Lock()
# moto's own methods while installed (the class's own attributes, restored as they were).
_originals: dict[str, Any] = {}


def install_nested_executions() -> bool:
    """Makes moto's ``states:startExecution`` tasks behave as Step Functions'. Idempotent: False
    when already installed (and nothing changed)."""
    with _lock:
        if _originals:
            return False
        for name, replacement in _REPLACEMENTS.items():
            _originals[name] = StateTaskServiceSfn.__dict__[name]
            setattr(StateTaskServiceSfn, name, replacement)
        return True


def uninstall_nested_executions() -> None:
    """Restores moto's methods (nothing to do when not installed)."""
    with _lock:
        for name, original in _originals.items():
            setattr(StateTaskServiceSfn, name, original)
        _originals.clear()


def nested_executions_installed() -> bool:
    with _lock:
        return bool(_originals)


@contextmanager
def nested_executions() -> Iterator[None]:
    """Installed while open; restores moto's behaviour on exit, unless an outer install owns it."""
    installed_here = install_nested_executions()
    try:
        yield
    finally:
        if installed_here:
            uninstall_nested_executions()
