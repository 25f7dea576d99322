"""In-memory workflow engine, notifier and key source, behind the same ports as the AWS adapters."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from cartpilot.goals.ports import TaskTokenGone
from cartpilot.kernel.keyring import KeyRing

# What SNS takes as a subject; the adapter cuts longer ones.
SUBJECT_LIMIT = 100


def _as_sent(value: dict[str, Any]) -> dict[str, Any]:
    """What leaves the process: JSON, taken when sent (later changes to ``value`` are not seen)."""
    sent: dict[str, Any] = json.loads(json.dumps(value, ensure_ascii=False))
    return sent


class FakeWorkflow:
    """Executions by name, and task tokens that wait until resumed, failed, or told to be gone."""

    def __init__(self, arn_prefix: str = "arn:aws:states:us-east-1:123456789012:execution:flow") -> None:
        self.started: dict[str, dict[str, Any]] = {}
        self.undo_started: dict[str, dict[str, Any]] = {}
        self.waiting: set[str] = set()
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._arn_prefix = arn_prefix
        self._lock = threading.Lock()

    def start(self, name: str, flow_input: dict[str, Any]) -> str:
        sent = _as_sent(flow_input)
        with self._lock:
            self.started.setdefault(name, sent)
            return f"{self._arn_prefix}:{name}"

    def start_undo(self, name: str, flow_input: dict[str, Any]) -> str:
        sent = _as_sent(flow_input)
        with self._lock:
            self.undo_started.setdefault(name, sent)
            return f"{self._arn_prefix}-undo:{name}"

    def wait_for(self, task_token: str) -> str:
        """A task of a running flow starts waiting on this token."""
        with self._lock:
            self.waiting.add(task_token)
        return task_token

    def stop_waiting(self, task_token: str) -> None:
        """The task timed out (or its execution ended): the token is gone."""
        with self._lock:
            self.waiting.discard(task_token)

    def succeed(self, task_token: str, output: dict[str, Any]) -> None:
        self._resume("success", {"taskToken": task_token, "output": _as_sent(output)})

    def fail(self, task_token: str, *, error: str, cause: str) -> None:
        self._resume("failure", {"taskToken": task_token, "error": error, "cause": cause})

    def _resume(self, kind: str, call: dict[str, Any]) -> None:
        with self._lock:
            if call["taskToken"] not in self.waiting:
                raise TaskTokenGone("TaskTimedOut")
            self.waiting.discard(call["taskToken"])
            self.calls.append((kind, call))


@dataclass
class RecordingNotifier:
    """What an SNS subscriber would get: the message as JSON, the subject cut to SNS's limit."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)  # the id ``send`` returned, per message

    def send(self, *, kind: str, goal_id: str, user_id: str, subject: str, body: dict[str, Any]) -> str:
        message = _as_sent({"kind": kind, "goalId": goal_id, "userId": user_id, **body})
        self.sent.append({**message, "subject": subject[:SUBJECT_LIMIT]})
        self.message_ids.append(f"m-{len(self.sent)}")
        return self.message_ids[-1]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [message for message in self.sent if message["kind"] == kind]


class StaticKeySource:
    """A key ring held in memory; ``rotate`` adds a key and makes it current, as a rotation does."""

    def __init__(self, secret: dict[str, object] | None = None) -> None:
        self.secret: dict[str, Any] = dict(secret or KeyRing.new_secret("k1"))

    def keyring(self) -> KeyRing:
        return KeyRing.from_secret(self.secret)

    def rotate(self, key_id: str) -> None:
        fresh = KeyRing.new_secret(key_id)
        self.secret = {"current": key_id, "keys": {**self.secret["keys"], **fresh["keys"]}}  # type: ignore[dict-item]
