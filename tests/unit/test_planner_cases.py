"""The rules planner over the sandbox's products, from a merchant's catalog and from product feeds.

Each case in planner_cases.yaml is planned three ways (the fake merchant's catalog search, the TSV
feed, the XML feed: the same rows) and must give the same plan, or the same refusal, every way.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from cartpilot.brands.config import BrandConfig
from cartpilot.brands.users import UserDirectory
from cartpilot.commerce.feed import FeedCatalog
from cartpilot.planning.rules import PlanningFailed, RulesPlanner
from cartpilot.plans.model import Action, Plan
from tests.conftest import handler_chooser, planning_request
from tests.fakes import FakeMerchant
from tests.fakes.merchant import FakeShop

FEEDS = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"
CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).with_name("planner_cases.yaml")).read_text(encoding="utf-8")
)["cases"]
SOURCES = ("catalog", "tsv", "xml")


@cache
def feed(name: str) -> FeedCatalog:
    return FeedCatalog.load(str(FEEDS / name))


def planner_over(source: str, brand: BrandConfig) -> tuple[RulesPlanner, FakeMerchant]:
    """A merchant selling the feed's products: searched through its catalog, or through the feed."""
    products = feed("sandbox.tsv").products
    merchant = FakeMerchant(shop=FakeShop(products=list(products), offers_catalog=source == "catalog"))
    product_feed = None if source == "catalog" else feed("sandbox.xml" if source == "xml" else "sandbox.tsv")
    planner = RulesPlanner(merchant, brand.merchant(), product_feed, choose_handler=handler_chooser(merchant))
    return planner, merchant


def runs() -> list[Any]:
    return [
        pytest.param(case, source, id=f"{case['name']}[{source}]")
        for case in CASES
        for source in case.get("sources", SOURCES)
    ]


def plan_or_refusal(case: dict[str, Any], source: str, brand: BrandConfig, users: UserDirectory):
    planner, merchant = planner_over(source, brand)
    request = planning_request(brand, users, case["goal"], user=case.get("user", "user-1"), goal_id="g-cases")
    try:
        return planner.plan(request), merchant
    except PlanningFailed as refusal:
        return refusal, merchant


@pytest.mark.parametrize(("case", "source"), runs())
def test_goal_plans_or_is_refused_as_the_case_says(case, source, brand, users):
    outcome, merchant = plan_or_refusal(case, source, brand, users)
    # Planning reads and prices; it never changes anything at the merchant.
    assert merchant.shop.writes() == []
    if "refuse" in case:
        assert isinstance(outcome, PlanningFailed), f"planned {summary_of(outcome)}"
        assert case["refuse"] in str(outcome)
        return
    assert isinstance(outcome, Plan), f"refused: {outcome}"
    expected = case["plan"]
    summary = outcome.summary
    assert [[item.itemId, item.quantity] for item in summary.items] == expected["items"]
    assert summary.items[0].category == expected["category"]
    assert (summary.recipientId, summary.shipping.optionId, summary.total.format()) == (
        expected["recipient"], expected["shipping"], expected["total"],
    )  # fmt: skip
    wrapped = any(item.itemId == "gift-wrap-standard" for item in summary.items)
    actions = [step.action for step in outcome.steps]
    assert (Action.CHECKOUT_ADD_ITEMS in actions) is wrapped
    payment = outcome.steps[-1]
    assert payment.args.amount == summary.total
    assert outcome.merchant.id == "sandbox-merchant" and outcome.merchant.undo == "cancel"
    searched = "catalog.search" if source == "catalog" else "feed.search"
    assert any(call.startswith(searched) for call in outcome.planner.lookups)


def summary_of(plan: Plan) -> str:
    return ", ".join(f"{item.quantity} x {item.itemId}" for item in plan.summary.items)


def test_the_cases_cover_the_sandboxs_categories_in_both_languages():
    planned = [case for case in CASES if "plan" in case]
    categories = {case["plan"]["category"] for case in planned}
    assert categories >= {
        "running-shoes", "socks", "apparel", "electronics-accessories", "home", "toys", "bags", "beauty",
        "fitness", "books", "knives", "alcohol",
    }  # fmt: skip
    chinese = [case for case in CASES if re.search(r"[\u4e00-\u9fff]", case["goal"])]
    assert len(CASES) >= 50 and len(chinese) >= 15
    assert len({case["name"] for case in CASES}) == len(CASES)


def test_the_tsv_and_xml_feeds_hold_the_same_products():
    assert feed("sandbox.tsv").skipped == [] and feed("sandbox.xml").skipped == []
    assert [p.model_dump() for p in feed("sandbox.tsv").products] == [
        p.model_dump() for p in feed("sandbox.xml").products
    ]
