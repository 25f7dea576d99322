"""A recorded decision always reaches the flow: retried in the request, sent again when the link is
used again, and shown as expired when the flow stopped waiting first (issue 11, row 10)."""

from __future__ import annotations

from typing import Any

import pytest

from cartpilot.approvals.delivery import TOO_LATE, DecisionCourier, Delivered, close_on_expiry
from cartpilot.approvals.desk import ApprovalDesk, DeskError
from cartpilot.approvals.model import Approval, ApprovalStatus, Delivery
from cartpilot.goals.model import GoalStatus
from cartpilot.goals.ports import WorkflowUnavailable
from tests.fakes import FakeWorkflow, InMemoryOrderCounters, StaleApprovals
from tests.unit.stages import NOON, Pending

TOKEN = "task-token-1"


class FlakyEngine:
    """The pending goal's workflow, unavailable ``failures`` times first. With ``lost_answers``,
    an unavailable answer comes after the engine took the call (the response was lost)."""

    def __init__(self, inner: FakeWorkflow, failures: int, *, lost_answers: bool = False) -> None:
        self.inner = inner
        self.failures = failures
        self.lost_answers = lost_answers
        self.attempts = 0

    def _call(self, resume: Any, *args: Any, **kwargs: Any) -> None:
        self.attempts += 1
        if self.failures > 0:
            self.failures -= 1
            if self.lost_answers:
                resume(*args, **kwargs)
            raise WorkflowUnavailable("ServiceUnavailable")
        resume(*args, **kwargs)

    def succeed(self, task_token: str, output: dict[str, Any]) -> None:
        self._call(self.inner.succeed, task_token, output)

    def fail(self, task_token: str, *, error: str, cause: str) -> None:
        self._call(self.inner.fail, task_token, error=error, cause=cause)

    def start(self, name: str, flow_input: dict[str, Any]) -> str:
        return self.inner.start(name, flow_input)


def desk_with(pending: Pending, engine: Any, sleeps: list[float]) -> ApprovalDesk:
    return ApprovalDesk(
        ledger=pending.ledger, approvals=pending.approvals, keys=pending.keys, workflow=engine,
        brand=pending.brand, users=pending.users, counters=InMemoryOrderCounters(), signer=pending.signer,
        clock=lambda: NOON, sleep=sleeps.append,
    )  # fmt: skip


def approval_of(pending: Pending) -> Approval:
    approval = pending.approvals.get(pending.approval_id)
    assert approval is not None
    return approval


def test_one_unavailable_answer_is_retried_in_the_same_request(pending: Pending):
    engine, sleeps = FlakyEngine(pending.sfn, failures=1), []
    view = desk_with(pending, engine, sleeps).decide(pending.approval_id, pending.link, "approve", None)

    assert view.outcome == "approved" and not view.undelivered and not view.approval.undelivered
    assert engine.attempts == 2 and len(sleeps) == 1
    assert [kind for kind, _ in pending.sfn.calls] == ["success"]
    assert approval_of(pending).delivery is Delivery.DELIVERED


def test_a_decision_the_engine_would_not_take_is_sent_again_when_the_link_is_opened(pending: Pending):
    engine, sleeps = FlakyEngine(pending.sfn, failures=100), []
    desk = desk_with(pending, engine, sleeps)
    view = desk.decide(pending.approval_id, pending.link, "approve", None)

    # Recorded, not delivered: the page says so, the flow still waits, nothing was sent.
    assert view.approval.status is ApprovalStatus.APPROVED and view.undelivered
    assert engine.attempts == 3 and pending.sfn.calls == []
    assert pending.goal().status is GoalStatus.AWAITING_APPROVAL
    again = desk.decide(pending.approval_id, pending.link, "approve", None)
    assert again.outcome == "already-decided" and again.undelivered

    engine.failures = 0
    opened = desk.open(pending.approval_id, pending.link)
    assert not opened.undelivered and opened.approval.delivery is Delivery.DELIVERED
    assert [kind for kind, _ in pending.sfn.calls] == ["success"]
    output = pending.sfn.calls[0][1]["output"]
    assert output["planHash"] == pending.plan.plan_hash()
    assert output["steps"] == pending.plan.execution_steps()
    assert output["next"] == pending.plan.execution_steps()[0]  # where the flow's step loop starts

    # Delivered once: a later POST shows the decision and sends nothing.
    desk.decide(pending.approval_id, pending.link, "approve", None)
    assert len(pending.sfn.calls) == 1
    assert pending.audit_events().count("approval.approved") == 1


def test_a_rejection_the_engine_would_not_take_is_sent_again_on_the_next_post(pending: Pending):
    engine, sleeps = FlakyEngine(pending.sfn, failures=3), []
    desk = desk_with(pending, engine, sleeps)
    assert desk.decide(pending.approval_id, pending.link, "reject", None).undelivered

    view = desk.decide(pending.approval_id, pending.link, "approve", None)
    assert view.outcome == "already-decided" and view.approval.status is ApprovalStatus.REJECTED
    assert [(kind, call["error"]) for kind, call in pending.sfn.calls] == [("failure", "ApprovalRejected")]
    assert approval_of(pending).delivery is Delivery.DELIVERED


