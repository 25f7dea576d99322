"""Amazon Bedrock's Converse API through boto3 (Qwen3 and other models on Bedrock), IAM-authenticated.

Wire format: tools as ``toolConfig.tools[].toolSpec{name, description, inputSchema.json}``; the
model's calls come back as ``toolUse{toolUseId, name, input}`` content blocks with stopReason
``tool_use``, and are answered in a user message of ``toolResult{toolUseId, content[{json}],
status}`` blocks. The draft schema goes in ``outputConfig.textFormat`` (``json_schema``, the schema
as a string) for models that support structured output; otherwise the system prompt's JSON
instructions and the repair rounds carry it. Usage is ``usage.inputTokens/outputTokens``.

Converse keeps ``toolConfig`` on every call once the conversation holds tool blocks, so a spent
tool budget is said in words (the loop's finish note), not by removing the tools. The client's own
read timeout bounds each call; the planner's time budget bounds the loop.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from cartpilot.brands.config import PlannerConfig
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

StructuredOutput = Literal["json_schema", "json_object", "none"]
# Converse refuses empty text blocks; an empty assistant turn still needs a body when replayed.
_EMPTY_TURN = "(no answer)"


class BedrockConverse:
    kind = "bedrock"

    def __init__(
        self,
        *,
        model: str,
        client: Any,
        structured_output: StructuredOutput = "json_schema",
        max_output_tokens: int = 1024,
        temperature: float = 0.0,
        extra_fields: Mapping[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.client = client
        self._structured_output = structured_output
        self._max_output_tokens = max_output_tokens
        self._temperature = temperature
        self._extra_fields = dict(extra_fields or {})

    def converse_params(self, request: ModelRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "modelId": self.model,
            "system": [{"text": request.system}],
            "messages": self._messages(request),
            "toolConfig": {
                "tools": [
                    {
                        "toolSpec": {
                            "name": tool.name,
                            "description": tool.description,
                            "inputSchema": {"json": tool.parameters},
                        }
                    }
                    for tool in request.tools
                ],
                "toolChoice": {"auto": {}},
            },
            "inferenceConfig": {"maxTokens": self._max_output_tokens, "temperature": self._temperature},
        }
        if self._structured_output == "json_schema":
            params["outputConfig"] = {
                "textFormat": {
                    "type": "json_schema",
                    "structure": {
                        "jsonSchema": {
                            "schema": json.dumps(request.response_schema, separators=(",", ":")),
                            "name": request.schema_name,
                            "description": "The planner's draft: chosen ids and one-line justifications.",
                        }
                    },
                }
            }
        if self._extra_fields:
            params["additionalModelRequestFields"] = self._extra_fields
        return params

    @staticmethod
    def _messages(request: ModelRequest) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        for message in request.messages:
            if isinstance(message, UserText):
                messages.append({"role": "user", "content": [{"text": message.text}]})
            elif isinstance(message, AssistantTurn):
                reply = message.reply
                content: list[dict[str, Any]] = [{"text": reply.text}] if reply.text else []
                content += [
                    {"toolUse": {"toolUseId": call.id, "name": call.name, "input": call.arguments or {}}}
                    for call in reply.tool_calls
                ]
                messages.append({"role": "assistant", "content": content or [{"text": _EMPTY_TURN}]})
            elif isinstance(message, ToolResults):
                blocks: list[dict[str, Any]] = [
                    {
                        "toolResult": {
                            "toolUseId": result.call_id,
                            "content": [{"json": result.content}],
                            "status": "error" if result.is_error else "success",
                        }
                    }
                    for result in message.results
                ]
                if message.note:
                    blocks.append({"text": message.note})
                messages.append({"role": "user", "content": blocks})
        return messages

    def complete(self, request: ModelRequest) -> ModelReply:
        try:
            response = self.client.converse(**self.converse_params(request))
        except (ReadTimeoutError, ConnectTimeoutError):
            raise ModelUnavailable("Bedrock did not answer in time") from None
        except EndpointConnectionError:
            raise ModelUnavailable("cannot reach Bedrock") from None
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "ClientError")
            raise ModelUnavailable(f"Bedrock refused the call: {code}") from None
        except BotoCoreError as exc:
            raise ModelUnavailable(f"Bedrock call failed: {type(exc).__name__}") from None
        return self.parse_reply(response)

    @staticmethod
    def parse_reply(response: Mapping[str, Any]) -> ModelReply:
        try:
            content = response["output"]["message"]["content"]
            texts = [block["text"] for block in content if "text" in block]
            calls = tuple(
                ToolCall(
                    id=str(block["toolUse"]["toolUseId"]),
                    name=str(block["toolUse"]["name"]),
                    arguments=block["toolUse"]["input"]
                    if isinstance(block["toolUse"]["input"], dict)
                    else None,
                    raw_arguments=json.dumps(block["toolUse"]["input"], ensure_ascii=False),
                )
                for block in content
                if "toolUse" in block
            )
            usage = response.get("usage") or {}
            return ModelReply(
                text="".join(texts) or None,
                tool_calls=calls,
                usage=Usage(int(usage.get("inputTokens") or 0), int(usage.get("outputTokens") or 0)),
                finish_reason=response.get("stopReason"),
            )
        except (KeyError, TypeError, AttributeError):
            raise ModelUnavailable("the answer is not a Converse response") from None


def bedrock_converse(config: PlannerConfig) -> BedrockConverse:
    """A Converse provider for the brand's planner settings, with the SDK's own timeouts and retries."""
    import boto3

    assert config.model is not None
    client = boto3.client(
        "bedrock-runtime",
        region_name=config.region,
        config=Config(
            connect_timeout=config.connectTimeoutSeconds,
            read_timeout=config.timeoutSeconds,
            retries={"mode": "standard", "max_attempts": 2},
        ),
    )
    return BedrockConverse(
        model=config.model,
        client=client,
        structured_output=config.structuredOutput,
        max_output_tokens=config.maxOutputTokens,
        temperature=config.temperature,
        extra_fields=config.extraBody,
    )
