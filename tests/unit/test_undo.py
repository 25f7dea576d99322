"""The undo window on the fakes: a completed order may be taken back until ``undoUntil``, once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cartpilot.goals import undo as undo_module
from cartpilot.goals.model import GoalStatus
from cartpilot.goals.undo import UndoRefused, close_undo_window, open_undo_window, request_undo
from cartpilot.goals.views import goal_view
from cartpilot.kernel.clock import utc_now
from tests.fakes import FakeWorkflow
from tests.unit.stages import OrderFlow

UNDO_TOKEN = "undo-task-token-1"
SHOPPER = "user:user-1"


class FlakyWorkflow(FakeWorkflow):
    """Step Functions answering ``SendTaskSuccess`` with an error (throttled, a network blip) first."""

    def __init__(self, *failures: Exception) -> None:
        super().__init__()
        self.failures = list(failures)

    def succeed(self, task_token: str, output: dict[str, Any]) -> None:
        if self.failures:
            raise self.failures.pop(0)
        super().succeed(task_token, output)


@pytest.fixture
def completed(flow: OrderFlow) -> OrderFlow:
    """A completed order whose undo window is open and whose flow waits on ``UNDO_TOKEN``."""
    flow.completed()
    flow.workflow.wait_for(UNDO_TOKEN)
    open_undo_window(flow.goal_id, UNDO_TOKEN, ledger=flow.ledger)
    return flow


def ask(flow: OrderFlow, actor: str = SHOPPER) -> dict[str, Any]:
    answer = request_undo(flow.goal_id, ledger=flow.ledger, workflow=flow.workflow, actor=actor)
    return answer.model_dump(mode="json")  # what the API answers


def refused(flow: OrderFlow) -> UndoRefused:
    with pytest.raises(UndoRefused) as raised:
        ask(flow)
    return raised.value


def set_undo_until(flow: OrderFlow, when: datetime) -> None:
    flow.ledger.store.overwrite(flow.goal_id, undoUntil=when.isoformat(timespec="seconds"))


RESUMED = ("success", {"taskToken": UNDO_TOKEN, "output": {"undo": "requested"}})


# --- opening and closing the window ---------------------------------------------------------------------


def test_opening_the_window_parks_the_token_server_side_only(flow: OrderFlow):
    flow.completed()
    undo_until = flow.goal().undoUntil
    assert undo_until is not None

    assert open_undo_window(flow.goal_id, UNDO_TOKEN, ledger=flow.ledger).model_dump(mode="json") == {
        "undoUntil": undo_until
    }

    assert flow.ledger.store.undo_token(flow.goal_id) == UNDO_TOKEN
    assert UNDO_TOKEN not in goal_view(flow.goal()).model_dump_json()
    record = flow.records()[-1]
    assert (record.event, record.actor, record.detail) == (
        "undo.window-opened",
        "notify",
        {"undoUntil": undo_until},
    )
    assert UNDO_TOKEN not in str([r.model_dump() for r in flow.records()])


def test_closing_the_window_forgets_the_token_and_makes_the_order_final(completed: OrderFlow):
    assert close_undo_window(completed.goal_id, ledger=completed.ledger).model_dump(mode="json") == {
        "status": "COMPLETED",
        "final": True,
    }
    assert completed.ledger.store.undo_token(completed.goal_id) is None
    assert completed.goal().status is GoalStatus.COMPLETED
    record = completed.records()[-1]
    assert (record.event, record.actor, record.status) == ("undo.window-closed", "flow", "COMPLETED")


# --- inside the window ------------------------------------------------------------------------------------


def test_inside_the_window_the_waiting_flow_is_resumed_once(completed: OrderFlow):
    answer = ask(completed)

    assert answer == {"goalId": completed.goal_id, "status": "COMPLETED", "undo": "requested"}
    assert completed.workflow.calls == [RESUMED]
    record = completed.records()[-1]
    assert (record.event, record.actor, record.status) == ("undo.requested", SHOPPER, "COMPLETED")
    # Undoing is the flow's job (compensation); the request itself changes no status.
    assert completed.goal().status is GoalStatus.COMPLETED


def test_a_second_request_changes_nothing(completed: OrderFlow):
    first = ask(completed)
    events = completed.events()

    assert ask(completed) == first
    assert ask(completed, actor="user:someone-else") == first
    assert completed.workflow.calls == [RESUMED]
    assert completed.events() == events


def test_once_undone_a_request_says_so_without_resuming_anything(completed: OrderFlow):
    completed.ledger.transition(
        completed.goal_id, GoalStatus.UNDONE, actor="compensator", event="order.undone"
    )
    assert ask(completed) == {"goalId": completed.goal_id, "status": "UNDONE", "undo": "done"}
    assert completed.workflow.calls == []


def test_one_second_before_the_end_the_window_is_still_open(completed: OrderFlow, monkeypatch):
    end = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    set_undo_until(completed, end)
    monkeypatch.setattr(undo_module, "utc_now", lambda: end - timedelta(seconds=1))
    assert ask(completed)["undo"] == "requested"


# --- outside the window, or not yet ------------------------------------------------------------------------


def test_at_the_end_of_the_window_the_order_is_final(completed: OrderFlow, monkeypatch):
    end = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    set_undo_until(completed, end)
    monkeypatch.setattr(undo_module, "utc_now", lambda: end)
    error = refused(completed)
    assert (error.status, error.code) == (409, "UNDO_WINDOW_CLOSED")


def test_after_the_window_the_undo_is_refused_and_nothing_is_resumed(completed: OrderFlow):
    set_undo_until(completed, utc_now() - timedelta(seconds=1))
    events = completed.events()

    error = refused(completed)

    assert (error.status, error.code) == (409, "UNDO_WINDOW_CLOSED")
    assert "the order is final" in error.message
    assert completed.workflow.calls == [] and completed.events() == events


# --- the undo flow: an order flow that ended at its receipt -------------------------------------------------


class FlakyUndoStart(FakeWorkflow):
    """Step Functions refusing ``StartExecution`` (throttled, a network blip) first."""

    def __init__(self, *failures: Exception) -> None:
        super().__init__()
        self.failures = list(failures)

    def start_undo(self, name: str, flow_input: dict[str, Any]) -> str:
        if self.failures:
            raise self.failures.pop(0)
        return super().start_undo(name, flow_input)


def test_inside_the_window_the_undo_flow_is_started_once_by_name(flow: OrderFlow):
    flow.completed()  # the order flow ended with the receipt: nothing waits on a token

    answer = ask(flow)

    assert answer == {"goalId": flow.goal_id, "status": "COMPLETED", "undo": "requested"}
    assert flow.workflow.undo_started == {
        f"{flow.goal_id}-undo": {"goalId": flow.goal_id, "planId": flow.goal().plan.planId}
    }
    assert flow.workflow.calls == []
    record = flow.records()[-1]
    assert (record.event, record.actor, record.status) == ("undo.requested", SHOPPER, "COMPLETED")
    assert flow.goal().status is GoalStatus.COMPLETED
    # A second request, by anyone, starts nothing more and records nothing more.
    events = flow.events()
    assert ask(flow, actor="user:someone-else") == answer
    assert len(flow.workflow.undo_started) == 1 and flow.events() == events


def test_after_the_window_no_undo_flow_starts(flow: OrderFlow):
    flow.completed()
    set_undo_until(flow, utc_now() - timedelta(seconds=1))
    events = flow.events()

    assert refused(flow).code == "UNDO_WINDOW_CLOSED"
    assert flow.workflow.undo_started == {} and flow.events() == events


def test_a_failed_start_releases_the_claim_so_a_later_request_can_retry(flow: OrderFlow):
    flow.completed()
    flow.workflow = FlakyUndoStart(RuntimeError("ThrottlingException"))

    with pytest.raises(RuntimeError, match="ThrottlingException"):
        ask(flow)
    assert flow.workflow.undo_started == {} and "undo.requested" not in flow.events()

    assert ask(flow)["undo"] == "requested"
    assert list(flow.workflow.undo_started) == [f"{flow.goal_id}-undo"]
    assert flow.events().count("undo.requested") == 1


def test_a_token_the_workflow_no_longer_waits_for_means_the_window_closed(completed: OrderFlow):
    completed.workflow.stop_waiting(UNDO_TOKEN)  # the flow's wait timed out a moment ago
    events = completed.events()

    error = refused(completed)

    assert (error.status, error.code) == (409, "UNDO_WINDOW_CLOSED")
    assert completed.workflow.calls == []
    assert completed.events() == events  # no undo.requested on record


def test_after_a_gone_token_a_repeated_request_is_still_refused(completed: OrderFlow):
    completed.workflow.stop_waiting(UNDO_TOKEN)
    assert refused(completed).code == "UNDO_WINDOW_CLOSED"

    second = refused(completed)

    assert (second.status, second.code) == (409, "UNDO_WINDOW_CLOSED")


def test_a_workflow_error_releases_the_claim_so_a_later_request_can_retry(completed: OrderFlow):
    completed.workflow = FlakyWorkflow(RuntimeError("ThrottlingException"))
    completed.workflow.wait_for(UNDO_TOKEN)

    with pytest.raises(RuntimeError, match="ThrottlingException"):
        ask(completed)
    assert completed.workflow.calls == []
    assert "undo.requested" not in completed.events()

    assert ask(completed)["undo"] == "requested"
    assert completed.workflow.calls == [RESUMED]
    assert completed.events().count("undo.requested") == 1


def test_an_unknown_goal_is_not_found(completed: OrderFlow):
    with pytest.raises(UndoRefused) as raised:
        request_undo("g-nobody", ledger=completed.ledger, workflow=completed.workflow, actor=SHOPPER)
    assert (raised.value.status, raised.value.code) == (404, "GOAL_NOT_FOUND")


@pytest.mark.parametrize("steps_run", [0, 1, 4], ids=["awaiting-approval", "executing", "paid-not-receipted"])
def test_a_goal_that_is_not_completed_cannot_be_undone(flow: OrderFlow, steps_run: int):
    if steps_run:
        flow.run_steps(*[f"s{n}" for n in range(1, steps_run + 1)])
    flow.workflow.wait_for(UNDO_TOKEN)
    flow.ledger.store.update(flow.goal_id, updated_at="2026-11-25T12:00:00Z", undoToken=UNDO_TOKEN)
    status = flow.goal().status

    error = refused(flow)

    assert (error.status, error.code) == (409, "NOT_UNDOABLE")
    assert error.message == f"a goal that is {status.value} cannot be undone"
    assert flow.workflow.calls == []


def test_a_compensated_goal_cannot_be_undone(flow: OrderFlow):
    flow.ledger.transition(
        flow.goal_id, GoalStatus.COMPENSATED, actor="compensator", event="compensation.completed"
    )
    error = refused(flow)
    assert (error.status, error.code) == (409, "NOT_UNDOABLE")
