"""Every audit record names the release that wrote it, inside what its hash covers; trails written
before records named a release still verify, on the server and on the client."""

from __future__ import annotations

from typing import Any

import pytest

from cartpilot.audit.chain import GENESIS_HASH, AuditAnchor, AuditRecord, hash_record_body, verify_chain
from cartpilot.audit.client_check import verify_audit_document
from cartpilot.audit.public_keys import published_keys
from cartpilot.audit.snapshots import signed_plan_detail
from cartpilot.audit.trail import AuditTrail
from cartpilot.plans.model import Plan
from tests.fakes import InMemoryAuditRecords
from tests.fakes.plan_signing import LocalPlanSigner

RELEASE = "rel-0123456789ab"
NEXT_RELEASE = "rel-ba9876543210"


def legacy_record(goal_id: str, seq: int, prev_hash: str, event: str) -> AuditRecord:
    """A record as the trail wrote it before records named a release: no release in its hash."""
    body: dict[str, Any] = {
        "goalId": goal_id, "seq": seq, "at": "2026-01-05T10:00:00Z", "actor": "planner:rules",
        "event": event, "status": None, "planHash": None, "detail": {"n": seq}, "prevHash": prev_hash,
    }  # fmt: skip
    return AuditRecord(**body, hash=hash_record_body(body))


def legacy_chain(records: InMemoryAuditRecords, goal_id: str = "g-old", count: int = 3) -> list[AuditRecord]:
    previous = GENESIS_HASH
    for seq in range(1, count + 1):
        record = legacy_record(goal_id, seq, previous, f"event.{seq}")
        records.insert(record)
        previous = record.hash
    return records.all(goal_id)


def keys_of(signer: LocalPlanSigner) -> dict[str, Any]:
    """``GET /audit/keys`` as the client reads it."""
    return published_keys(signer.registry).model_dump(mode="json")


def anchors_of(records: list[AuditRecord]) -> list[dict[str, Any]]:
    return [AuditAnchor(seq=record.seq, hash=record.hash).model_dump(mode="json") for record in records]


def client_verifies(records: list[AuditRecord], keys: dict[str, Any] | None = None) -> bool:
    """As ``cartpilot audit GOAL --verify`` does: from the JSON the API sends."""
    document = {
        "records": [record.model_dump(mode="json") for record in records],
        "anchors": anchors_of(records),
    }
    verification = verify_audit_document(document, keys or {"keys": []})
    return verification.valid


def test_every_record_carries_the_release_and_the_chain_verifies():
    trail = AuditTrail(InMemoryAuditRecords(), release=RELEASE)
    for number in range(3):
        trail.append("g-new", actor="tester", event=f"event.{number}", detail={"n": number})
    records = trail.records("g-new")
    assert [record.release for record in records] == [RELEASE] * 3
    assert all("release" in record.body() for record in records)
    assert verify_chain(records, expected_head=records[-1].hash).valid
    assert client_verifies(records)


def test_a_trail_written_before_releases_still_verifies():
    records = legacy_chain(InMemoryAuditRecords())
    assert all(record.release is None and "release" not in record.body() for record in records)
    assert verify_chain(records, expected_head=records[-1].hash).valid
    # The API's JSON shows the field as null; the client still hashes the record as it was written.
    assert records[0].model_dump(mode="json")["release"] is None
    assert client_verifies(records)


def test_a_release_continues_an_old_trail_and_the_next_release_continues_it():
    store = InMemoryAuditRecords()
    legacy_chain(store)
    AuditTrail(store, release=RELEASE).append("g-old", actor="validator", event="validation.started")
    AuditTrail(store, release=NEXT_RELEASE).append("g-old", actor="approver:user", event="undo.requested")
    records = store.all("g-old")
    assert [record.release for record in records] == [None, None, None, RELEASE, NEXT_RELEASE]
    assert verify_chain(records, expected_head=records[-1].hash).valid
    assert client_verifies(records)


@pytest.mark.parametrize(
    ("seq", "release"),
    [
        (4, NEXT_RELEASE),  # blame another release
        (4, None),  # hide which release wrote it
        (2, RELEASE),  # claim an old record for a release
    ],
)
def test_changing_a_records_release_is_detected(seq: int, release: str | None):
    store = InMemoryAuditRecords()
    legacy_chain(store)
    AuditTrail(store, release=RELEASE).append("g-old", actor="validator", event="validation.started")
    records = store.all("g-old")
    forged = records[seq - 1].model_copy(update={"release": release})
    tampered = [forged if record.seq == seq else record for record in records]
    result = verify_chain(tampered)
    assert not result.valid and any(f"record {seq} was altered" in problem for problem in result.problems)
    assert not client_verifies(tampered)


def test_a_malformed_release_is_refused():
    with pytest.raises(ValueError):
        AuditTrail(InMemoryAuditRecords(), release="release-1").append("g-x", actor="tester", event="event")


def test_the_plan_snapshot_signs_the_plans_release(seed_plan: Plan):
    signer = LocalPlanSigner()
    plan = Plan.model_validate({**seed_plan.model_dump(mode="json"), "release": RELEASE})
    trail = AuditTrail(InMemoryAuditRecords(), release=NEXT_RELEASE)
    detail = signed_plan_detail("g-test", plan, signer)
    assert detail["release"] == RELEASE
    trail.append(
        "g-test", actor="planner:rules", event="plan.created", plan_hash=plan.plan_hash(), detail=detail
    )
    (record,) = trail.records("g-test")
    # The record was written by one release; the plan it fixes was made by another.
    assert record.release == NEXT_RELEASE and record.detail["release"] == RELEASE
    assert client_verifies([record], keys_of(signer))

    # Rewriting the snapshot's release under the genuine signature (and re-hashing the record) fails.
    body = {**record.body(), "detail": {**record.detail, "release": NEXT_RELEASE}}
    forged = AuditRecord(**body, hash=hash_record_body(body))
    result = verify_audit_document(
        {"records": [forged.model_dump(mode="json")], "anchors": anchors_of([forged])}, keys_of(signer)
    )
    assert [check.result for check in result.signatures] == ["invalid"]


def test_a_snapshot_signed_before_plans_named_a_release_still_verifies(seed_plan: Plan):
    signer = LocalPlanSigner()
    assert seed_plan.release is None
    detail = signed_plan_detail("g-test", seed_plan, signer)
    assert "release" not in detail
    trail = AuditTrail(InMemoryAuditRecords())
    trail.append(
        "g-test", actor="planner:rules", event="plan.created", plan_hash=seed_plan.plan_hash(), detail=detail
    )
    assert client_verifies(trail.records("g-test"), keys_of(signer))
