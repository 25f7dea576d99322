"""The approval desk's remaining paths on the fakes: approvals that expired, plans that broke or moved
while a decision was being recorded, decisions that lost a race, and re-validation of a reduced plan."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from cartpilot.approvals.desk import ApprovalDesk, DeskError
from cartpilot.approvals.model import Approval, ApprovalStatus
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.model import GoalStatus
from cartpilot.goals.ports import GoalStore
from cartpilot.plans.reservations import daily_limits
from tests.fakes import InMemoryOrderCounters, StaleApprovals
from tests.fakes.merchant import cny
from tests.unit.stages import NOON, Pending


class RacingGoalStore:
    """The goal store, with ``race`` run once just before the desk's conditional write of a decision."""

    def __init__(self, inner: GoalStore, race: Callable[[], None]) -> None:
        self._inner = inner
        self._race: Callable[[], None] | None = race

    def update(self, goal_id: str, **changes: Any) -> None:
        if changes.get("condition_plan_hash") is not None and self._race is not None:
            race, self._race = self._race, None
            race()
        self._inner.update(goal_id, **changes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def desk(pending: Pending, **changes: Any) -> ApprovalDesk:
    collaborators: dict[str, Any] = {
        "ledger": pending.ledger, "approvals": pending.approvals, "keys": pending.keys, "workflow": pending.sfn,
        "brand": pending.brand, "users": pending.users, "counters": InMemoryOrderCounters(), "signer": pending.signer,
        "clock": lambda: NOON,
    }  # fmt: skip
    return ApprovalDesk(**{**collaborators, **changes})


def refusal(call: Callable[[], object]) -> DeskError:
    with pytest.raises(DeskError) as raised:
        call()
    return raised.value


def approval_of(pending: Pending) -> Approval:
    approval = pending.approvals.get(pending.approval_id)
    assert approval is not None
    return approval


# --- approvals and plans that can no longer be decided ------------------------------------------------------


def test_an_expired_approval_can_be_neither_shown_nor_decided(pending: Pending):
    pending.approvals.mark_expired(pending.approval_id, decided_at=NOON.isoformat())
    before = pending.snapshot()
    for call in (lambda: pending.desk.open(pending.approval_id, pending.link),
                 lambda: pending.desk.decide(pending.approval_id, pending.link, "approve", None),
                 lambda: pending.desk.decide(pending.approval_id, pending.link, "reject", None)):  # fmt: skip
        error = refusal(call)
        assert (error.status, error.code) == (410, "APPROVAL_EXPIRED")
    assert pending.snapshot() == before and pending.sfn.calls == []


def test_a_stored_plan_that_no_longer_fits_the_schema_can_be_neither_shown_nor_decided(pending: Pending):
    document = pending.plan.model_dump(mode="json")
    document["steps"][-1]["args"]["amount"] = {"amount_minor": 1, "currency": "XXX"}
    pending.ledger.store.update(pending.goal_id, updated_at=NOON.isoformat(), plan=document)
    before = pending.snapshot()
    for call in (lambda: pending.desk.open(pending.approval_id, pending.link),
                 lambda: pending.desk.decide(pending.approval_id, pending.link, "approve", None)):  # fmt: skip
        error = refusal(call)
        assert (error.status, error.code) == (409, "NO_PLAN")
    assert pending.snapshot() == before and pending.sfn.calls == []


def test_rejecting_after_the_flow_stopped_waiting_is_too_late(pending: Pending):
    pending.sfn.stop_waiting("task-token-1")
    error = refusal(lambda: pending.desk.decide(pending.approval_id, pending.link, "reject", None))
    assert (error.status, error.code) == (410, "APPROVAL_EXPIRED")
    assert approval_of(pending).status is ApprovalStatus.EXPIRED
    assert pending.goal().approval.status == "EXPIRED"  # type: ignore[union-attr]
    assert pending.audit_events()[-2:] == ["approval.rejected", "approval.too-late"]
    assert pending.sfn.calls == []


# --- re-validating a reduced plan ----------------------------------------------------------------------------


def test_leaving_out_a_step_needs_the_shoppers_profile(pending: Pending):
    class NoOne:
        def get(self, user_id: str) -> None:
            return None

    before = pending.snapshot()
    error = refusal(lambda: desk(pending, users=NoOne()).decide(
        pending.approval_id, pending.link, "approve", None, drop=["s2"]))  # fmt: skip
    assert (error.status, error.code) == (409, "NO_PROFILE")
    assert pending.snapshot() == before and pending.sfn.calls == []


def test_a_reduced_plan_is_checked_against_the_orders_placed_since(pending: Pending):
    counters = InMemoryOrderCounters()
    for number in range(5):
        counters.record_order(f"g-earlier-{number}", "user-1", cny("59.00"), at=NOON - timedelta(hours=1))
    before = pending.snapshot()

    error = refusal(lambda: desk(pending, counters=counters).decide(
        pending.approval_id, pending.link, "approve", None, drop=["s2"]))  # fmt: skip

    assert (error.status, error.code) == (422, "DROP_DENIED")
    assert pending.snapshot() == before and pending.sfn.calls == []
    # The orders of another day do not count.
    next_day = desk(pending, counters=counters, clock=lambda: NOON + timedelta(days=1))
    assert (
        next_day.decide(pending.approval_id, pending.link, "approve", None, drop=["s2"]).outcome == "approved"
    )


# --- decisions racing the flow -----------------------------------------------------------------------------


def test_a_plan_replaced_while_the_decision_is_written_fails_the_flow_and_runs_nothing(pending: Pending):
    replanned = pending.plan.model_dump(mode="json")
    replanned["summary"]["items"][0]["quantity"] = 2

    def replan() -> None:
        pending.ledger.store.update(pending.goal_id, updated_at=NOON.isoformat(), plan=replanned,
                                    planHash="sha256:" + "e" * 64)  # fmt: skip

    racing = GoalLedger(RacingGoalStore(pending.ledger.store, replan), pending.ledger.audit)  # type: ignore[arg-type]
    error = refusal(
        lambda: desk(pending, ledger=racing).decide(pending.approval_id, pending.link, "approve", None)
    )

    assert (error.status, error.code) == (409, "PLAN_CHANGED")
    assert pending.sfn.calls == [
        ("failure", {"taskToken": "task-token-1", "error": "PlanChanged",
                     "cause": "The plan changed while it was being approved."}),
    ]  # fmt: skip
    goal = pending.goal()
    assert goal.approvedPlanHash is None and goal.status is GoalStatus.AWAITING_APPROVAL
    assert pending.audit_events()[-1] == "approval.plan-changed"
    assert "approval.approved" not in pending.audit_events()


def test_a_goal_that_stopped_waiting_while_the_decision_is_written_is_too_late(pending: Pending):
    def time_out() -> None:
        pending.ledger.transition(pending.goal_id, GoalStatus.EXPIRED, actor="flow", event="goal.expired")

    racing = GoalLedger(RacingGoalStore(pending.ledger.store, time_out), pending.ledger.audit)  # type: ignore[arg-type]
    error = refusal(
        lambda: desk(pending, ledger=racing).decide(pending.approval_id, pending.link, "approve", None)
    )

    assert (error.status, error.code) == (410, "APPROVAL_EXPIRED")
    assert approval_of(pending).status is ApprovalStatus.EXPIRED
    assert pending.audit_events()[-1] == "approval.too-late"
    goal = pending.goal()
    assert goal.status is GoalStatus.EXPIRED and goal.approvedPlanHash is None
    assert pending.sfn.calls == []


def test_a_decision_that_lost_the_race_shows_the_winning_one(pending: Pending):
    stale = approval_of(pending)
    assert pending.desk.decide(pending.approval_id, pending.link, "approve", None).outcome == "approved"
    # The flow moved on; a second POST read the approval before the first decision was recorded.
    pending.ledger.transition(
        pending.goal_id, GoalStatus.EXECUTING, actor="executor", event="execution.started"
    )
    events = pending.audit_events()

    view = desk(pending, approvals=StaleApprovals(pending.approvals, stale)).decide(
        pending.approval_id, pending.link, "reject", None
    )

    assert view.outcome == "already-decided" and view.approval.status is ApprovalStatus.APPROVED
    assert len(pending.sfn.calls) == 1 and pending.audit_events() == events


def test_after_a_decision_the_page_offers_nothing_to_leave_out(pending: Pending):
    assert [option.step_id for option in pending.desk.open(pending.approval_id, pending.link).options] == [
        "s2"
    ]
    pending.desk.decide(pending.approval_id, pending.link, "reject", None)
    view = pending.desk.open(pending.approval_id, pending.link)
    assert view.options == [] and view.approval.status is ApprovalStatus.REJECTED


# --- the daily limits, re-checked at the decision ----------------------------------------------------------


def test_an_approval_the_days_limits_no_longer_have_room_for_is_refused_and_changes_nothing(pending: Pending):
    counters = InMemoryOrderCounters()
    for number in range(5):
        counters.record_order(f"g-earlier-{number}", "user-1", cny("59.00"), at=NOON - timedelta(hours=1))
    before = pending.snapshot()

    error = refusal(
        lambda: desk(pending, counters=counters).decide(pending.approval_id, pending.link, "approve", None)
    )

    assert (error.status, error.code) == (409, "LIMIT_REACHED")
    assert pending.snapshot() == before and pending.sfn.calls == []
    assert counters.recent_activity("user-1", now=NOON).orders == 5


def test_an_approval_keeps_the_goals_hold_and_a_reduced_one_lowers_it(pending: Pending):
    counters = InMemoryOrderCounters()
    total = pending.plan.summary.total
    counters.reserve(pending.goal_id, "user-1", total, daily_limits(pending.brand), now=NOON)

    view = desk(pending, counters=counters).decide(
        pending.approval_id, pending.link, "approve", None, drop=["s2"]
    )

    assert view.outcome == "approved"
    held = counters.recent_activity("user-1", now=NOON).spend(total.currency)
    assert held == view.plan.summary.total and held.amount_minor < total.amount_minor


def test_a_rejection_gives_the_goals_hold_back(pending: Pending):
    counters = InMemoryOrderCounters()
    counters.reserve(
        pending.goal_id, "user-1", pending.plan.summary.total, daily_limits(pending.brand), now=NOON
    )

    assert (
        desk(pending, counters=counters).decide(pending.approval_id, pending.link, "reject", None).outcome
        == "rejected"
    )

    assert counters.recent_activity("user-1", now=NOON).orders == 0
    assert "limits.released" in [record.event for record in pending.ledger.audit.records(pending.goal_id)]
