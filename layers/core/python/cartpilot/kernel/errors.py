"""The error bases every capability shares, and the wire form of a refusal."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


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
    model_config = ConfigDict(defer_build=True)

    code: str
    message: str


class ErrorBody(BaseModel):
    """What every refusal looks like on the wire."""

    model_config = ConfigDict(defer_build=True)

    error: ErrorDetail
