"""Anchoring each record in write-once storage: what a table writer can no longer do unnoticed."""

from __future__ import annotations

import pytest

from cartpilot.audit.chain import AuditRecord, hash_record_body, verify_chain
from cartpilot.audit.trail import AuditTrail
from tests.fakes import InMemoryAuditRecords
from tests.fakes.plan_signing import InMemoryAuditAnchors


class Trail:
    def __init__(self) -> None:
        self.records = InMemoryAuditRecords()
        self.anchors = InMemoryAuditAnchors()
        self.trail = AuditTrail(self.records, anchors=self.anchors, sleep=lambda _: None)

    def write(self, count: int = 4) -> list[AuditRecord]:
        for number in range(count):
            self.trail.append("g-1", actor="tester", event=f"event.{number}", detail={"n": number})
        return self.trail.records("g-1")

    def verify(self, records: list[AuditRecord]) -> list[str]:
        return verify_chain(records, expected_head=records[-1].hash, anchors=self.anchors.all("g-1")).problems


def _next(record: AuditRecord, **changes: object) -> AuditRecord:
    body = {**record.body(), "seq": record.seq + 1, "prevHash": record.hash, **changes}
    return AuditRecord(**body, hash=hash_record_body(AuditRecord(**body, hash="").body()))


def _rechain(records: list[AuditRecord]) -> list[AuditRecord]:
    rebuilt: list[AuditRecord] = []
    for record in records:
        body = record.model_copy(update={"prevHash": rebuilt[-1].hash} if rebuilt else {}).body()
        rebuilt.append(AuditRecord(**body, hash=hash_record_body(body)))
    return rebuilt


def test_every_written_record_is_anchored_and_verifies():
    trail = Trail()
    records = trail.write()
    assert [anchor.hash for anchor in trail.anchors.all("g-1")] == [record.hash for record in records]
    assert trail.verify(records) == []


def test_a_record_appended_after_the_head_is_not_anchored():
    trail = Trail()
    records = trail.write()
    appended = [*records, _next(records[-1], event="refund.issued")]
    assert trail.verify(appended) == ["record 5 is not anchored: it was added outside the audit trail"]


def test_a_rebuilt_chain_differs_from_its_anchors():
    trail = Trail()
    records = trail.write()
    records[1] = records[1].model_copy(update={"actor": "user:someone-else"})
    forged = _rechain(records)
    assert trail.verify(forged) == [
        f"record {seq} differs from its anchor: it was rewritten" for seq in (2, 3, 4)
    ]


def test_a_removed_tail_is_still_anchored():
    trail = Trail()
    records = trail.write()
    assert trail.verify(records[:-1]) == ["record 4 is anchored but not in the table: records were removed"]


def test_an_anchor_written_twice_is_reported():
    trail = Trail()
    records = trail.write()
    trail.anchors.overwrite(records[1].model_copy(update={"actor": "user:someone-else"}))
    assert trail.verify(records) == ["the anchor of record 2 was written 2 times"]


def test_a_record_planted_at_the_next_place_does_not_stop_the_trail():
    trail = Trail()
    records = trail.write(2)
    trail.records.insert(_next(records[-1], event="refund.issued"))  # no anchor: planted in the table
    trail.trail.append("g-1", actor="tester", event="event.after")
    problems = trail.verify(trail.trail.records("g-1"))
    assert problems == ["record 3 is not anchored: it was added outside the audit trail"]


def test_a_record_anchored_by_a_writer_that_stopped_is_restored_by_the_next_append():
    trail = Trail()
    records = trail.write(2)
    stopped = _next(records[-1], event="event.stopped")
    trail.anchors.claim(stopped)  # the writer stopped before inserting it
    assert trail.verify(records) == ["record 3 is anchored but not in the table: records were removed"]
    trail.trail.append("g-1", actor="tester", event="event.after")
    restored = trail.trail.records("g-1")
    assert [record.event for record in restored] == ["event.0", "event.1", "event.stopped", "event.after"]
    assert trail.verify(restored) == []


@pytest.mark.parametrize("count", [1, 3])
def test_without_anchors_nothing_about_anchoring_is_claimed(count):
    trail = AuditTrail(InMemoryAuditRecords())
    for number in range(count):
        trail.append("g-2", actor="tester", event=f"event.{number}")
    assert trail.anchors("g-2") is None


class _Goal:
    goalId = "g-1"
    auditHead = None


def test_the_audit_view_waits_out_an_append_in_flight_before_calling_it_a_removal():
    from cartpilot.goals.ledger import GoalLedger
    from cartpilot.goals.views import audit_view
    from tests.fakes import InMemoryGoalStore

    trail = Trail()
    records = trail.write(2)
    in_flight = _next(records[-1], event="event.in-flight")
    trail.anchors.claim(in_flight)  # anchored; its writer is about to insert it
    pauses: list[float] = []

    def writer_finishes(seconds: float) -> None:
        pauses.append(seconds)
        trail.records.insert(in_flight)

    ledger = GoalLedger(InMemoryGoalStore(), trail.trail)
    view = audit_view(_Goal(), ledger, sleep=writer_finishes)  # type: ignore[arg-type]

    assert view.verification.valid and len(view.records) == 3
    assert len(pauses) == 1


def test_the_audit_view_reports_a_removed_tail_once_the_pauses_are_spent():
    from cartpilot.goals.ledger import GoalLedger
    from cartpilot.goals.views import SETTLE_PAUSES, audit_view
    from tests.fakes import InMemoryGoalStore

    trail = Trail()
    trail.write(3)
    trail.records.delete("g-1", 3)
    pauses: list[float] = []
    view = audit_view(_Goal(), GoalLedger(InMemoryGoalStore(), trail.trail), sleep=pauses.append)  # type: ignore[arg-type]

    assert pauses == list(SETTLE_PAUSES)
    assert view.verification.problems == ["record 3 is anchored but not in the table: records were removed"]


def test_records_appended_while_the_view_waits_come_with_their_anchors():
    from cartpilot.goals.ledger import GoalLedger
    from cartpilot.goals.views import audit_view
    from tests.fakes import InMemoryGoalStore

    trail = Trail()
    records = trail.write(2)
    in_flight = _next(records[-1], event="event.in-flight")
    trail.anchors.claim(in_flight)

    def writers_go_on(seconds: float) -> None:
        trail.records.insert(in_flight)
        trail.trail.append("g-1", actor="tester", event="event.next")  # anchored, then inserted

    view = audit_view(_Goal(), GoalLedger(InMemoryGoalStore(), trail.trail), sleep=writers_go_on)  # type: ignore[arg-type]

    assert view.verification.problems == []
    assert [record.seq for record in view.records] == [1, 2, 3, 4] == [a.seq for a in view.anchors or []]
