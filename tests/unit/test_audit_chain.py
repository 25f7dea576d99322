import threading

import pytest

from cartpilot.audit import AuditRecord, AuditTrail, hash_record_body, verify_chain


@pytest.fixture
def trail(aws_tables) -> AuditTrail:
    import os

    return AuditTrail(aws_tables["dynamodb"].Table(os.environ["AUDIT_TABLE"]))


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
