from __future__ import annotations

from collections.abc import Callable

import pytest

from cartpilot.brands.config import BrandConfig
from cartpilot.brands.users import UserDirectory
from cartpilot.goals.ledger import GoalLedger
from cartpilot.plans.model import Plan
from cartpilot.plans.verdicts import RiskTier

# Defined once in tests/conftest.py (tests/contract/samples.py still imports these two from here).
from tests.conftest import SEED_GOAL, make_plan
from tests.fakes import FakeMerchant
from tests.unit.stages import (
    STRONG_GOAL,
    OrderFlow,
    Pending,
    Route,
    fake_ledger,
    order_flow,
    wait_for_approval,
)


@pytest.fixture
def seed_plan(merchant: FakeMerchant, brand: BrandConfig, users: UserDirectory) -> Plan:
    return make_plan(merchant, brand, users, SEED_GOAL)


@pytest.fixture
def ledger() -> GoalLedger:
    """A goal ledger on the in-memory goal store and audit records."""
    return fake_ledger()


@pytest.fixture
def flow_for(merchant: FakeMerchant, brand: BrandConfig, users: UserDirectory) -> Callable[..., OrderFlow]:
    """Builds a goal ready to run: ``flow_for(route="auto", goal="...", goal_id="g-...")``."""

    def build(*, route: Route = "approve", goal: str = SEED_GOAL, goal_id: str = "g-test") -> OrderFlow:
        plan = make_plan(merchant, brand, users, goal, goal_id=goal_id)
        return order_flow(merchant, brand, users, plan, route=route)

    return build


@pytest.fixture
def flow(flow_for: Callable[..., OrderFlow]) -> OrderFlow:
    """The seed goal, approved as planned: its next step is checkout.create."""
    return flow_for()


@pytest.fixture
def pending(merchant, brand, users) -> Pending:
    """The seed goal waiting for the shopper's approval (a real verdict, a signed link)."""
    return wait_for_approval(merchant, brand, users, SEED_GOAL)


@pytest.fixture
def strong(merchant, brand, users) -> Pending:
    """A goal big enough to need the typed confirmation phrase."""
    waiting = wait_for_approval(merchant, brand, users, STRONG_GOAL)
    assert waiting.approvals.get(waiting.approval_id).tier is RiskTier.STRONG_APPROVAL  # type: ignore[union-attr]
    return waiting
