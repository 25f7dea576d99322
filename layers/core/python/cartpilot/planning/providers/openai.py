"""Any OpenAI-compatible chat-completions endpoint over httpx: Qwen on DashScope, vLLM, Ollama, OpenAI.

Wire format (``POST {baseUrl}/chat/completions``): tools as ``{"type": "function", "function":
{name, description, parameters}}``; the model's tool calls come back in ``message.tool_calls`` with
``function.arguments`` as a JSON string, and are answered with ``{"role": "tool", "tool_call_id"}``
messages. The draft schema goes in ``response_format`` as ``json_schema`` (strict) where the server
supports it, ``json_object`` (JSON mode) where it only promises JSON, or not at all.

Compatible servers differ in small ways this adapter absorbs: Ollama may send arguments as an object
and omit call ids; Qwen3 may prefix its answer with a ``<think>`` block (the draft parser strips it).
The API key travels only in the Authorization header: it is never logged, and an error message
names the HTTP status and the provider's error code, never a body that might echo the key.

Context cache (``context_cache``, the brand's ``planner.contextCache``). ``implicit`` sends requests
unmarked: DashScope's implicit cache may serve a prefix on its own, at a fifth of the input price,
with no promise of a hit. ``explicit`` marks the system message and the last user message with
``cache_control``, the roles DashScope's documentation shows markers on: DashScope then writes the
prefix up to each marker to a cache (at 125% of the input price) and serves it to the next call of
the plan (at 10%). The model's tool calls and the tool results appended after the last user message
are not marked (nothing documents markers on assistant or tool messages), so they are billed as
plain input; a repair note is a user message, so it moves the marker forward. Usage carries both
counts (``usage.prompt_tokens_details.cached_tokens`` and ``.cache_creation_input_tokens``). Leave
``implicit`` for servers that do not know the markers (vLLM, Ollama).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Literal

import httpx

from cartpilot import __version__
from cartpilot.planning.conversation import (
    AssistantTurn,
    ModelReply,
    ModelRequest,
    ModelUnavailable,
    ToolCall,
    ToolResults,
    Usage,
    UserText,
)
from cartpilot.planning.tools import tool_result_text

StructuredOutput = Literal["json_schema", "json_object", "none"]
ContextCache = Literal["implicit", "explicit"]
COMPLETIONS_PATH = "chat/completions"

# DashScope's explicit cache (https://www.alibabacloud.com/help/en/model-studio/context-cache): the
# marker goes on a content part, the message's content turned into a list of parts:
#   {"role": "system", "content": [{"type": "text", "text": "You are ...",
#                                   "cache_control": {"type": "ephemeral"}}]}
# At most four markers a request. The documentation's examples (context-cache and the explicit cache
# best practices) put markers on system and user messages only; an unsupported role could make the
# request fail, so tool and assistant messages are never marked.
CACHE_CONTROL: Mapping[str, str] = {"type": "ephemeral"}
MAX_CACHE_MARKERS = 4
MARKABLE_ROLES = frozenset({"system", "user"})


def _no_key() -> str | None:
    return None


class OpenAiCompatibleChat:
    kind = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: Callable[[], str | None] = _no_key,
        structured_output: StructuredOutput = "json_schema",
        max_output_tokens: int = 1024,
        temperature: float = 0.0,
        extra_body: Mapping[str, Any] | None = None,
        connect_timeout: float = 3.0,
        context_cache: ContextCache = "implicit",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.model = model
        self.context_cache = context_cache
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._structured_output = structured_output
        self._max_output_tokens = max_output_tokens
        self._temperature = temperature
        self._extra_body = dict(extra_body or {})
        self._connect_timeout = connect_timeout
        self._client = httpx.Client(
            base_url=self.base_url + "/",
            transport=transport,
            headers={"User-Agent": f"cartpilot-planner/{__version__}"},
        )

    def close(self) -> None:
        self._client.close()

    # --- domain -> wire ------------------------------------------------------------------------

    def request_body(self, request: ModelRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "temperature": self._temperature,
            "max_tokens": self._max_output_tokens,
        }
        if request.allow_tools:
            # One turn for independent lookups: the seed goal fits in two tool rounds this way.
            body["parallel_tool_calls"] = True
        body.update(self._extra_body)
        messages = self._messages(request)
        body.update(
            {
                "model": self.model,
                "messages": mark_for_cache(messages) if self.context_cache == "explicit" else messages,
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": tool.name,
                            "description": tool.description,
                            "parameters": tool.parameters,
                        },
                    }
                    for tool in request.tools
                ],
                "tool_choice": "auto" if request.allow_tools else "none",
            }
        )
        if self._structured_output == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": request.schema_name,
                    "strict": True,
                    "schema": request.response_schema,
                },
            }
        elif self._structured_output == "json_object":
            body["response_format"] = {"type": "json_object"}
        return body

    @staticmethod
    def _messages(request: ModelRequest) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = [{"role": "system", "content": request.system}]
        for message in request.messages:
            if isinstance(message, UserText):
                messages.append({"role": "user", "content": message.text})
            elif isinstance(message, AssistantTurn):
                reply = message.reply
                entry: dict[str, Any] = {"role": "assistant", "content": reply.text}
                if reply.tool_calls:
                    entry["tool_calls"] = [
                        {
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": call.raw_arguments},
                        }
                        for call in reply.tool_calls
                    ]
                elif reply.text is None:
                    entry["content"] = ""
                messages.append(entry)
            elif isinstance(message, ToolResults):
                messages.extend(
                    {"role": "tool", "tool_call_id": result.call_id, "content": tool_result_text(result)}
                    for result in message.results
                )
                if message.note:
                    messages.append({"role": "user", "content": message.note})
        return messages

    # --- the call ------------------------------------------------------------------------------

    def complete(self, request: ModelRequest) -> ModelReply:
        headers = {}
        key = self._api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        timeout = httpx.Timeout(request.timeout, connect=min(self._connect_timeout, request.timeout))
        try:
            response = self._client.post(
                COMPLETIONS_PATH, json=self.request_body(request), headers=headers, timeout=timeout
            )
        except httpx.TimeoutException:
            raise ModelUnavailable(f"no answer within {request.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise ModelUnavailable(f"cannot reach {self.base_url}: {type(exc).__name__}") from None
        if response.status_code >= 400:
            raise ModelUnavailable(f"HTTP {response.status_code}{_error_code(response, key)}")
        return self.parse_reply(response, turn=len(request.messages))

    # --- wire -> domain ------------------------------------------------------------------------

    @staticmethod
    def parse_reply(response: httpx.Response, *, turn: int) -> ModelReply:
        try:
            data = response.json()
            choice = data["choices"][0]
            message = choice["message"]
            text = _text(message.get("content"))
            calls = tuple(
                _tool_call(raw, fallback_id=f"call_{turn}_{index}")
                for index, raw in enumerate(message.get("tool_calls") or [])
            )
            return ModelReply(
                text=text,
                tool_calls=calls,
                usage=_usage(data.get("usage") or {}),
                finish_reason=choice.get("finish_reason"),
            )
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise ModelUnavailable("the answer is not a chat completion") from None


def mark_for_cache(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with the system message and the last user message marked for the explicit cache,
    the other messages as they were (the input is not changed).

    The last user message is the goal, or the repair note of a later turn; the assistant's tool calls
    and the tool results after it stay unmarked, as the provider documents markers on system and
    user messages only. Marking the system message keeps the system prompt and tools cached even
    when the conversation's marker does not match."""
    markable = [
        index
        for index, message in enumerate(messages)
        if message.get("role") in MARKABLE_ROLES
        and isinstance(message.get("content"), str)
        and message["content"]
    ]
    chosen: set[int] = set()
    users = [index for index in markable if messages[index]["role"] == "user"]
    if users:
        chosen.add(users[-1])
    systems = [index for index in markable if messages[index]["role"] == "system"]
    if systems:
        chosen.add(systems[0])
    chosen = set(sorted(chosen)[-MAX_CACHE_MARKERS:])
    return [_marked(message) if index in chosen else message for index, message in enumerate(messages)]


