"""OrderCounters: what the spend and velocity policies read, counted once per goal over 24 hours."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta, timezone

from cartpilot.brands.activity import RecentActivity
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
