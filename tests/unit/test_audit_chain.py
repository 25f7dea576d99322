import threading
from collections.abc import Callable
from typing import Any

import pytest

from cartpilot.audit.chain import AuditRecord, hash_record_body, verify_chain
from cartpilot.audit.snapshots import signed_plan_detail
from cartpilot.audit.trail import AuditTrail
from cartpilot.plans.model import Plan
from tests.fakes import InMemoryAuditRecords
from tests.fakes.plan_signing import LocalPlanSigner


@pytest.fixture
def trail() -> AuditTrail:
    return AuditTrail(InMemoryAuditRecords())


def write_chain(trail: AuditTrail, goal_id: str = "g-1", count: int = 4) -> list[AuditRecord]:
    for number in range(count):
        trail.append(goal_id, actor="tester", event=f"event.{number}", detail={"n": number})
    return trail.records(goal_id)


def test_an_untouched_chain_verifies(trail):
    records = write_chain(trail)
    assert [r.seq for r in records] == [1, 2, 3, 4]
    result = verify_chain(records, expected_head=records[-1].hash)
    assert result.valid and result.count == 4 and result.problems == []


def test_an_edited_record_is_detected(trail):
    records = write_chain(trail)
    edited = records[1].model_copy(update={"event": "approval.approved"})
    result = verify_chain([records[0], edited, *records[2:]])
    assert not result.valid and any("altered" in problem for problem in result.problems)


def test_a_deleted_record_is_detected(trail):
    records = write_chain(trail)
    assert not verify_chain([records[0], *records[2:]]).valid
    # Dropping the newest record is caught by the head remembered on the goal.
    assert not verify_chain(records[:-1], expected_head=records[-1].hash).valid


def test_reordered_records_are_detected(trail):
    records = write_chain(trail)
    assert not verify_chain([records[0], records[2], records[1], records[3]]).valid


def test_a_recomputed_hash_still_breaks_the_link(trail):
    records = write_chain(trail)
    body = records[1].model_copy(update={"detail": {"n": 99}}).body()
    forged = AuditRecord(**body, hash=hash_record_body(body))
    result = verify_chain([records[0], forged, *records[2:]])
    assert not result.valid and any("does not link" in problem for problem in result.problems)


def test_concurrent_appends_never_share_a_place(trail):
    threads = [threading.Thread(target=write_chain, args=(trail, "g-race", 5)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = trail.records("g-race")
    assert [r.seq for r in records] == list(range(1, 21))
    assert verify_chain(records).valid


def test_personal_data_is_masked_before_it_is_written(trail):
    trail.append("g-pii", actor="user:user-1", event="goal.received",
                 detail={"goal": "ship to +86 139 1088 2266", "recipient": {"phone": "+86 139 1088 2266"}})  # fmt: skip
    (record,) = trail.records("g-pii")
    assert "2266" not in str(record.detail)


def signed_trail(trail: AuditTrail, plan: Plan, signer: LocalPlanSigner) -> list[AuditRecord]:
    trail.append("g-test", actor="planner:rules", event="plan.created", plan_hash=plan.plan_hash(),
                 detail=signed_plan_detail("g-test", plan, signer))  # fmt: skip
    trail.append("g-test", actor="approver:user-1", event="approval.approved", plan_hash=plan.plan_hash(),
                 detail={"approvalId": "a-1", **signed_plan_detail("g-test", plan, signer)})  # fmt: skip
    trail.append("g-test", actor="executor", event="execution.started", plan_hash=plan.plan_hash())
    return trail.records("g-test")


def test_a_signed_plan_snapshot_verifies_with_the_public_keys(trail, seed_plan):
    signer = LocalPlanSigner()
    records = signed_trail(trail, seed_plan, signer)
    result = verify_chain(records, expected_head=records[-1].hash, verifier=signer.verifier())
    assert result.valid, result.problems
    assert [(c.event, c.planId, c.planHash, c.kid, c.result) for c in result.signatures] == [
        (event, seed_plan.planId, seed_plan.plan_hash(), signer.kid, "verified")
        for event in ("plan.created", "approval.approved")
    ]
    # The record says which plan, in words an auditor reads, and nothing personal.
    detail = records[1].detail
    assert detail["total"] == seed_plan.summary.total.model_dump(mode="json")
    assert detail["planSignature"]["alg"] == "ECDSA_SHA_256"
    assert "Gongti" not in str(detail) and "2266" not in str(detail)


def test_a_rebuilt_chain_cannot_vouch_for_a_plan_the_backend_never_signed(trail, seed_plan):
    signer = LocalPlanSigner()
    records = signed_trail(trail, seed_plan, signer)
    forged = rechain(records, lambda record: {"planHash": "sha256:" + "f" * 64}
                     if record.event == "approval.approved" else {})  # fmt: skip
    assert verify_chain(forged).valid  # the chain alone cannot tell
    result = verify_chain(forged, verifier=signer.verifier())
    assert not result.valid and [s.result for s in result.signatures] == ["verified", "invalid"]
    assert result.problems == [
        "record 2 (approval.approved): the plan signature does not match what the record shows"
    ]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"total": {"amount_minor": 1, "currency": "CNY"}}, "does not match what the record shows"),
        ({"items": ["1 x a-cheaper-item"]}, "does not match what the record shows"),
        ({"steps": ["s1 checkout.create"]}, "does not match what the record shows"),
        ({"planId": "p-another"}, "does not match what the record shows"),
    ],
)
def test_the_signature_covers_what_the_record_shows_not_only_ids(trail, seed_plan, change, problem):
    signer = LocalPlanSigner()
    records = signed_trail(trail, seed_plan, signer)
    forged = rechain(records, lambda r: {"detail": {**r.detail, **change}} if r.seq == 2 else {})
    result = verify_chain(forged, verifier=signer.verifier())
    assert [s.result for s in result.signatures] == ["verified", "invalid"]
    assert len(result.problems) == 1 and problem in result.problems[0]


