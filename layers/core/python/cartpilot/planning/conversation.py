"""A planning conversation in the planner's own words, and the port every model provider implements.

The tool loop speaks these types; each provider translates them to its wire format (OpenAI chat
completions, Bedrock Converse) and back, so the loop never sees a provider's JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from cartpilot.planning.prompts import ToolSpec


class ModelUnavailable(Exception):
    """The model could not be asked or did not answer: timeout, refused connection, HTTP or AWS error.

    The message names the model and the kind of failure, never a key or the conversation.
    """


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    """The part of ``prompt_tokens`` the provider served from its context cache (billed at its cached
    rate); 0 when the provider does not say."""
    cache_creation_prompt_tokens: int = 0
    """The part of ``prompt_tokens`` the provider wrote to an explicit cache (billed at its
    cache-creation rate); 0 when the provider does not say."""

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cached_prompt_tokens + other.cached_prompt_tokens,
            self.cache_creation_prompt_tokens + other.cache_creation_prompt_tokens,
        )


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any] | None
    """None when the model's arguments were not a JSON object; the loop tells it so."""
    raw_arguments: str


@dataclass(frozen=True)
class ModelReply:
    text: str | None
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None


@dataclass(frozen=True)
class UserText:
    text: str


@dataclass(frozen=True)
class AssistantTurn:
    reply: ModelReply


@dataclass(frozen=True)
class ToolResult:
    call_id: str
    name: str
    content: dict[str, Any]
    is_error: bool = False


@dataclass(frozen=True)
class ToolResults:
    results: tuple[ToolResult, ...]
    note: str | None = None
    """Text for the model after the results, e.g. that its tool budget is spent."""


Message = UserText | AssistantTurn | ToolResults


@dataclass(frozen=True)
class ModelRequest:
    system: str
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...]
    response_schema: dict[str, Any]
    schema_name: str
    allow_tools: bool
    timeout: float
    """Seconds the provider may wait for this answer."""


class ChatProvider(Protocol):
    kind: str
    model: str

    def complete(self, request: ModelRequest) -> ModelReply:
        """One model turn; raises ModelUnavailable when there is no usable answer on the wire."""
        ...
