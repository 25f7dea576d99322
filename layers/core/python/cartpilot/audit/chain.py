"""The audit trail: append-only, one hash chain per goal.

Each record carries the hash of the one before it and its own hash over its
canonical form, so an edited, deleted or reordered record breaks the chain.
The records that fix a plan also carry a signed plan snapshot (``audit.snapshots``);
verification checks those signatures too when given the key ring. Writing records is
``audit.trail``'s job.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cartpilot.audit.snapshots import (
    PlanSnapshotClaims,
    SignatureInvalid,
    SigningKeyUnknown,
    verify_plan_snapshot,
)
from cartpilot.kernel.keyring import KeyRing

GENESIS_HASH = "sha256:" + "0" * 64


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
