"""The audit trail: append-only, one hash chain per goal.

Each record carries the hash of the one before it and its own hash over its
canonical form, so an edited, deleted or reordered record breaks the chain.
Records are written with a conditional put on (goalId, seq): two writers can
never claim the same place, and nothing is ever overwritten.

The records that fix a plan (shown to an approver, approved, reduced by the approver)
also carry an HMAC of the plan snapshot made with the link-signing key ring: someone
who can write to the audit table can rebuild a consistent chain, but cannot vouch for a
plan the backend never signed.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from cartpilot.clock import utc_now_iso
from cartpilot.observability import logger
from cartpilot.privacy import mask_pii
from cartpilot.signing import (
    KeyRing,
    PlanSnapshotClaims,
    SignatureInvalid,
    SigningKeyUnknown,
    sign_plan_snapshot,
    verify_plan_snapshot,
)

if TYPE_CHECKING:
    from cartpilot.plans import Plan

GENESIS_HASH = "sha256:" + "0" * 64
_MAX_APPEND_ATTEMPTS = 16
_BACKOFF_CAP_SECONDS = 0.05


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


SignatureResult = Literal["verified", "invalid", "unknown-key", "not-checked"]


class PlanSignatureCheck(BaseModel):
    """Which plan a record vouches for, and whether its signature holds."""

    model_config = ConfigDict(extra="forbid")

    seq: int
    event: str
    planId: str
    planHash: str | None
    kid: str
    result: SignatureResult


class ChainVerification(BaseModel):
    model_config = ConfigDict(extra="forbid")

    valid: bool
    count: int
    problems: list[str] = Field(default_factory=list)
    signatures: list[PlanSignatureCheck] = Field(default_factory=list)


def hash_record_body(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def signed_plan_detail(goal_id: str, plan: Plan, keyring: KeyRing) -> dict[str, Any]:
    """What a record that fixes a plan carries: a readable summary and the snapshot's signature.

    The record's ``planHash`` is the hash of the full plan (recipient included); the summary
    here holds nothing personal, so masking leaves it, and the signature, intact.
    """
    plan_hash = plan.plan_hash()
    signature = sign_plan_snapshot(
        PlanSnapshotClaims(goal_id=goal_id, plan_id=plan.planId, plan_hash=plan_hash), keyring
    )
    summary = plan.summary
    return {
        "planId": plan.planId,
        "total": summary.total.model_dump(mode="json"),
        "items": [f"{item.quantity} x {item.itemId}" for item in summary.items],
        "steps": [f"{step.id} {step.action.value}" for step in plan.steps],
        "promptHash": plan.planner.promptHash,
        "planSignature": {**signature, "planId": plan.planId},
    }


def _check_signature(record: AuditRecord, keyring: KeyRing | None) -> PlanSignatureCheck | None:
    signature = record.detail.get("planSignature")
    if not isinstance(signature, dict):
        return None
    plan_id, kid, sig = (str(signature.get(name, "")) for name in ("planId", "kid", "sig"))
    result: SignatureResult = "not-checked"
    if keyring is not None:
        try:
            verify_plan_snapshot(
                PlanSnapshotClaims(goal_id=record.goalId, plan_id=plan_id, plan_hash=record.planHash or ""),
                kid=kid,
                sig=sig,
                keyring=keyring,
            )
            result = "verified"
        except SigningKeyUnknown:
            result = "unknown-key"
        except SignatureInvalid:
            result = "invalid"
    return PlanSignatureCheck(
        seq=record.seq, event=record.event, planId=plan_id, planHash=record.planHash, kid=kid, result=result
    )


def verify_chain(
    records: list[AuditRecord], expected_head: str | None = None, *, keyring: KeyRing | None = None
) -> ChainVerification:
    """Checks order, linkage and each record's own hash; optionally the head stored on the goal
    (read before the records).

    With the key ring, also checks every plan snapshot signature. A signature made with a key
    the ring no longer holds is reported as such, not as tampering: rotation retires keys.
    """
    problems: list[str] = []
    signatures: list[PlanSignatureCheck] = []
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
        check = _check_signature(record, keyring)
        if check is not None:
            signatures.append(check)
            if check.result == "invalid":
                problems.append(f"record {record.seq} vouches for a plan the backend never signed")
        previous_hash = record.hash
    # The goal is read before the records, so records appended in between may follow the head;
    # the head itself must still be in the chain, or records were removed from its end.
    if expected_head is not None and expected_head not in {record.hash for record in records}:
        problems.append("the chain head recorded on the goal is missing: records were removed")
    return ChainVerification(valid=not problems, count=len(records), problems=problems, signatures=signatures)


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
        for attempt in range(_MAX_APPEND_ATTEMPTS):
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
                # The trail, mirrored to the logs when debugging; the same masked detail, nothing more.
                logger.debug(
                    "audit record appended",
                    extra={
                        "goalId": goal_id,
                        "seq": record.seq,
                        "event": event,
                        "actor": actor,
                        "detail": masked,
                    },
                )
                return record
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                # Another writer took this place in the chain: back off a little (jittered, so
                # racing writers spread out instead of colliding again), read the new head, retry.
                time.sleep(random.uniform(0, min(_BACKOFF_CAP_SECONDS, 0.002 * 2**attempt)))
        raise RuntimeError(f"could not append to the audit chain of {goal_id}: too much contention")

    def records(self, goal_id: str) -> list[AuditRecord]:
        from boto3.dynamodb.conditions import Key

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
        from boto3.dynamodb.conditions import Key

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
