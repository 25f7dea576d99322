"""An event holding a task token is refused without quoting any of the token."""

from __future__ import annotations

import uuid

import pytest

from cartpilot.goals.events import ApprovalRequestEvent, OutcomeEvent
from cartpilot.kernel.task_tokens import MalformedTaskEvent, parse_task_event

TOKEN = "AQCEAAAAKgAAAAMAAAAAAAAAAf" + uuid.uuid4().hex + uuid.uuid4().hex


def _pieces(text: str, size: int = 12) -> set[str]:
    return {text[start : start + size] for start in range(len(text) - size)}


@pytest.mark.parametrize(
    "event",
    [
        {"planId": "p", "planHash": "h", "taskToken": TOKEN},  # a missing field: pydantic quotes the event
        {"goalId": 7, "planId": "p", "planHash": "h", "taskToken": TOKEN},
        [TOKEN],
    ],
)
def test_a_malformed_event_names_fields_never_the_token(event):
    with pytest.raises(MalformedTaskEvent) as refused:
        parse_task_event(ApprovalRequestEvent, event)
    message = str(refused.value)
    assert message.startswith("ApprovalRequestEvent refused:")
    assert not [piece for piece in _pieces(TOKEN) if piece in message]
    assert refused.value.__cause__ is None and refused.value.__suppress_context__


def test_a_well_formed_event_is_parsed():
    event = {"goalId": "g", "kind": "undo_window", "taskToken": TOKEN}
    assert parse_task_event(OutcomeEvent, event).taskToken == TOKEN