def _marked(message: dict[str, Any]) -> dict[str, Any]:
    part = {"type": "text", "text": message["content"], "cache_control": dict(CACHE_CONTROL)}
    return {**message, "content": [part]}


def _count(value: Any) -> int:
    """A token count as the provider sent it: anything but a non-negative integer is 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _usage(usage: Mapping[str, Any]) -> Usage:
    """Tokens as the provider counted them. Cache hits come in ``prompt_tokens_details.cached_tokens``
    (DashScope and OpenAI alike), tokens written to DashScope's explicit cache in
    ``prompt_tokens_details.cache_creation_input_tokens`` (or broken down by lifetime in
    ``cache_creation``); both are part of ``prompt_tokens``. A missing or odd value counts 0."""
    prompt = int(usage.get("prompt_tokens") or 0)
    details = usage.get("prompt_tokens_details")
    if not isinstance(details, Mapping):
        details = {}
    hits = min(_count(details.get("cached_tokens")), prompt)
    created = _count(details.get("cache_creation_input_tokens"))
    by_lifetime = details.get("cache_creation")
    if not created and isinstance(by_lifetime, Mapping):
        created = sum(_count(value) for value in by_lifetime.values())
    return Usage(prompt, int(usage.get("completion_tokens") or 0), hits, min(created, prompt - hits))


def _text(content: Any) -> str | None:
    if content is None or isinstance(content, str):
        return content
    # Some servers answer with content parts, as requests may send them.
    return "".join(part.get("text", "") for part in content if isinstance(part, dict)) or None


def _tool_call(raw: dict[str, Any], *, fallback_id: str) -> ToolCall:
    function = raw["function"]
    arguments = function.get("arguments")
    parsed: Any
    if isinstance(arguments, dict):
        parsed, text = arguments, json.dumps(arguments, ensure_ascii=False)
    else:
        text = arguments or "{}"
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = None
    return ToolCall(
        id=str(raw.get("id") or fallback_id),
        name=str(function.get("name", "")),
        arguments=parsed if isinstance(parsed, dict) else None,
        raw_arguments=text,
    )


def _error_code(response: httpx.Response, key: str | None) -> str:
    """The provider's error code or type, if it sent one: never the message, which may quote the key."""
    try:
        error = response.json().get("error") or {}
        code = error.get("code") or error.get("type")
    except (ValueError, AttributeError):
        return ""
    if not code:
        return ""
    text = str(code)[:60]
    if key and key in text:
        return ""
    return f" ({text})"
