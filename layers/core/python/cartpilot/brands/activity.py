"""How much a user ordered lately, and what they hold against the daily limits.

The spend and velocity policies read the last 24 hours of orders. An order counts from the moment
its plan is validated: validation *reserves* the order and its total against the brand's daily
limits, atomically, so goals racing each other (or approvals left pending and approved together)
can never exceed them. The reservation is released when the goal ends without an order (denied,
rejected, expired, compensated) or the order is undone, and confirmed at its final total when the
order completes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from cartpilot.kernel.money import Money

WINDOW_HOURS = 24


@dataclass(frozen=True)
class RecentActivity:
    """Orders a user placed or holds in the last 24 hours, and what they cost per currency."""

    orders: int = 0
    spend_minor: dict[str, int] = field(default_factory=dict)

    def spend(self, currency: str) -> Money:
        return Money(amount_minor=self.spend_minor.get(currency, 0), currency=currency)


@dataclass(frozen=True)
class DailyLimits:
    """What one user may order in ``WINDOW_HOURS``: a number of orders and a spend, in one currency."""

    max_orders: int
    max_spend: Money


class LimitReached(Exception):
    """The reservation would take the user past a daily limit; nothing was reserved."""


class OrderCounters(Protocol):
    def reserve(
        self, goal_id: str, user_id: str, amount: Money, limits: DailyLimits, *, now: datetime
    ) -> bool:
        """Holds one order of ``amount`` (in the limits' currency) for the goal, atomically within
        ``limits``. A goal holds at most one reservation: reserving again replaces its amount (lowered
        freely, raised only within the limits). False when it already held exactly this (a retry).
        Raises ``LimitReached`` when the window cannot take it."""
        ...

    def release(self, goal_id: str, *, at: datetime) -> bool:
        """Gives the goal's reservation back; False when it holds none (never held, or released)."""
        ...

    def record_order(self, goal_id: str, user_id: str, total: Money, *, at: datetime) -> bool:
        """Confirms a completed order at its final total: its reservation becomes the order, and an
        order that reserved nothing is counted now. False when it was already confirmed."""
        ...

    def recent_activity(self, user_id: str, *, now: datetime, excluding: str | None = None) -> RecentActivity:
        """Orders and spend of the last ``WINDOW_HOURS`` hours, read consistently; ``excluding`` a
        goal leaves out what that goal itself holds (a retried validation judges the plan alone)."""
        ...
