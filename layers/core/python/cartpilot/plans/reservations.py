"""A goal's hold on its shopper's daily limits: reserved at validation, given back if no order stands.

Validation reserves the plan's total (in the brand's currency, as the limits are) and one order;
an approver's reduced plan lowers the hold; the receipt confirms it at what the merchant charged.
A goal that ends without an order (denied, rejected, expired, compensated) or whose order is undone
releases it. Each change is recorded in the goal's audit, so the trail says what the goal counted.
"""

from __future__ import annotations

from datetime import datetime

from cartpilot.brands.activity import DailyLimits, OrderCounters
from cartpilot.brands.config import BrandConfig
from cartpilot.brands.rates import in_brand_currency
from cartpilot.goals.ledger import GoalLedger
from cartpilot.kernel.money import Money


def daily_limits(brand: BrandConfig) -> DailyLimits:
    return DailyLimits(max_orders=brand.limits.maxOrdersPerDay, max_spend=brand.limits.perDay)


def reserve_for_goal(
    goal_id: str,
    user_id: str,
    total: Money,
    *,
    brand: BrandConfig,
    counters: OrderCounters,
    ledger: GoalLedger,
    actor: str,
    now: datetime,
    plan_hash: str | None = None,
    move_head: bool = True,
) -> None:
    """Holds ``total`` for the goal within the brand's daily limits; raises ``LimitReached`` if it cannot.

    A plan priced in a currency the brand has no rate for never gets here: the policies deny it.
    ``move_head``: as for ``GoalLedger.note``.
    """
    amount = in_brand_currency(total, brand)
    if counters.reserve(goal_id, user_id, amount, daily_limits(brand), now=now):
        ledger.note(
            goal_id,
            actor=actor,
            event="limits.reserved",
            plan_hash=plan_hash,
            detail={"amount": amount.model_dump(mode="json")},
            move_head=move_head,
        )


def release_for_goal(
    goal_id: str, *, counters: OrderCounters, ledger: GoalLedger, actor: str, why: str, at: datetime
) -> bool:
    """Gives the goal's hold back (once: a retried release changes nothing) and says why in the audit."""
    released = counters.release(goal_id, at=at)
    if released:
        ledger.note(goal_id, actor=actor, event="limits.released", detail={"why": why})
    return released


def confirm_for_goal(
    goal_id: str, user_id: str, total: Money, *, brand: BrandConfig, counters: OrderCounters, at: datetime
) -> bool:
    """The order completed: its hold becomes the order, at the total the merchant charged."""
    return counters.record_order(goal_id, user_id, in_brand_currency(total, brand), at=at)


class LimitKeeper:
    """Holds goals to their brand's daily limits from a step that learns a new total (the payment)."""

    def __init__(self, *, brand: BrandConfig, counters: OrderCounters, ledger: GoalLedger) -> None:
        self._brand = brand
        self._counters = counters
        self._ledger = ledger

    def hold(self, goal_id: str, user_id: str, total: Money, *, actor: str, now: datetime) -> None:
        """Raises the goal's hold to ``total``; ``LimitReached`` when the limits cannot take it."""
        reserve_for_goal(
            goal_id, user_id, total, brand=self._brand, counters=self._counters, ledger=self._ledger,
            actor=actor, now=now,
        )  # fmt: skip
