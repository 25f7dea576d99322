"""The error bases every capability shares, and the wire form of a refusal."""

from __future__ import annotations

from pydantic import BaseModel


class Refusal(Exception):
    """A request the API turns down with ``{"error": {"code", "message"}}`` and ``status``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class MissingSetting(RuntimeError):
    """A function was started without a setting it needs (an environment variable on Lambda)."""


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """What every refusal looks like on the wire."""

    error: ErrorDetail
