"""Bodies of the HTTP API that are not domain models themselves."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class GoalAccepted(BaseModel):
    goalId: str
    status: str
    links: dict[str, str]


class DecisionRequest(BaseModel):
    """What the approval page's form posts: the link's parameters plus the decision."""

    model_config = ConfigDict(extra="forbid")

    exp: str = Field(max_length=20)
    kid: str = Field(max_length=40)
    sig: str = Field(max_length=128)
    decision: Literal["approve", "reject"]
    phrase: str | None = Field(default=None, max_length=100)
