"""Mandate budgets on the counters table (moto): held within maxTotal, once, and given back once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cartpilot.kernel.money import Money
from cartpilot.plans.mandate_budget import MandateBudgetExhausted
from cartpilot.wiring import counters as counters_from_env
from cartpilot.wiring.mandates import mandate_budget

NOW = datetime(2026, 11, 25, 12, 30, tzinfo=UTC)
BUDGET = Money(amount_minor=10000, currency="CNY")


def cny(minor: int) -> Money:
    return Money(amount_minor=minor, currency="CNY")


def test_occurrences_cannot_take_more_than_the_budget(aws_tables):
    budget = mandate_budget()
    assert budget.reserve("s-1", "g-1", cny(6000), BUDGET) is True
    assert budget.reserve("s-1", "g-1", cny(6000), BUDGET) is False  # a retried validation
    with pytest.raises(MandateBudgetExhausted):
        budget.reserve("s-1", "g-2", cny(4001), BUDGET)
    assert budget.spent("s-1", "CNY") == cny(6000)
    assert budget.reserve("s-1", "g-2", cny(4000), BUDGET) is True
    assert budget.spent("s-1", "CNY") == BUDGET
    # Another schedule's budget is its own.
    assert budget.reserve("s-2", "g-3", cny(9000), BUDGET) is True


def test_a_hold_is_given_back_once_and_a_lowered_hold_makes_room(aws_tables):
    budget = mandate_budget()
    budget.reserve("s-1", "g-1", cny(8000), BUDGET)
    assert budget.reserve("s-1", "g-1", cny(5000), BUDGET) is True
    assert budget.spent("s-1", "CNY") == cny(5000)
    assert budget.release("g-1") is True
    assert budget.release("g-1") is False
    assert budget.spent("s-1", "CNY") == cny(0)
    assert budget.release("g-never") is False


def test_releasing_a_goals_daily_hold_releases_its_mandate_hold(aws_tables):
    """Every release path of the order flow goes through the counters: none can forget the mandate."""
    budget = mandate_budget()
    budget.reserve("s-1", "g-1", cny(7000), BUDGET)
    assert counters_from_env().release("g-1", at=NOW) is True
    assert budget.spent("s-1", "CNY") == cny(0)