def test_a_lost_answer_is_not_mistaken_for_a_timed_out_flow(pending: Pending):
    # The engine took the decision but its answer was lost; the retry hears "token gone".
    engine, sleeps = FlakyEngine(pending.sfn, failures=1, lost_answers=True), []
    desk = desk_with(pending, engine, sleeps)
    view = desk.decide(pending.approval_id, pending.link, "approve", None)
    assert view.approval.status is ApprovalStatus.APPROVED and view.undelivered
    assert "approval.too-late" not in pending.audit_events()

    # The flow resumed on it and moved the goal on: the next look settles it as delivered.
    pending.ledger.store.update(pending.goal_id, status=GoalStatus.EXECUTING, updated_at=NOON.isoformat())
    settled = desk.open(pending.approval_id, pending.link)
    assert settled.approval.delivery is Delivery.DELIVERED
    assert [kind for kind, _ in pending.sfn.calls] == ["success"]
    assert "approval.too-late" not in pending.audit_events()


def test_a_decision_whose_flow_stopped_waiting_is_shown_as_expired(pending: Pending):
    engine, sleeps = FlakyEngine(pending.sfn, failures=100), []
    desk = desk_with(pending, engine, sleeps)
    desk.decide(pending.approval_id, pending.link, "approve", None)
    pending.sfn.stop_waiting(TOKEN)  # the wait timed out
    engine.failures = 0
    # Until the flow records the expiry, "token gone" may as well mean "taken by another sender".
    assert desk.open(pending.approval_id, pending.link).undelivered
    assert approval_of(pending).status is ApprovalStatus.APPROVED
    # The flow's timeout path ends the goal; the approver looks before it closed the approval.
    pending.ledger.transition(pending.goal_id, GoalStatus.EXPIRED, actor="flow", event="goal.expired")

    for call in (lambda: desk.open(pending.approval_id, pending.link),
                 lambda: desk.decide(pending.approval_id, pending.link, "approve", None)):  # fmt: skip
        with pytest.raises(DeskError) as refused:
            call()
        assert (refused.value.status, refused.value.message) == (410, TOO_LATE)
    assert approval_of(pending).status is ApprovalStatus.EXPIRED
    goal = pending.goal()
    assert goal.approval is not None and goal.approval.status == "EXPIRED"
    assert pending.audit_events().count("approval.too-late") == 1
    assert pending.sfn.calls == []


def test_a_losing_concurrent_post_shows_the_decision_and_sends_nothing(pending: Pending):
    read_while_pending = approval_of(pending)
    # Another POST records its decision and is still sending it when this one loses the write.
    pending.approvals.decide(
        pending.approval_id, ApprovalStatus.APPROVED, decided_at=NOON.isoformat(), decided_by="user-1"
    )
    stale = StaleApprovals(pending.approvals, read_while_pending)
    desk = ApprovalDesk(
        ledger=pending.ledger, approvals=stale, keys=pending.keys, workflow=pending.sfn,  # type: ignore[arg-type]
        brand=pending.brand, users=pending.users, counters=InMemoryOrderCounters(), signer=pending.signer,
        clock=lambda: NOON,
    )  # fmt: skip
    view = desk.decide(pending.approval_id, pending.link, "approve", None)
    assert view.outcome == "already-decided" and not view.undelivered
    assert pending.sfn.calls == [] and approval_of(pending).undelivered


def test_a_concurrent_sender_that_got_there_first_counts_as_delivered(pending: Pending):
    engine, sleeps = FlakyEngine(pending.sfn, failures=100), []
    desk_with(pending, engine, sleeps).decide(pending.approval_id, pending.link, "approve", None)
    # Another request delivered it and marked it; this one only hears that the token is used.
    pending.sfn.succeed(TOKEN, {"from": "the other request"})
    pending.approvals.mark_delivered(pending.approval_id, delivered_at=NOON.isoformat())
    courier = DecisionCourier(
        approvals=pending.approvals, workflow=pending.sfn, goals=pending.ledger.store, sleep=sleeps.append
    )
    assert courier.deliver(approval_of(pending)) is Delivered.DELIVERED
    assert approval_of(pending).status is ApprovalStatus.APPROVED


def test_the_flows_timeout_closes_an_undelivered_decision(pending: Pending):
    engine, sleeps = FlakyEngine(pending.sfn, failures=100), []
    desk_with(pending, engine, sleeps).decide(pending.approval_id, pending.link, "approve", None)
    assert pending.goal().approval is not None and pending.goal().approval.status == "APPROVED"  # type: ignore[union-attr]

    pending.ledger.transition(pending.goal_id, GoalStatus.EXPIRED, actor="flow", event="goal.expired")
    close_on_expiry(pending.goal(), approvals=pending.approvals, ledger=pending.ledger)

    goal = pending.goal()
    assert (
        goal.status is GoalStatus.EXPIRED and goal.approval is not None and goal.approval.status == "EXPIRED"
    )
    assert approval_of(pending).status is ApprovalStatus.EXPIRED
    assert pending.audit_events().count("approval.too-late") == 1
    with pytest.raises(DeskError) as refused:
        pending.desk.open(pending.approval_id, pending.link)
    assert refused.value.message == TOO_LATE


def test_the_flows_timeout_closes_an_undecided_approval_quietly(pending: Pending):
    pending.ledger.transition(pending.goal_id, GoalStatus.EXPIRED, actor="flow", event="goal.expired")
    close_on_expiry(pending.goal(), approvals=pending.approvals, ledger=pending.ledger)
    assert approval_of(pending).status is ApprovalStatus.EXPIRED
    assert "approval.too-late" not in pending.audit_events()
    with pytest.raises(DeskError) as refused:
        pending.desk.open(pending.approval_id, pending.link)
    assert refused.value.message == "this approval is no longer waiting for a decision"
