"""OrderCounters: what the spend and velocity policies read, counted once per goal over 24 hours,
and reservations that hold the daily limits however callers race."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta, timezone

import pytest

from cartpilot.brands.activity import DailyLimits, LimitReached, OrderCounters, RecentActivity
from cartpilot.kernel.money import Money
from tests.contract.backends import OrderCountersBackend
from tests.contract.racing import race
from tests.fakes import cny, usd

NOW = datetime(2026, 11, 25, 12, 30, tzinfo=UTC)


def test_an_order_is_counted_once_per_goal(counters: OrderCountersBackend):
    assert counters.counters.record_order("g-1", "user-1", cny("59.00"), at=NOW) is True
    assert counters.counters.record_order("g-1", "user-1", cny("59.00"), at=NOW) is False
    assert counters.counters.record_order("g-1", "user-1", cny("99.00"), at=NOW - timedelta(hours=1)) is False
    assert counters.counters.record_order("g-1", "user-2", cny("99.00"), at=NOW) is False
    assert counters.counters.recent_activity("user-1", now=NOW) == RecentActivity(
        orders=1, spend_minor={"CNY": 5900}
    )
    assert counters.counters.recent_activity("user-2", now=NOW) == RecentActivity()


def test_orders_and_spend_are_summed_per_currency(counters: OrderCountersBackend):
    counters.counters.record_order("g-1", "user-1", cny("59.00"), at=NOW - timedelta(hours=2))
    counters.counters.record_order("g-2", "user-1", cny("719.00"), at=NOW - timedelta(minutes=5))
    counters.counters.record_order("g-3", "user-1", usd("12.50"), at=NOW)
    counters.counters.record_order("g-4", "user-1", cny("0.00"), at=NOW)
    recent = counters.counters.recent_activity("user-1", now=NOW)
    assert recent == RecentActivity(orders=4, spend_minor={"CNY": 77800, "USD": 1250})
    assert (recent.spend("CNY"), recent.spend("EUR")) == (
        cny("778.00"),
        Money(amount_minor=0, currency="EUR"),
    )


def test_only_the_last_24_hours_count(counters: OrderCountersBackend):
    counters.counters.record_order("g-25h", "user-1", cny("1000.00"), at=NOW - timedelta(hours=25))
    counters.counters.record_order("g-24h", "user-1", cny("2000.00"), at=NOW - timedelta(hours=24))
    counters.counters.record_order("g-23h", "user-1", cny("59.00"), at=NOW - timedelta(hours=23))
    counters.counters.record_order("g-now", "user-1", cny("1.00"), at=NOW)
    assert counters.counters.recent_activity("user-1", now=NOW) == RecentActivity(
        orders=2, spend_minor={"CNY": 6000}
    )
    later = NOW + timedelta(hours=1)  # the 23-hour-old order has left the window
    assert counters.counters.recent_activity("user-1", now=later) == RecentActivity(
        orders=1, spend_minor={"CNY": 100}
    )


def test_the_window_is_this_utc_hour_and_the_23_before_it(counters: OrderCountersBackend):
    # Hourly buckets: at 12:30 the window opens at 13:00 yesterday, whatever the minutes.
    counters.counters.record_order(
        "g-1240", "user-1", cny("0.01"), at=datetime(2026, 11, 24, 12, 40, tzinfo=UTC)
    )
    counters.counters.record_order(
        "g-1300", "user-1", cny("0.10"), at=datetime(2026, 11, 24, 13, 0, tzinfo=UTC)
    )
    counters.counters.record_order(
        "g-1259", "user-1", cny("1.00"), at=datetime(2026, 11, 25, 12, 59, tzinfo=UTC)
    )
    counters.counters.record_order(
        "g-1300+", "user-1", cny("10.00"), at=datetime(2026, 11, 25, 13, 0, tzinfo=UTC)
    )
    assert counters.counters.recent_activity("user-1", now=NOW) == RecentActivity(
        orders=2, spend_minor={"CNY": 110}
    )


def test_an_order_counts_in_its_utc_hour_whatever_its_timezone(counters: OrderCountersBackend):
    beijing = timezone(timedelta(hours=8))
    counters.counters.record_order("g-1", "user-1", cny("59.00"), at=NOW.astimezone(beijing))
    assert counters.counters.recent_activity("user-1", now=NOW) == RecentActivity(
        orders=1, spend_minor={"CNY": 5900}
    )
    assert counters.counters.recent_activity("user-1", now=NOW.astimezone(beijing)).orders == 1


def test_each_user_has_their_own_counters(counters: OrderCountersBackend):
    counters.counters.record_order("g-1", "user-1", cny("59.00"), at=NOW)
    counters.counters.record_order("g-2", "user-2", cny("719.00"), at=NOW)
    counters.counters.record_order("g-3", "user-10", usd("1.00"), at=NOW)
    assert counters.counters.recent_activity("user-1", now=NOW) == RecentActivity(
        orders=1, spend_minor={"CNY": 5900}
    )
    assert counters.counters.recent_activity("user-2", now=NOW) == RecentActivity(
        orders=1, spend_minor={"CNY": 71900}
    )
    assert counters.counters.recent_activity("user-3", now=NOW) == RecentActivity()


def test_racing_receipts_of_one_goal_count_it_once(counters: OrderCountersBackend):
    calls = [
        functools.partial(counters.another().record_order, "g-race", "user-1", cny("59.00"), at=NOW)
        for _ in range(6)
    ]
    assert sorted(race(calls)) == [False] * 5 + [True]
    assert counters.counters.recent_activity("user-1", now=NOW) == RecentActivity(
        orders=1, spend_minor={"CNY": 5900}
    )


def test_racing_receipts_of_different_goals_are_all_counted(counters: OrderCountersBackend):
    calls = [
        functools.partial(counters.another().record_order, f"g-{n}", "user-1", cny(f"{n}.00"), at=NOW)
        for n in range(1, 7)
    ]
    assert race(calls) == [True] * 6
    assert counters.counters.recent_activity("user-1", now=NOW) == RecentActivity(
        orders=6, spend_minor={"CNY": 2100}
    )


# ---- reservations against the daily limits -----------------------------------------------

LIMITS = DailyLimits(max_orders=5, max_spend=cny("5000.00"))


def _reserve_or_refused(counters: OrderCounters, goal_id: str, amount: Money) -> str:
    try:
        return "reserved" if counters.reserve(goal_id, "user-1", amount, LIMITS, now=NOW) else "kept"
    except LimitReached:
        return "refused"


def test_a_reservation_counts_at_once_and_a_retry_does_not_count_it_again(counters: OrderCountersBackend):
    assert counters.counters.reserve("g-1", "user-1", cny("354.00"), LIMITS, now=NOW) is True
    assert counters.counters.reserve("g-1", "user-1", cny("354.00"), LIMITS, now=NOW) is False
    assert counters.counters.recent_activity("user-1", now=NOW) == RecentActivity(
        orders=1, spend_minor={"CNY": 35400}
    )
    # A retried validation judges its plan without its own hold.
    assert counters.counters.recent_activity("user-1", now=NOW, excluding="g-1") == RecentActivity()


def test_a_reservation_past_a_limit_is_refused_and_changes_nothing(counters: OrderCountersBackend):
    for n in range(5):
        counters.counters.reserve(f"g-{n}", "user-1", cny("1.00"), LIMITS, now=NOW - timedelta(hours=5 * n))
    with pytest.raises(LimitReached):
        counters.counters.reserve("g-sixth", "user-1", cny("1.00"), LIMITS, now=NOW)
    counters.counters.reserve("g-big", "user-2", cny("4000.00"), LIMITS, now=NOW - timedelta(hours=3))
    with pytest.raises(LimitReached):
        counters.counters.reserve("g-over", "user-2", cny("1000.01"), LIMITS, now=NOW)
    assert counters.counters.reserve("g-exact", "user-2", cny("1000.00"), LIMITS, now=NOW) is True
    assert counters.counters.recent_activity("user-1", now=NOW).orders == 5
    assert counters.counters.recent_activity("user-2", now=NOW) == RecentActivity(
        orders=2, spend_minor={"CNY": 500000}
    )
    # The window moves on: the hold of 20 hours ago no longer counts four hours later.
    later = NOW + timedelta(hours=4)
    assert counters.counters.reserve("g-later", "user-1", cny("1.00"), LIMITS, now=later) is True


def test_a_release_gives_the_hold_back_once_and_never_what_was_not_held(counters: OrderCountersBackend):
    counters.counters.reserve("g-1", "user-1", cny("4000.00"), LIMITS, now=NOW)
    assert counters.counters.release("g-never", at=NOW) is False
    assert counters.counters.release("g-1", at=NOW) is True
    assert counters.counters.release("g-1", at=NOW) is False
    assert counters.counters.recent_activity("user-1", now=NOW) == RecentActivity()
    assert counters.counters.reserve("g-2", "user-1", cny("5000.00"), LIMITS, now=NOW) is True


def test_an_approved_reduction_lowers_the_hold_and_a_raise_stays_within_the_limits(
    counters: OrderCountersBackend,
):
    counters.counters.reserve("g-1", "user-1", cny("3000.00"), LIMITS, now=NOW - timedelta(hours=2))
    counters.counters.reserve("g-2", "user-1", cny("1500.00"), LIMITS, now=NOW)
    assert counters.counters.reserve("g-1", "user-1", cny("2900.00"), LIMITS, now=NOW) is True
    assert counters.counters.recent_activity("user-1", now=NOW).spend("CNY") == cny("4400.00")
    with pytest.raises(LimitReached):
        counters.counters.reserve("g-1", "user-1", cny("3500.01"), LIMITS, now=NOW)
    assert counters.counters.reserve("g-1", "user-1", cny("3500.00"), LIMITS, now=NOW) is True
    assert counters.counters.recent_activity("user-1", now=NOW) == RecentActivity(
        orders=2, spend_minor={"CNY": 500000}
    )


def test_a_completed_order_confirms_its_hold_at_the_final_total(counters: OrderCountersBackend):
    counters.counters.reserve("g-1", "user-1", cny("354.00"), LIMITS, now=NOW)
    assert (
        counters.counters.record_order("g-1", "user-1", cny("360.00"), at=NOW + timedelta(minutes=5)) is True
    )
    assert (
        counters.counters.record_order("g-1", "user-1", cny("360.00"), at=NOW + timedelta(minutes=6)) is False
    )
    assert counters.counters.reserve("g-1", "user-1", cny("1.00"), LIMITS, now=NOW) is False  # final
    assert counters.counters.recent_activity("user-1", now=NOW) == RecentActivity(
        orders=1, spend_minor={"CNY": 36000}
    )
    # An undone order gives its count back, once.
    assert counters.counters.release("g-1", at=NOW) is True
    assert counters.counters.recent_activity("user-1", now=NOW) == RecentActivity()


def test_sixteen_racing_reservations_never_pass_the_order_limit(counters: OrderCountersBackend):
    calls = [
        functools.partial(_reserve_or_refused, counters.another(), f"g-{n}", cny("354.00")) for n in range(16)
    ]
    results = race(calls)
    assert sorted(results) == ["refused"] * 11 + ["reserved"] * 5
    assert counters.counters.recent_activity("user-1", now=NOW) == RecentActivity(
        orders=5, spend_minor={"CNY": 177000}
    )


def test_racing_reservations_never_pass_the_spend_limit(counters: OrderCountersBackend):
    calls = [
        functools.partial(_reserve_or_refused, counters.another(), f"g-{n}", cny("1400.00")) for n in range(6)
    ]
    assert sorted(race(calls)) == ["refused"] * 3 + ["reserved"] * 3
    assert counters.counters.recent_activity("user-1", now=NOW).spend("CNY") == cny("4200.00")


def test_racing_retries_of_one_goal_reserve_it_once(counters: OrderCountersBackend):
    calls = [
        functools.partial(_reserve_or_refused, counters.another(), "g-1", cny("354.00")) for _ in range(6)
    ]
    assert sorted(race(calls)) == ["kept"] * 5 + ["reserved"]
    assert counters.counters.recent_activity("user-1", now=NOW).orders == 1


def test_racing_releases_give_back_once(counters: OrderCountersBackend):
    counters.counters.reserve("g-1", "user-1", cny("354.00"), LIMITS, now=NOW)
    counters.counters.reserve("g-2", "user-1", cny("100.00"), LIMITS, now=NOW)
    calls = [functools.partial(counters.another().release, "g-1", at=NOW) for _ in range(6)]
    assert sorted(race(calls)) == [False] * 5 + [True]
    assert counters.counters.recent_activity("user-1", now=NOW) == RecentActivity(
        orders=1, spend_minor={"CNY": 10000}
    )
