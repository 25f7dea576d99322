"""The audit trail: append-only, one hash chain per goal, anchored where no function can rewrite it.

Each record carries the hash of the one before it and its own hash over its canonical form, so an
edited, deleted or reordered record breaks the chain. Someone who can write the table can rebuild a
consistent chain, though; two things catch that. Every record is anchored, once, in write-once
storage (S3 Object Lock) as it is written, so a record the anchors do not hold, or hold otherwise,
was added or changed outside the trail. And the records that fix a plan carry a plan snapshot signed
with an asymmetric key (``audit.snapshots``), checked here against the published public keys only:
a missing signature or one by an unpublished key is a failure, not a shrug.
Writing records is ``audit.trail``'s job.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cartpilot.audit.snapshots import SIGNED_EVENTS, decode_signature, snapshot_message
from cartpilot.release import RELEASE_ID_PATTERN

if TYPE_CHECKING:
    from cartpilot.audit.public_keys import PlanSignatureVerifier

GENESIS_HASH = "sha256:" + "0" * 64


class AuditRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

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
    release: str | None = Field(
        default=None,
        pattern=RELEASE_ID_PATTERN,
        description="The release that wrote the record (cartpilot.release); None before releases were named",
    )

    def body(self) -> dict[str, Any]:
        """What the record's hash covers: every field but the hash, and the release where it has one,
        so records written before releases were named keep their hashes."""
        exclude = {"hash"} if self.release is not None else {"hash", "release"}
        return self.model_dump(mode="json", exclude=exclude)


class AuditAnchor(BaseModel):
    """What the write-once store holds for one place in a chain: the hash first written there, and
    how many versions the place has (more than one means someone tried to write it again)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    seq: int
    hash: str
    versions: int = 1
    at: str | None = None  # when the anchored record was written


SignatureResult = Literal["verified", "invalid", "unknown-key", "missing", "not-checked"]


class PlanSignatureCheck(BaseModel):
    """Which plan a record vouches for, and whether its signature holds."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    seq: int
    event: str
    planId: str
    planHash: str | None
    kid: str
    result: SignatureResult


class ChainVerification(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    valid: bool
    count: int
    problems: list[str] = Field(default_factory=list)
    signatures: list[PlanSignatureCheck] = Field(default_factory=list)


def hash_record_body(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _check_signature(
    record: AuditRecord, verifier: PlanSignatureVerifier | None
) -> PlanSignatureCheck | None:
    signature = record.detail.get("planSignature")
    if not isinstance(signature, dict):
        if record.event not in SIGNED_EVENTS:
            return None
        return PlanSignatureCheck(
            seq=record.seq, event=record.event, planId=str(record.detail.get("planId", "")),
            planHash=record.planHash, kid="", result="missing",
        )  # fmt: skip
    plan_id, kid, sig = (str(signature.get(name, "")) for name in ("planId", "kid", "sig"))
    result: SignatureResult = "not-checked"
    if verifier is not None:
        if not verifier.knows(kid):
            result = "unknown-key"
        else:
            try:
                raw = decode_signature(sig)
            except ValueError:
                raw = b""
            message = snapshot_message(record.goalId, record.planHash, record.detail)
            # The signed snapshot names the plan; a signature block claiming another plan is forged.
            genuine = plan_id == record.detail.get("planId") and verifier.verifies(kid, message, raw)
            result = "verified" if genuine else "invalid"
    return PlanSignatureCheck(
        seq=record.seq, event=record.event, planId=plan_id, planHash=record.planHash, kid=kid, result=result
    )


_SIGNATURE_PROBLEMS: dict[SignatureResult, str] = {
    "missing": "record {seq} ({event}) fixes a plan but carries no plan signature",
    "unknown-key": "record {seq} ({event}) is signed with key {kid!r}, which is not a published audit key",
    "invalid": "record {seq} ({event}): the plan signature does not match what the record shows",
}


def _anchor_problems(records: list[AuditRecord], anchors: list[AuditAnchor]) -> list[str]:
    problems: list[str] = []
    by_seq = {anchor.seq: anchor for anchor in anchors}
    held = {record.seq for record in records}
    for record in records:
        anchor = by_seq.get(record.seq)
        if anchor is None:
            problems.append(f"record {record.seq} is not anchored: it was added outside the audit trail")
        elif anchor.hash != record.hash:
            problems.append(f"record {record.seq} differs from its anchor: it was rewritten")
    for anchor in anchors:
        if anchor.versions > 1:
            problems.append(f"the anchor of record {anchor.seq} was written {anchor.versions} times")
        if anchor.seq not in held:
            # Also what a writer stopped between its anchor and its record leaves; the next append
            # of the goal fills the place from the anchor.
            problems.append(f"record {anchor.seq} is anchored but not in the table: records were removed")
    return problems


def verify_chain(
    records: list[AuditRecord],
    expected_head: str | None = None,
    *,
    verifier: PlanSignatureVerifier | None = None,
    anchors: list[AuditAnchor] | None = None,
) -> ChainVerification:
    """Checks order, linkage and each record's own hash; optionally the head stored on the goal
    (read before the records).

    With a verifier (the published public keys), every record that fixes a plan must carry a
    signature by a published key over what it shows. With the anchors (read after the records),
    every record must be the one anchored at its place, and every anchored place must hold one.
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
        check = _check_signature(record, verifier)
        if check is not None:
            signatures.append(check)
            template = _SIGNATURE_PROBLEMS.get(check.result)
            if template is not None and (verifier is not None or check.result == "missing"):
                problems.append(template.format(seq=record.seq, event=record.event, kid=check.kid))
        previous_hash = record.hash
    # The goal is read before the records, so records appended in between may follow the head;
    # the head itself must still be in the chain, or records were removed from its end.
    if expected_head is not None and expected_head not in {record.hash for record in records}:
        problems.append("the chain head recorded on the goal is missing: records were removed")
    if anchors is not None:
        problems.extend(_anchor_problems(records, anchors))
    return ChainVerification(valid=not problems, count=len(records), problems=problems, signatures=signatures)
