"""Issue 11 row 15: no task token in any log line.

A task token resumes a waiting flow: whoever reads one can approve an order or end its undo window.
Tokens were in the state machine's logged execution data (checked on the template, below and in
tests/infra/test_attack_row15_execution_logs.py), and a handler holding one logs its event as soon as
an operator turns on Powertools' event logging (POWERTOOLS_LOGGER_LOG_EVENT=true), or quotes it in the
validation error Lambda's runtime logs. Here the local stack runs an approval and an undo with event
logging turned on and every logger at DEBUG, and every line the functions log is searched for every
token the flow handed out.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import uuid
from collections.abc import Iterator

import boto3
import pytest

from cartpilot.kernel.observability import logger as powertools_logger
from cartpilot_local.lambda_runtime import load_handler
from cartpilot_local.stack import FUNCTIONS, FUNCTIONS_DIR, LocalStack
from tests.e2e.conftest import Stack

APPROVAL_GOAL = "Buy me 2 pairs of running shoes, size 42, and gift-wrap them"
_shoppers = itertools.count(951)


class _Lines(logging.Handler):
    """Every record as the function's logger writes it (Powertools' JSON line, or the stdlib's)."""

    def __init__(self, formatter: logging.Formatter | None) -> None:
        super().__init__(logging.DEBUG)
        if formatter is not None:
            self.setFormatter(formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _fresh_containers(local: LocalStack) -> None:
    """New containers load the handlers again, reading the environment as a cold start does."""
    for spec in FUNCTIONS:
        local.runtime.register(
            spec.name, functools.partial(load_handler, FUNCTIONS_DIR / spec.directory / "app.py")
        )


class Captured:
    def __init__(self, *handlers: _Lines) -> None:
        self.handlers = handlers

    def lines(self) -> list[str]:
        return [line for handler in self.handlers for line in handler.lines]

    def holding(self, tokens: set[str]) -> list[str]:
        return [line for line in self.lines() if any(token in line for token in tokens)]


@pytest.fixture
def logged(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Captured]:
    """The functions' log lines while the test runs, with event logging on and everything at DEBUG."""
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    _fresh_containers(stack.local)
    product = logging.getLogger("cartpilot")
    underlying = powertools_logger._logger
    powertools = _Lines(underlying.handlers[0].formatter if underlying.handlers else None)
    stdlib = _Lines(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    levels = (underlying.level, product.level)
    underlying.addHandler(powertools)
    product.addHandler(stdlib)
    logging.getLogger().addHandler(stdlib)
    underlying.setLevel(logging.DEBUG)
    product.setLevel(logging.DEBUG)
    try:
        yield Captured(powertools, stdlib)
    finally:
        underlying.removeHandler(powertools)
        product.removeHandler(stdlib)
        logging.getLogger().removeHandler(stdlib)
        underlying.setLevel(levels[0])
        product.setLevel(levels[1])
        monkeypatch.delenv("POWERTOOLS_LOGGER_LOG_EVENT")
        _fresh_containers(stack.local)


def _tokens_handed_out(stack: Stack, since: int) -> set[str]:
    return {
        str(invocation.event["taskToken"])
        for invocation in stack.local.runtime.invocations[since:]
        if isinstance(invocation.event, dict) and invocation.event.get("taskToken")
    }


def test_an_approval_and_an_undo_log_no_task_token(stack: Stack, logged: Captured):
    since = len(stack.local.runtime.invocations)
    goal_id = stack.api.submit(f"shopper-{next(_shoppers):04d}", APPROVAL_GOAL).json()["goalId"]
    link = stack.api.wait_for_approval_link(goal_id)
    assert stack.api.decide(link, "approve").status_code == 200
    assert stack.api.wait_for(goal_id)["status"] == "COMPLETED"
    assert stack.api.undo(goal_id).status_code == 202
    undone = stack.api.wait_for(goal_id, statuses={"UNDONE"})
    assert undone["status"] == "UNDONE"
    ledger = stack.ledger()
    assert len(ledger["charges"]) == 1 and len(ledger["refunds"]) == 1
    events = stack.events(goal_id)
    assert (
        events.index("approval.approved") < events.index("order.completed") < events.index("undo.requested")
    )
    assert stack.api.audit(goal_id)["verification"]["valid"] is True

    tokens = _tokens_handed_out(stack, since)
    assert len(tokens) == 1  # the approval's: the undo is an execution of its own, not a waiting task
    assert any(goal_id in line for line in logged.lines())  # the capture saw the functions' lines
    assert logged.holding(tokens) == []


def test_a_malformed_event_holding_a_token_is_refused_without_quoting_it(stack: Stack, logged: Captured):
    token = "AQCEAAAAKgAAAAMAAAAAAAAAAf" + uuid.uuid4().hex + uuid.uuid4().hex
    response = boto3.client("lambda").invoke(
        FunctionName="approval", Payload=json.dumps({"planId": "p", "taskToken": token}).encode()
    )
    assert response.get("FunctionError") == "Unhandled"
    error = json.loads(response["Payload"].read())
    # What Lambda's runtime would print to the function's log: the error's type, message and trace.
    # pydantic shortens the input it quotes: no piece of the token may show, not just all of it.
    pieces = {token[start : start + 12] for start in range(len(token) - 12)}
    assert [piece for piece in pieces if piece in json.dumps(error)] == []
    assert error["errorType"] == "MalformedTaskEvent"
    assert "goalId" in error["errorMessage"]
    assert logged.holding({token}) == []
