"""Goals that ask for several products, one size each: how they are read and what the rules planner plans."""

from __future__ import annotations

from datetime import date

import pytest

from cartpilot.planning.assembly import PlanningFailed
from cartpilot.planning.intent import SeveralSizes, parse_goal
from cartpilot.planning.items import read_items
from cartpilot.planning.rules import RulesPlanner
from tests.conftest import planning_request

TODAY = date(2026, 11, 25)


def read(goal: str) -> list[tuple[str, str | None, str | None, int]]:
    return [
        (item.query, item.size, item.color, item.quantity)
        for item in read_items(goal, today=TODAY, currency="CNY")
    ]


@pytest.mark.parametrize(
    ("goal", "items"),
    [
        (
            "Running shoes size 42 and running socks size M for me, delivered by Nov 28",
            [("running shoes", "42", None, 1), ("running socks", "M", None, 1)],
        ),
        ("给我买一双42码的跑鞋和一包M码白色跑步袜", [("跑鞋", "42", None, 1), ("跑步袜", "M", "white", 1)]),
        ("给我买一双42码的跑鞋以及三包L码黑色跑步袜", [("跑鞋", "42", None, 1), ("跑步袜", "L", "black", 3)]),
        (
            "Running shoes size 42 plus two pairs of socks size M",
            [("running shoes", "42", None, 1), ("socks", "M", None, 2)],
        ),
    ],
)
def test_a_goal_naming_several_sizes_is_read_as_one_product_per_size(goal, items):
    assert read(goal) == items


def test_what_the_order_asks_is_every_items():
    first, second = read_items(
        "Running shoes size 42 and running socks size M for my friend in Beijing by Nov 28, under 700 yuan",
        today=TODAY,
        currency="CNY",
    )
    for item in (first, second):
        assert (item.relation, item.city, item.deliverBy) == ("friend", "Beijing", date(2026, 11, 28))
        assert item.budget is not None and item.budget.amount_minor == 70_000


@pytest.mark.parametrize(
    "goal",
    [
        "Running shoes size 42 for my mom and running socks size M for my friend",  # two recipients
        "Running shoes size 42 by Nov 28 and running socks size M by Dec 2",  # two deadlines
        "Running shoes size 42 and size 43",  # one product, two sizes
        "Running shoes size 42 and running socks and a cap size M",  # a part without its size
        "Size 42 size M running shoes",  # nothing joins two products
    ],
)
def test_several_sizes_that_do_not_read_as_several_products_fail_as_before(goal):
    with pytest.raises(SeveralSizes, match="one size per goal"):
        read_items(goal, today=TODAY, currency="CNY")


@pytest.mark.parametrize(
    "goal",
    [
        "Two pairs of white running socks, size M, for me",
        "Running shoes and socks size 42 for me",
        "给我买三双黑色L码的跑步袜",
    ],
)
def test_a_goal_for_one_product_reads_exactly_as_before(goal):
    assert read_items(goal, today=TODAY, currency="CNY") == (parse_goal(goal, today=TODAY, currency="CNY"),)


def test_rules_planner_plans_every_product_in_one_session(sandbox, brand, users):
    request = planning_request(brand, users, "给我买一双42码的跑鞋和三包M码白色跑步袜")
    plan, evidence = RulesPlanner(sandbox, brand.merchant()).plan_with_evidence(request)
    summary = plan.summary
    assert [(item.itemId, item.quantity) for item in summary.items] == [
        ("rs-stride-lite-black-42", 1),
        ("socks-running-white-m", 3),
    ]
    assert (summary.shipping.optionId, summary.total.format(), summary.recipientId) == (
        "standard",
        "676.00 CNY",
        "home",
    )
    assert [e.chosen.id for e in (evidence, *evidence.more)] == [
        "rs-stride-lite-black-42",
        "socks-running-white-m",
    ]
    assert plan.steps[-1].args.amount == summary.total


def test_rules_planner_will_not_buy_one_item_twice_for_two_parts(sandbox, brand, users):
    # The cap comes in one size: both parts find the same item.
    request = planning_request(brand, users, "A black trail cap size S and a black trail cap size M for me")
    with pytest.raises(PlanningFailed, match="same item twice"):
        RulesPlanner(sandbox, brand.merchant()).plan(request)
