"""The audit trail: append-only, one hash chain per goal.

Each record carries the hash of the one before it and its own hash over its
canonical form, so an edited, deleted or reordered record breaks the chain.
Records are written with a conditional put on (goalId, seq): two writers can
never claim the same place, and nothing is ever overwritten.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from cartpilot.clock import utc_now_iso
from cartpilot.privacy import mask_pii

GENESIS_HASH = "sha256:" + "0" * 64
_MAX_APPEND_ATTEMPTS = 8


class AuditRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    goalId: str
    seq: int = Field(ge=1)
    at: str
    actor: str
    event: str
    status: str | None = None
    planHash: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    prevHash: str
    hash: str

    def body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"hash"})


class ChainVerification(BaseModel):
    model_config = ConfigDict(extra="forbid")

    valid: bool
    count: int
    problems: list[str] = Field(default_factory=list)


def hash_record_body(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def verify_chain(records: list[AuditRecord], expected_head: str | None = None) -> ChainVerification:
    """Checks order, linkage and each record's own hash; optionally the head stored on the goal."""
    problems: list[str] = []
    previous_hash = GENESIS_HASH
    for position, record in enumerate(records, start=1):
        if record.seq != position:
            problems.append(
                f"record at position {position} has seq {record.seq}: a record is missing or moved"
            )
        if record.prevHash != previous_hash:
            problems.append(f"record {record.seq} does not link to the record before it")
        if hash_record_body(record.body()) != record.hash:
            problems.append(f"record {record.seq} was altered after it was written")
        previous_hash = record.hash
    if expected_head is not None and records and records[-1].hash != expected_head:
        problems.append("the last record is not the chain head recorded on the goal: records were removed")
    if expected_head is not None and not records:
        problems.append("the goal has a chain head but no records")
    return ChainVerification(valid=not problems, count=len(records), problems=problems)


class AuditTrail:
    """DynamoDB adapter: partition key ``goalId``, sort key ``seq``."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def append(
        self,
        goal_id: str,
        *,
        actor: str,
        event: str,
        status: str | None = None,
        plan_hash: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> AuditRecord:
        masked = mask_pii(detail or {})
        for _ in range(_MAX_APPEND_ATTEMPTS):
            last = self._last(goal_id)
            body = {
                "goalId": goal_id,
                "seq": (last.seq + 1) if last else 1,
                "at": utc_now_iso(),
                "actor": actor,
                "event": event,
                "status": status,
                "planHash": plan_hash,
                "detail": masked,
                "prevHash": last.hash if last else GENESIS_HASH,
            }
            record = AuditRecord(**body, hash=hash_record_body(AuditRecord(**body, hash="").body()))
            try:
                self._table.put_item(
                    Item={**record.model_dump(mode="json", exclude={"detail"}), "detail": json.dumps(masked)},
                    ConditionExpression="attribute_not_exists(goalId) AND attribute_not_exists(seq)",
                )
                return record
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                # Another writer took this place in the chain; read the new head and try again.
        raise RuntimeError(f"could not append to the audit chain of {goal_id}: too much contention")

    def records(self, goal_id: str) -> list[AuditRecord]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"KeyConditionExpression": Key("goalId").eq(goal_id), "ConsistentRead": True}
        while True:
            page = self._table.query(**kwargs)
            items.extend(page["Items"])
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return [_to_record(item) for item in items]

    def _last(self, goal_id: str) -> AuditRecord | None:
        page = self._table.query(
            KeyConditionExpression=Key("goalId").eq(goal_id),
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        return _to_record(page["Items"][0]) if page["Items"] else None


def _to_record(item: dict[str, Any]) -> AuditRecord:
    data = {key: value for key, value in item.items() if value is not None}
    data["seq"] = int(data["seq"])
    data["detail"] = json.loads(data.get("detail") or "{}")
    return AuditRecord.model_validate(data)
