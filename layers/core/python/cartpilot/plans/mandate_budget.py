"""What a schedule has spent under its mandate: held at validation, given back when no order stands.

An occurrence within its mandate holds its total against the mandate's ``maxTotal`` when it is
validated, atomically (two occurrences cannot both take the last of the budget), as a goal holds its
total against the daily limits (``plans.reservations``). The hold is given back wherever the daily
hold is (denied, rejected, expired, compensated, undone): :class:`MandateReleasingCounters` wraps the
order counters so that every existing release path releases both, with no path able to forget one.
Amounts are in the brand's currency, as the limits are.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from cartpilot.brands.activity import DailyLimits, OrderCounters, RecentActivity
from cartpilot.kernel.money import Money


class MandateBudgetExhausted(Exception):
    """The hold would take the schedule past its mandate's ``maxTotal``; nothing was held."""


class MandateBudget(Protocol):
    def reserve(self, schedule_id: str, goal_id: str, amount: Money, max_total: Money) -> bool:
        """Holds ``amount`` for the goal under the schedule's mandate, atomically within ``max_total``.
        A goal holds at most one amount: reserving again replaces it. False when it already held
        exactly this (a retry). Raises ``MandateBudgetExhausted`` when the budget cannot take it."""
        ...

    def release(self, goal_id: str) -> bool:
        """Gives the goal's hold back; False when it holds none (never held, or released already)."""
        ...

    def spent(self, schedule_id: str, currency: str) -> Money:
        """What the schedule's occurrences hold or spent under the mandate, read consistently."""
        ...


class MandateReleasingCounters:
    """Order counters whose release also gives back the goal's hold on its schedule's mandate."""

    def __init__(self, counters: OrderCounters, budget: MandateBudget) -> None:
        self._counters = counters
        self.mandate_budget = budget

    def reserve(
        self, goal_id: str, user_id: str, amount: Money, limits: DailyLimits, *, now: datetime
    ) -> bool:
        return self._counters.reserve(goal_id, user_id, amount, limits, now=now)

    def release(self, goal_id: str, *, at: datetime) -> bool:
        released = self._counters.release(goal_id, at=at)
        return self.mandate_budget.release(goal_id) or released

    def record_order(self, goal_id: str, user_id: str, total: Money, *, at: datetime) -> bool:
        return self._counters.record_order(goal_id, user_id, total, at=at)

    def recent_activity(self, user_id: str, *, now: datetime, excluding: str | None = None) -> RecentActivity:
        return self._counters.recent_activity(user_id, now=now, excluding=excluding)
