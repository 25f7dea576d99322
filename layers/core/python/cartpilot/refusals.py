"""What the API answers when it refuses: one error type, an HTTP status and a stable code."""

from __future__ import annotations

# Step Functions' answers when the flow has stopped waiting for a task token
# (timed out, finished, or the token is otherwise unknown).
TASK_TOKEN_GONE = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})


class Refusal(Exception):
    """A request the API turns down with ``{"error": {"code", "message"}}`` and ``status``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
