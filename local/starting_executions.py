"""Task-token calls in moto's engine skip executions that are still starting, as Step Functions does.

moto answers ``SendTaskSuccess``, ``SendTaskFailure`` and ``SendTaskHeartbeat`` by asking every
execution whether one of its tasks waits on the token, through each execution's worker
environment. An execution started a moment ago has no worker (or no environment) yet, and moto
then raises ``AttributeError`` instead of answering: with the order flow starting a nested step
loop for every goal, approvals decided while other goals start hit it. An execution that has not
started cannot have handed out the token, so leaving it out of the search changes no answer.

This replaces the one lookup those calls share (``StepFunctionsParserBackend._get_executions``);
nothing in a Lambda bundle imports this module.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from moto.stepfunctions.parser.models import StepFunctionsParserBackend

_lock = threading.Lock()
_original: list[Any] = []


def has_started(execution: Any) -> bool:
    """Whether the execution's worker has built the environment its tasks wait in."""
    worker = getattr(execution, "exec_worker", None)
    return getattr(worker, "env", None) is not None


def _started_executions(self: StepFunctionsParserBackend, execution_status: Any = None) -> list[Any]:
    executions: list[Any] = _original[0](self, execution_status)
    return [execution for execution in executions if has_started(execution)]


def install_starting_executions() -> bool:
    """Installs the lookup; False (and nothing changed) when it is already installed."""
    with _lock:
        if _original:
            return False
        _original.append(StepFunctionsParserBackend.__dict__["_get_executions"])
        StepFunctionsParserBackend._get_executions = _started_executions  # type: ignore[method-assign]
        return True


def uninstall_starting_executions() -> None:
    with _lock:
        if _original:
            StepFunctionsParserBackend._get_executions = _original.pop()  # type: ignore[method-assign]


@contextmanager
def starting_executions() -> Iterator[None]:
    """Installed while open, unless an outer install owns it."""
    installed = install_starting_executions()
    try:
        yield
    finally:
        if installed:
            uninstall_starting_executions()
