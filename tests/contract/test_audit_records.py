"""AuditRecords, and the AuditTrail over it: write-once places, order, and a chain that holds under races."""

from __future__ import annotations

import functools
import random

import pytest

from cartpilot.audit.chain import GENESIS_HASH, AuditRecord, hash_record_body, verify_chain
from cartpilot.audit.ports import AuditSlotTaken
from cartpilot.audit.trail import AuditTrail
from tests.contract.backends import AuditRecordsBackend
from tests.contract.racing import race


def record(goal_id: str, seq: int, *, event: str = "goal.received", **detail: object) -> AuditRecord:
    body = {
        "goalId": goal_id,
        "seq": seq,
        "at": f"2026-11-25T08:{seq:02d}:00+00:00",
        "actor": "api",
        "event": event,
        "status": "RECEIVED" if seq == 1 else None,
        "planHash": None,
        "detail": detail,
        "prevHash": GENESIS_HASH,
    }
    return AuditRecord(**body, hash=hash_record_body(AuditRecord(**body, hash="").body()))  # type: ignore[arg-type]


def test_an_empty_chain_has_no_latest_and_no_records(audit: AuditRecordsBackend):
    assert audit.records.latest("g-empty") is None
    assert audit.records.all("g-empty") == []


def test_a_record_reads_back_as_written(audit: AuditRecordsBackend):
    written = record(
        "g-1",
        1,
        total={"amount_minor": 249900, "currency": "CNY"},
        ratio=0.25,
        items=["鞋", None, True],
        big=2**53 + 1,
    )
    audit.records.insert(written)
    assert audit.records.latest("g-1") == written
    assert audit.records.all("g-1") == [written]
    assert hash_record_body(audit.records.all("g-1")[0].body()) == written.hash


def test_a_taken_place_is_refused_and_not_overwritten(audit: AuditRecordsBackend):
    first = record("g-1", 1, who="first")
    audit.records.insert(first)
    with pytest.raises(AuditSlotTaken):
        audit.records.insert(record("g-1", 1, who="second"))
    assert audit.records.all("g-1") == [first]
    assert audit.records.latest("g-1") == first


def test_latest_is_the_highest_seq_and_all_is_in_seq_order(audit: AuditRecordsBackend):
    seqs = list(range(1, 13))
    random.Random(7).shuffle(seqs)
    for seq in seqs:  # written out of order: 10, 11, 12 must not sort before 2
        audit.records.insert(record("g-1", seq))
    latest = audit.records.latest("g-1")
    assert latest is not None and latest.seq == 12
    assert [r.seq for r in audit.records.all("g-1")] == list(range(1, 13))


def test_each_goal_has_its_own_chain(audit: AuditRecordsBackend):
    for goal_id, count in (("g-1", 2), ("g-10", 3), ("g-1x", 1)):
        for seq in range(1, count + 1):
            audit.records.insert(record(goal_id, seq))
    assert [(r.goalId, r.seq) for r in audit.records.all("g-1")] == [("g-1", 1), ("g-1", 2)]
    assert audit.records.latest("g-10").seq == 3  # type: ignore[union-attr]
    assert audit.records.latest("g-") is None


def test_what_is_stored_is_a_copy(audit: AuditRecordsBackend):
    written = record("g-1", 1, result={"orderId": "o-1"})
    audit.records.insert(written)
    written.detail["result"]["orderId"] = "o-forged"
    audit.records.all("g-1")[0].detail["extra"] = "added by a reader"
    stored = audit.records.latest("g-1")
    assert stored is not None and stored.detail == {"result": {"orderId": "o-1"}}
    assert verify_chain(audit.records.all("g-1")).valid


def test_an_appended_trail_verifies(audit: AuditRecordsBackend):
    trail = AuditTrail(audit.records)
    trail.append("g-1", actor="api", event="goal.received", status="RECEIVED")
    trail.append("g-1", actor="planner", event="planning.started", plan_hash="sha256:p", detail={"steps": 4})
    trail.append("g-1", actor="validator", event="plan.validated", detail={"tier": "APPROVAL"})
    records = trail.records("g-1")
    assert [r.seq for r in records] == [1, 2, 3]
    assert verify_chain(records, expected_head=records[-1].hash).valid


def test_racing_appends_build_one_gap_free_chain(audit: AuditRecordsBackend):
    writers, appends = 6, 4

    def write(trail: AuditTrail, writer: int) -> list[int]:
        return [
            trail.append("g-race", actor=f"writer-{writer}", event="step.executed", detail={"n": n}).seq
            for n in range(appends)
        ]

    trails = [AuditTrail(audit.another()) for _ in range(writers)]
    seqs = race([functools.partial(write, trail, writer) for writer, trail in enumerate(trails)])

    records = audit.records.all("g-race")
    assert sorted(seq for taken in seqs for seq in taken) == list(range(1, writers * appends + 1))
    assert [r.seq for r in records] == list(range(1, writers * appends + 1))
    verification = verify_chain(records, expected_head=records[-1].hash)
    assert verification.valid, verification.problems
    assert sorted((r.actor, r.detail["n"]) for r in records) == sorted(
        (f"writer-{w}", n) for w in range(writers) for n in range(appends)
    )
