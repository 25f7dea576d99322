"""A brand's restricted categories hold whatever taxonomy a merchant files its items under: a
Google Merchant Center feed's "Kitchen Knives" is a knife, its "Alcoholic Beverages > Wine" alcohol."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from cartpilot.brands.categories import key_matches, restriction_for
from cartpilot.brands.config import BrandConfig
from cartpilot.commerce.codecs.v2026_04_08 import Codec20260408
from cartpilot.commerce.feed import FeedCatalog
from cartpilot.goals.model import PriceCheck
from cartpilot.planning.rules import RulesPlanner
from cartpilot.plans.model import Plan
from cartpilot.plans.validation import ValidationInput, validate_plan
from cartpilot.plans.verdicts import RiskTier, Verdict
from tests.conftest import TODAY, handler_chooser, planning_request
from tests.fakes import FakeMerchant
from tests.fakes.merchant import FakeShop

FEED = FeedCatalog.load(str(Path(__file__).resolve().parents[1] / "fixtures" / "feeds" / "restricted.tsv"))
KNIFE_PATH = "Home & Garden > Kitchen > Kitchen Knives"
WINE_PATH = "Food, Beverages & Tobacco > Beverages > Alcoholic Beverages > Wine"


@pytest.mark.parametrize(
    ("key", "category", "matches"),
    [
        ("knives", "kitchen-knives", True),  # a word of the level
        ("knife", KNIFE_PATH, True),  # singular and plural fold
        ("knives", "Pocket Knife", True),
        ("alcoholic", WINE_PATH, True),  # any level, not only the last
        ("alcohol", WINE_PATH, False),  # a different word: brands list it as an alias
        ("spirits", "Liquor & Spirits", True),
        ("kitchen-knives", KNIFE_PATH, True),  # a key of several words, in order
        ("knives-kitchen", KNIFE_PATH, False),
        ("knives", "Kitchen Towels", False),
        ("wine", "wine-glasses", True),  # errs towards restriction
        ("beer", "beetroot", False),  # words, not substrings
    ],
)
def test_a_restricted_key_matches_any_word_of_any_level_with_plurals_folded(key, category, matches):
    assert key_matches(key, category) is matches


def test_the_strictest_matching_rule_wins_over_every_category():
    restricted = {"knives": "deny", "alcoholic": "staff"}
    assert restriction_for(["gift-sets", "Alcoholic Beverages", "Kitchen Knives"], restricted) == "deny"
    assert restriction_for(["gift-sets", "Alcoholic Beverages"], restricted) == "staff"
    assert restriction_for(["gift-sets"], restricted) == "none"


def test_a_feed_item_keeps_every_level_of_its_paths():
    knife, wine, towels = (
        FEED.lookup([item], "CNY")[0] for item in ("kk-chef-8", "wn-cab-750", "tw-linen-2")
    )
    assert knife.category == "kitchen-knives"
    assert knife.categoryPath == (
        "home-garden", "kitchen", "kitchen-knives", "kitchen-dining", "kitchen-tools-utensils"
    )  # fmt: skip
    assert (wine.category, wine.categoryPath) == (
        "wine", ("food-beverages-tobacco", "beverages", "alcoholic-beverages", "wine")
    )  # fmt: skip
    assert towels.categoryPath == ("home-garden", "kitchen", "kitchen-towels")


def test_a_catalog_product_keeps_every_level_of_every_category_value():
    product = {
        "id": "p1",
        "title": "Chef Knife",
        "categories": [{"value": "kitchen"}, {"value": KNIFE_PATH, "taxonomy": "google_product_category"}],
        "variants": [{"id": "v1", "title": "8-inch", "price": {"amount": 45900, "currency": "CNY"}}],
    }
    [found] = Codec20260408().read_search({"products": [product]})
    [variant] = found.variants
    assert variant.category == "kitchen"  # the first value, as a search filters by it
    assert variant.categoryPath == ("kitchen", "Home & Garden", "Kitchen", "Kitchen Knives")


def verdict_for_goal(brand: BrandConfig, users, goal: str, feed: FeedCatalog = FEED) -> tuple[Plan, Verdict]:
    """The rules planner's plan from the feed, through the validator with the merchant's items."""
    merchant = FakeMerchant(shop=FakeShop(products=list(feed.products), offers_catalog=False))
    planner = RulesPlanner(merchant, brand.merchant(), feed, choose_handler=handler_chooser(merchant))
    plan = planner.plan(planning_request(brand, users, goal))
    current = feed.lookup([item.itemId for item in plan.summary.items], plan.currency)
    # The merchant's items travel to the validator in the goal's price check.
    current = PriceCheck.model_validate_json(
        PriceCheck(planId=plan.planId, checkedAt="2026-11-25T00:00:00Z", items=current).model_dump_json()
    ).items
    profile = users.get(plan.userId)
    verdict = validate_plan(
        ValidationInput(plan=plan, brand=brand, profile=profile, current_items=current, today=TODAY)
    )
    return plan, verdict


def reasons(verdict: Verdict) -> set[str]:
    return {reason.policyId for reason in verdict.reasons}


def test_a_kitchen_knife_from_a_feed_is_denied(brand, users):
    plan, verdict = verdict_for_goal(brand, users, "a chef knife")
    assert [item.itemId for item in plan.summary.items] == ["kk-chef-8"]
    assert verdict.tier is RiskTier.DENY
    assert "category.restricted" in reasons(verdict)


def test_wine_from_a_feed_goes_to_staff(brand, users):
    plan, verdict = verdict_for_goal(brand, users, "a bottle of red wine")
    assert [item.itemId for item in plan.summary.items] == ["wn-cab-750"]
    assert (verdict.tier, verdict.approver) == (RiskTier.APPROVAL, "staff")
    assert "category.staff-approval" in reasons(verdict)


def test_an_unrestricted_item_of_the_same_feed_runs_by_itself(brand, users):
    plan, verdict = verdict_for_goal(brand, users, "linen tea towels")
    assert [item.itemId for item in plan.summary.items] == ["tw-linen-2"]
    assert verdict.tier is RiskTier.AUTO


def test_the_merchants_path_restricts_even_when_the_items_own_category_says_nothing(brand, users):
    # The plan names only the last level ("sharpeners"); the validator reads the merchant's path.
    feed = FeedCatalog.parse(
        "id\ttitle\tprice\tavailability\tproduct_type\n"
        "ks-1\tWhetstone Sharpener\t99.00 CNY\tin_stock\tHome & Garden > Kitchen Knives > Sharpeners\n"
    )
    plan, verdict = verdict_for_goal(brand, users, "a whetstone sharpener", feed)
    assert plan.summary.items[0].category == "sharpeners"
    assert verdict.tier is RiskTier.DENY and "category.restricted" in reasons(verdict)


def test_without_the_aliases_only_the_keys_own_words_are_caught(brand, users):
    bare = brand.model_copy(update={"categoryAliases": {}})
    assert verdict_for_goal(bare, users, "a chef knife")[1].tier is RiskTier.DENY
    # Google's taxonomy never says "alcohol": the brand's aliases are what catch its wine.
    assert verdict_for_goal(bare, users, "a bottle of red wine")[1].tier is RiskTier.AUTO


def test_aliases_restrict_as_their_category_and_must_name_one(brand):
    assert brand.category_rules() == {
        "knives": "deny", "knife": "deny",
        "alcohol": "staff", "alcoholic": "staff", "wine": "staff", "beer": "staff", "spirits": "staff",
        "liquor": "staff",
    }  # fmt: skip
    document = brand.model_dump() | {"categoryAliases": {"tobacco": ["cigars"]}}
    with pytest.raises(ValidationError, match="tobacco not in restrictedCategories"):
        BrandConfig.model_validate(document)
