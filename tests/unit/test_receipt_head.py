"""The chain head at the end of the order: the confirmation and the receipt's delivery records are
pointed at by the goal writes that follow them, not by head writes of their own."""

from __future__ import annotations

from typing import Any

import pytest

from cartpilot.audit.chain import verify_chain
from cartpilot.execution.outcomes import confirm_order, send_receipt
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.model import GoalStatus
from tests.fakes import RecordingNotifier
from tests.unit.stages import OrderFlow


class AuditingNotifier(RecordingNotifier):
    """Audits each delivery on the goal, as the email channel does; ``fail_after`` sends then refuses."""

    def __init__(self, ledger: GoalLedger, *, fail_after: bool = False) -> None:
        super().__init__()
        self.ledger, self.fail_after = ledger, fail_after

    def send(self, **message: Any) -> str:
        sent = super().send(**message)
        self.ledger.note(
            message["goal_id"],
            actor="notify",
            event="notification.delivered",
            detail={"kind": message["kind"]},
        )
        if self.fail_after:
            self.fail_after = False
            raise RuntimeError("connection reset after the send")
        return sent


@pytest.fixture
def head_moves(flow: OrderFlow, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The seqs the goal's head was moved to by head writes of their own (not by the head move a
    goal update carries, which the fake store makes with the same method)."""
    moves: list[int] = []
    inside_update: list[bool] = []
    store = flow.ledger.store
    original_advance, original_update = store.advance_audit_head, store.update

    def advance(goal_id: str, *, seq: int, head: str) -> None:
        if not inside_update:
            moves.append(seq)
        original_advance(goal_id, seq=seq, head=head)

    def update(goal_id: str, **fields: Any) -> None:
        inside_update.append(True)
        try:
            original_update(goal_id, **fields)
        finally:
            inside_update.pop()

    monkeypatch.setattr(store, "advance_audit_head", advance)
    monkeypatch.setattr(store, "update", update)
    return moves


def receipt(flow: OrderFlow, outputs: dict[str, Any]) -> None:
    send_receipt(
        flow.goal_id,
        outputs,
        ledger=flow.ledger,
        notifier=flow.notifier,
        brand=flow.brand,
        counters=flow.counters,
    )


def test_the_confirmation_waits_for_the_receipts_move_to_point_the_head_past_it(
    flow: OrderFlow, head_moves: list[int]
):
    outputs = flow.run_steps()
    head_before = flow.goal().auditSeq
    head_moves.clear()

    confirmed = confirm_order(flow.goal_id, outputs, ledger=flow.ledger, merchants=flow.merchants)

    assert flow.records()[-1].event == "order.confirmed"
    assert flow.goal().auditSeq == head_before, "no head write for the confirmation"
    assert verify_chain(flow.records(), expected_head=flow.goal().auditHead).valid
    receipt(flow, confirmed)
    completed = flow.last("order.completed")
    assert completed.seq == flow.last("order.confirmed").seq + 1
    assert flow.goal().auditSeq == completed.seq
    assert head_moves == []


def test_the_receipts_sent_mark_points_the_head_at_its_delivery_record(
    flow: OrderFlow, head_moves: list[int]
):
    flow.notifier = AuditingNotifier(flow.ledger)
    outputs = confirm_order(flow.goal_id, flow.run_steps(), ledger=flow.ledger, merchants=flow.merchants)
    head_moves.clear()

    receipt(flow, outputs)

    goal = flow.goal()
    delivered = flow.last("notification.delivered")
    assert flow.events()[-2:] == ["order.completed", "notification.delivered"]
    assert (goal.status, goal.auditSeq, goal.auditHead) == (
        GoalStatus.COMPLETED,
        delivered.seq,
        delivered.hash,
    )
    assert goal.receiptSentAt is not None
    assert head_moves == [], "the sent mark moved the head: no head write of its own"
    assert verify_chain(flow.records(), expected_head=goal.auditHead).valid


def test_a_delivery_that_fails_after_its_record_still_moves_the_head_and_the_retry_finishes(
    flow: OrderFlow, head_moves: list[int]
):
    flow.notifier = AuditingNotifier(flow.ledger, fail_after=True)
    outputs = confirm_order(flow.goal_id, flow.run_steps(), ledger=flow.ledger, merchants=flow.merchants)
    head_moves.clear()

    with pytest.raises(RuntimeError, match="connection reset"):
        receipt(flow, outputs)

    first = flow.last("notification.delivered")
    assert flow.goal().receiptSentAt is None
    assert (flow.goal().auditSeq, head_moves) == (first.seq, [first.seq])

    receipt(flow, outputs)  # Step Functions retries the state

    goal = flow.goal()
    again = flow.last("notification.delivered")
    assert again.seq > first.seq and goal.auditSeq == again.seq and goal.receiptSentAt is not None
    assert flow.events().count("order.completed") == 1
    assert head_moves == [first.seq]
    assert verify_chain(flow.records(), expected_head=goal.auditHead).valid


def test_only_the_named_goals_head_is_held_back(flow: OrderFlow, head_moves: list[int]):
    ledger = flow.ledger
    head_moves.clear()
    with ledger.head_deferred("some-other-goal") as other:
        record = ledger.note(flow.goal_id, actor="notify", event="notification.delivered")
    assert other.fields() == {}
    assert (head_moves, flow.goal().auditSeq) == ([record.seq], record.seq)

    with ledger.head_deferred(flow.goal_id) as held:
        later = ledger.note(flow.goal_id, actor="notify", event="notification.delivered")
    assert flow.goal().auditSeq == record.seq, "held back until the caller's own write"
    assert held.record == later
    ledger.store.update(flow.goal_id, updated_at=later.at, **held.fields())
    assert (flow.goal().auditSeq, head_moves) == (later.seq, [record.seq])
