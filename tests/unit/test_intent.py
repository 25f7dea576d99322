from datetime import date

import pytest

from cartpilot.kernel.money import Money
from cartpilot.planning.intent import GoalNotUnderstood, parse_goal
from tests.fakes import TODAY


def parse(goal: str):
    return parse_goal(goal, today=TODAY, currency="CNY")


def test_seed_goal_in_english():
    intent = parse("Get my friend running shoes, size 42, gift-wrap them and ship to Beijing before Feb 5")
    assert (intent.category, intent.size, intent.giftWrap) == ("running-shoes", "42", True)
    assert (intent.relation, intent.city) == ("friend", "Beijing")
    # "before Feb 5" is the next Feb 5, and the parcel must arrive the day before at the latest.
    assert intent.deliverBy == date(2027, 2, 4)


def test_seed_goal_in_chinese():
    intent = parse("给我朋友买一双42码的黑色跑鞋，礼品包装，2月5日前送到北京，预算800元")
    assert (intent.category, intent.size, intent.color) == ("running-shoes", "42", "black")
    assert intent.giftWrap and intent.relation == "friend" and intent.city == "Beijing"
    assert intent.deliverBy == date(2027, 2, 4)
    assert intent.budget == Money(amount_minor=80000, currency="CNY")


@pytest.mark.parametrize(
    ("goal", "deadline"),
    [
        ("running socks by 2026-12-10", date(2026, 12, 10)),
        ("running socks before 2026-12-10", date(2026, 12, 9)),
        ("running socks by Dec 3", date(2026, 12, 3)),
        ("running socks by the 3rd of January", date(2027, 1, 3)),
        ("跑步袜 12月3日送到", date(2026, 12, 3)),
        ("running socks", None),
    ],
)
def test_deadlines(goal, deadline):
    assert parse(goal).deliverBy == deadline


@pytest.mark.parametrize(
    ("goal", "budget"),
    [
        ("running shoes under 800 CNY", Money(amount_minor=80000, currency="CNY")),
        ("running shoes, budget of ¥650.50", Money(amount_minor=65050, currency="CNY")),
        ("running shoes for at most $120", Money(amount_minor=12000, currency="USD")),
        ("跑鞋 不超过600元", Money(amount_minor=60000, currency="CNY")),
        ("跑鞋 500元以内", Money(amount_minor=50000, currency="CNY")),
    ],
)
def test_budgets(goal, budget):
    assert parse(goal).budget == budget


def test_quantities_and_home_address():
    intent = parse("Buy two pairs of running socks and ship them to my home address")
    assert (intent.category, intent.quantity, intent.relation) == ("socks", 2, "self")
    assert parse("给我买两双跑步袜").quantity == 2


def test_a_goal_naming_nothing_to_buy_is_not_understood():
    with pytest.raises(GoalNotUnderstood):
        parse("please do something nice for me")
