"""bench/cost.py with nested executions: a goal's Express step loop is billed per request and
GB-second, its Standard executions per transition, and only Standard executions count as open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bench.cost import (
    Measured,
    capacity,
    express_run,
    goal_execution_names,
    largest_payload_bytes,
    summarise,
    task_retries,
)
from bench.cost_units import (
    PRICES_FILE,
    ExpressRun,
    GoalUsage,
    PriceTable,
    express_billed_memory_mb,
    express_cost,
    express_gb_seconds,
    load_prices,
    price_goal,
)
from tests.unit.cost_prices import PRICES, TABLE

MB = 1024 * 1024


# --- Express billing ------------------------------------------------------------------------------


def test_express_memory_is_billed_in_64_mb_chunks_over_a_50_mb_base():
    assert express_billed_memory_mb(definition_bytes=20_000, data_bytes=5_000) == 64
    # 50 MB + 14 MB of data crosses into a second chunk.
    assert express_billed_memory_mb(definition_bytes=0, data_bytes=14 * MB + 1) == 128
    # Each Map or Parallel step holds its own copy of the data.
    assert express_billed_memory_mb(definition_bytes=0, data_bytes=1 * MB, map_or_parallel_steps=20) == 128


@pytest.mark.parametrize(("duration_ms", "billed_ms"), [(1, 100), (100, 100), (101, 200), (250, 300)])
def test_express_duration_is_rounded_up_to_100_ms(duration_ms: float, billed_ms: int):
    assert express_gb_seconds(ExpressRun(duration_ms, 64)) == pytest.approx(64 / 1024 * billed_ms / 1000)


def test_a_goal_pays_standard_transitions_plus_express_requests_and_duration():
    usage = GoalUsage(transitions=9, retries=1, express_runs=[ExpressRun(250.0, 64, transitions=12)])

    usd = price_goal(usage, TABLE)

    express = 0.000001 + 64 / 1024 * 0.3 * 0.00001667
    assert usd["stepfunctions"] == pytest.approx(10 * 0.000025 + express)
    assert usage.express_requests == 1 and usage.express_transitions == 12
    # The Express transitions are not billed as transitions: twelve of them would cost 0.0003.
    assert express < 12 * 0.000025


def test_a_goal_without_children_costs_what_it_did():
    table_without_express = PriceTable(
        "2026-11-30",
        "us-east-1",
        {k: v for k, v in PRICES.items() if not k.startswith("stepfunctions_express")},
        quotas={},
    )
    usage = GoalUsage(transitions=20, retries=2)
    assert price_goal(usage, table_without_express)["stepfunctions"] == pytest.approx(22 * 0.000025)
    assert express_cost([], table_without_express) == 0.0


def test_the_shipped_price_table_prices_express_workflows_and_their_start_quota():
    table = load_prices(PRICES_FILE)
    assert table["stepfunctions_express_per_request"] == pytest.approx(1.0 / 1_000_000)
    assert table["stepfunctions_express_per_gb_second"] == pytest.approx(0.06 / 3600, rel=1e-3)
    assert table.quotas["stepfunctions_express_start_execution_refill_per_second"] > 0
    assert table.quotas["stepfunctions_express_start_execution_bucket"] > 0


# --- a goal's executions --------------------------------------------------------------------------


def test_a_goals_executions_are_its_own_and_those_named_after_it():
    names = ["g-1", "g-1-steps-5f0c", "g-1-undo", "g-12", "g-12-steps-aa", "x-g-1"]
    assert goal_execution_names("g-1", names) == ["g-1", "g-1-steps-5f0c", "g-1-undo"]


START = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _event(n: int, kind: str, ms: int, **details: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"id": n, "type": kind, "timestamp": START + timedelta(milliseconds=ms)}
    if details:
        event[
            "stateEnteredEventDetails" if kind.endswith("StateEntered") else "taskScheduledEventDetails"
        ] = details
    return event


CHILD_HISTORY = [
    _event(1, "ExecutionStarted", 0),
    _event(2, "ChoiceStateEntered", 3, name="RouteNextStep", input='{"goalId": "g-1"}'),
    _event(3, "TaskStateEntered", 5, name="RunCheckoutStep", input='{"goalId": "g-1", "plan": "' + "x" * 900 + '"}'),
    _event(4, "TaskScheduled", 6),
    _event(5, "TaskScheduled", 90),  # a retry
    _event(6, "SucceedStateEntered", 180, name="Done"),
    _event(7, "ExecutionSucceeded", 181),
]  # fmt: skip


def test_an_express_run_is_measured_from_its_history():
    run = express_run(CHILD_HISTORY, definition_bytes=30_000)
    assert run.duration_ms == pytest.approx(181)
    assert run.memory_mb == 64  # a small state: the smallest chunk
    assert run.transitions == 3
    assert express_gb_seconds(run) == pytest.approx(64 / 1024 * 0.2)
    assert largest_payload_bytes(CHILD_HISTORY) > 900


def test_retries_are_task_attempts_beyond_the_first():
    assert task_retries(CHILD_HISTORY) == 1


# --- summaries and capacity ----------------------------------------------------------------------


def _measured(usage: GoalUsage, *, open_seconds: float, window: bool) -> Measured:
    return Measured("auto", "g-1", "COMPLETED", usage, price_goal(usage, TABLE), open_seconds, window)


def _auto(*, window: bool, express: int) -> dict[str, Any]:
    usage = GoalUsage(transitions=8, express_runs=[ExpressRun(181.0, 64, 14)] * express)
    return summarise([_measured(usage, open_seconds=1.5, window=window)])


def test_the_summary_keeps_standard_transitions_and_adds_express_figures():
    auto = _auto(window=False, express=1)
    assert auto["transitions"] == 8
    assert auto["express_requests"] == 1
    assert auto["express_transitions"] == 14
    assert auto["standard_open_seconds"] == 1.5
    assert auto["undo_window_open"] is False
    assert {"transitions", "invocations", "ddb_read_units", "ddb_write_units", "usd_per_1000_goals"} <= set(
        auto
    )


def _bounds(auto: dict[str, Any]) -> dict[str, Any]:
    quotas = load_prices(PRICES_FILE).quotas
    table = PriceTable("2026-11-30", "us-east-1", PRICES, quotas)
    return {bound.name: bound for bound, _scope in capacity(auto, None, None, table)}


def test_without_an_undo_window_open_executions_follow_the_measured_open_time():
    bounds = _bounds(_auto(window=False, express=1))
    open_bound = bounds["Step Functions open executions"]
    assert open_bound.goals_per_second == pytest.approx(1_000_000 / 1.5)
    assert "measured" in open_bound.per_goal
    express = bounds["Step Functions StartExecution (Express)"]
    assert express.goals_per_second == pytest.approx(6000)
    # The transition quota counts the Standard transitions only.
    assert bounds["Step Functions state transitions"].goals_per_second == pytest.approx(5000 / 8)


def test_with_an_undo_window_a_goal_holds_its_execution_for_the_window():
    bounds = _bounds(_auto(window=True, express=0))
    assert bounds["Step Functions open executions"].goals_per_second < 10
    assert "Step Functions StartExecution (Express)" not in bounds
