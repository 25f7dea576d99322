from __future__ import annotations

import pytest

from cartpilot.brands.config import BrandConfig
from cartpilot.brands.users import UserDirectory
from cartpilot.goals.model import GoalContext
from cartpilot.planning.rules import PlanningRequest, RulesPlanner
from cartpilot.plans.model import Plan
from tests.fakes import TODAY, FakeMerchant

SEED_GOAL = "Get my friend running shoes, size 42, gift-wrap them and ship to Beijing before Feb 5"


def make_plan(
    merchant: FakeMerchant, brand: BrandConfig, users: UserDirectory, goal: str, *, user: str = "user-1",
    context: GoalContext | None = None,
) -> Plan:  # fmt: skip
    profile = users.get(user)
    assert profile is not None
    request = PlanningRequest(
        goalId="g-test",
        goal=goal,
        context=context or GoalContext(),
        profile=profile,
        brand=brand,
        today=TODAY,
    )
    return RulesPlanner(merchant.catalog, merchant.fulfillment).plan(request)


@pytest.fixture
def seed_plan(merchant: FakeMerchant, brand: BrandConfig, users: UserDirectory) -> Plan:
    return make_plan(merchant, brand, users, SEED_GOAL)
