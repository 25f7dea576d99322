"""How much a user ordered lately: what the spend and velocity policies read.

The last 24 hours of completed orders, counted once per goal. An order that is later undone
(cancelled or returned inside the undo window) stays counted: the limits measure what the
assistant placed, and a buy-undo-buy loop must not reset them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from cartpilot.kernel.money import Money

WINDOW_HOURS = 24


@dataclass(frozen=True)
class RecentActivity:
    """Orders a user completed in the last 24 hours, and what they cost per currency."""

    orders: int = 0
    spend_minor: dict[str, int] = field(default_factory=dict)

    def spend(self, currency: str) -> Money:
        return Money(amount_minor=self.spend_minor.get(currency, 0), currency=currency)


class OrderCounters(Protocol):
    def record_order(self, goal_id: str, user_id: str, total: Money, *, at: datetime) -> bool:
        """Counts a completed order; False when this goal was already counted (a retried receipt)."""
        ...

    def recent_activity(self, user_id: str, *, now: datetime) -> RecentActivity:
        """Orders and spend of the last ``WINDOW_HOURS`` hours, read consistently."""
        ...
