"""How a stored goal splits into a small head and large, write-once parts.

The head holds what changes often (status, timestamps, owner, the audit chain head) and a reference
to each part: a digest of the part's content. A part holds one large field (the request, the plan,
the verdict, ...) or one step's result, and is never rewritten: a new value is a new part, and the
head's reference moves. Every audit record moves the head, so a small head keeps each of those
writes at one DynamoDB write unit, whatever the plan's size. The goal store adapters share this
layout, so the in-memory store behaves as the table does.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel

# Field -> the part that holds it. The request (the shopper's words, hints and the body's hash)
# is written together, once, and never changes.
PART_OF: dict[str, str] = {
    "goal": "request",
    "context": "request",
    "requestHash": "request",
    "plan": "plan",
    "verdict": "verdict",
    "priceCheck": "priceCheck",
    "receipt": "receipt",
    "tracking": "tracking",
    "plannedOnly": "plannedOnly",
    "undoToken": "undoToken",
}
STEPS_FIELD = "steps"
STEP_PART = "step"
# The head's ordered references to step results: [[stepId, digest], ...].
STEP_REFS = "stepRefs"


def fields_of(part: str) -> tuple[str, ...]:
    return tuple(name for name, holder in PART_OF.items() if holder == part)


def ref_attribute(part: str) -> str:
    """The head attribute that names the current version of ``part``."""
    return f"{part}Ref"


REF_ATTRIBUTES = frozenset({ref_attribute(part) for part in set(PART_OF.values())} | {STEP_REFS})


def plain(value: Any) -> Any:
    """A field as plain JSON-like data (models dumped, enums as values)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


def encode_body(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, sort_keys=True, default=str)


def digest(body: dict[str, Any]) -> str:
    """Names a part by its content: a retried write lands on the same key with the same content."""
    return hashlib.sha256(encode_body(body).encode()).hexdigest()[:16]


def part_key(goal_id: str, part: str, part_digest: str) -> str:
    # Not under ``GOAL#``: whatever lists goals by their key prefix never mistakes a part for a goal.
    return f"GOALPART#{goal_id}#{part}#{part_digest}"


def record_fields(record: BaseModel) -> dict[str, Any]:
    """A new goal's stored fields: unset ones left out, and each large one dumped as an update
    dumps it, so the same value always makes the same part."""
    fields = record.model_dump(mode="json", exclude_none=True)
    for name in [*PART_OF, STEPS_FIELD]:
        if name in fields:
            fields[name] = plain(getattr(record, name))
    return fields


def split_fields(
    fields: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], list[Any] | None]:
    """(head fields, part name -> the given fields of that part, step results or None)."""
    head: dict[str, Any] = {}
    parts: dict[str, dict[str, Any]] = {}
    steps: list[Any] | None = None
    for name, value in fields.items():
        if name == STEPS_FIELD:
            steps = list(value or [])
        elif name in PART_OF:
            parts.setdefault(PART_OF[name], {})[name] = plain(value)
        else:
            head[name] = value
    return head, parts, steps
