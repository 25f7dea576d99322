"""The redelivery sweep: a recorded decision nobody comes back for still reaches the flow
(issue 11, row 10), once, and a sweep never decides, re-decides or resurrects anything."""

from __future__ import annotations

from datetime import timedelta

from cartpilot.approvals.model import ApprovalStatus, Delivery
from cartpilot.approvals.redelivery import GRACE_SECONDS, redeliver
from cartpilot.goals.model import GoalStatus
from tests.unit.stages import NOON, Pending
from tests.unit.test_approval_delivery import FlakyEngine, approval_of, desk_with

LATER = NOON + timedelta(seconds=GRACE_SECONDS + 1)


def undelivered_decision(pending: Pending, decision: str = "approve") -> FlakyEngine:
    """The approver decides while the engine is down, and never comes back."""
    engine = FlakyEngine(pending.sfn, failures=100)
    view = desk_with(pending, engine, []).decide(pending.approval_id, pending.link, decision, None)  # type: ignore[arg-type]
    assert view.undelivered and pending.sfn.calls == []
    return engine


def sweep(pending: Pending, engine: FlakyEngine, *, at=LATER):  # type: ignore[no-untyped-def]
    return redeliver(
        approvals=pending.approvals,
        workflow=engine,
        ledger=pending.ledger,
        now=lambda: at,
        sleep=lambda _: None,
    )


def test_a_decision_nobody_comes_back_for_is_sent_by_the_sweep_once(pending: Pending):
    engine = undelivered_decision(pending)
    engine.failures = 0

    report = sweep(pending, engine)

    assert report.delivered == [pending.approval_id]
    assert [kind for kind, _ in pending.sfn.calls] == ["success"]
    assert pending.sfn.calls[0][1]["output"]["planHash"] == pending.plan.plan_hash()
    assert approval_of(pending).delivery is Delivery.DELIVERED
    events = pending.audit_events()
    assert events.count("approval.approved") == 1 and events.count("approval.redelivered") == 1
    # Delivered: it left the sweep; the next one sends nothing.
    assert pending.approvals.undelivered(decided_before=LATER.isoformat()) == []
    assert sweep(pending, engine).delivered == [] and len(pending.sfn.calls) == 1


def test_a_rejection_is_redelivered_as_a_rejection(pending: Pending):
    engine = undelivered_decision(pending, "reject")
    engine.failures = 0

    assert sweep(pending, engine).delivered == [pending.approval_id]
    assert [(kind, call["error"]) for kind, call in pending.sfn.calls] == [("failure", "ApprovalRejected")]
    assert approval_of(pending).status is ApprovalStatus.REJECTED


def test_while_the_engine_is_down_the_decision_stays_for_the_next_sweep(pending: Pending):
    engine = undelivered_decision(pending)

    report = sweep(pending, engine)

    assert report.undelivered == [pending.approval_id] and report.delivered == []
    assert approval_of(pending).undelivered and "approval.redelivered" not in pending.audit_events()
    engine.failures = 0
    assert sweep(pending, engine).delivered == [pending.approval_id]


def test_a_fresh_decision_is_left_to_the_desk_for_the_grace_period(pending: Pending):
    engine = undelivered_decision(pending)
    engine.failures = 0

    report = sweep(pending, engine, at=NOON + timedelta(seconds=GRACE_SECONDS - 1))

    assert report.delivered == report.undelivered == [] and engine.attempts == 3


def test_pending_and_delivered_approvals_are_not_swept(pending: Pending):
    engine = FlakyEngine(pending.sfn, failures=0)
    assert sweep(pending, engine).delivered == [] and engine.attempts == 0  # nothing decided yet

    desk_with(pending, engine, []).decide(pending.approval_id, pending.link, "approve", None)
    assert approval_of(pending).delivery is Delivery.DELIVERED
    assert sweep(pending, engine).delivered == [] and len(pending.sfn.calls) == 1


def test_a_flow_that_stopped_waiting_is_left_to_its_timeout_path(pending: Pending):
    engine = undelivered_decision(pending)
    engine.failures = 0
    pending.sfn.stop_waiting(pending.approvals.task_token(pending.approval_id))

    # The goal still says AWAITING_APPROVAL: the flow has not recorded its timeout yet.
    report = sweep(pending, engine)
    assert report.undelivered == [pending.approval_id]
    assert approval_of(pending).undelivered and "approval.too-late" not in pending.audit_events()

    # The flow's timeout path ended the goal: the sweep says so and leaves the closing to it.
    pending.ledger.store.update(pending.goal_id, status=GoalStatus.EXPIRED, updated_at=NOON.isoformat())
    assert sweep(pending, engine).expired == [pending.approval_id]
    assert pending.sfn.calls == [] and "approval.redelivered" not in pending.audit_events()