def test_a_missing_signature_fails_with_or_without_keys(trail, seed_plan):
    signer = LocalPlanSigner()
    records = signed_trail(trail, seed_plan, signer)
    stripped = rechain(records, lambda r: {"detail": {k: v for k, v in r.detail.items() if k != "planSignature"}}
                       if r.seq == 1 else {})  # fmt: skip
    for verifier in (signer.verifier(), None):
        result = verify_chain(stripped, verifier=verifier)
        assert not result.valid
        assert "record 1 (plan.created) fixes a plan but carries no plan signature" in result.problems


def test_a_signature_by_an_unpublished_key_is_a_failure(trail, seed_plan):
    signer = LocalPlanSigner()
    records = signed_trail(trail, seed_plan, signer)
    stranger = LocalPlanSigner()  # a key of its own, published in a registry of its own
    result = verify_chain(records, verifier=stranger.verifier())
    assert not result.valid and [s.result for s in result.signatures] == ["unknown-key", "unknown-key"]
    assert f"is signed with key {signer.kid!r}, which is not a published audit key" in result.problems[0]


def test_signatures_made_before_two_rotations_still_verify(trail, seed_plan):
    signer = LocalPlanSigner()
    signed_trail(trail, seed_plan, signer)
    first = signer.kid
    signer.rotate()
    signer.rotate()
    trail.append("g-test", actor="approver:user-1", event="plan.reduced", plan_hash=seed_plan.plan_hash(),
                 detail=signed_plan_detail("g-test", seed_plan, signer))  # fmt: skip
    result = verify_chain(trail.records("g-test"), verifier=signer.verifier())
    assert result.valid, result.problems
    assert [s.kid for s in result.signatures] == [first, first, signer.kid] and signer.kid != first


def rechain(records: list[AuditRecord], change: Callable[[AuditRecord], dict[str, Any]]) -> list[AuditRecord]:
    """What a careful forger does: change records, then recompute every hash and link after them."""
    forged: list[AuditRecord] = []
    for record in records:
        changes = {**change(record), **({"prevHash": forged[-1].hash} if forged else {})}
        body = record.model_copy(update=changes).body()
        forged.append(AuditRecord(**body, hash=hash_record_body(body)))
    return forged


def test_identifiers_and_hashes_survive_masking_byte_for_byte(trail):
    digits_hash = "sha256:" + "1234567890" * 6 + "abcd"
    goal_like = "g-1234567890123456789012345a"
    trail.append("g-ids", actor="executor", event="step.executed", plan_hash=digits_hash,
                 detail={"fromPlanHash": digits_hash, "idempotencyKey": f"{goal_like}:s1", "orderId": "1234567890",
                         "note": "call 13910882266 now"})  # fmt: skip
    (record,) = trail.records("g-ids")
    assert record.planHash == digits_hash and record.detail["fromPlanHash"] == digits_hash
    assert record.detail["idempotencyKey"] == f"{goal_like}:s1"
    # A bare ten-digit value is indistinguishable from a phone number: masked.
    assert record.detail["orderId"] == "*****" and record.detail["note"] == "call ***** now"
