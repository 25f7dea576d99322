"""Fixtures and builders shared by every test layer (one definition each).

- ``SEED_GOAL``: the goal the README walks through (running shoes for a friend in Beijing).
- ``planning_request`` / ``make_plan``: a planning request for a brand's user, and the rules
  planner's plan for it over any merchant (the fake, or the sandbox over HTTP).
- ``sandbox_merchant`` / ``merchant_server``: the sandbox merchant on loopback, one per session.
- money helpers live with the fake merchant: ``tests.fakes.merchant.cny`` / ``usd``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from cartpilot.brands.config import BrandConfig, load_brand
from cartpilot.brands.users import UserDirectory, directory_for
from cartpilot.goals.model import GoalContext
from cartpilot_local.demo import SEED_GOAL as SEED_GOAL  # the seed scenario, as the demo runs it
from tests.fakes import TODAY, FakeMerchant

if TYPE_CHECKING:
    from cartpilot.commerce.ucp import UcpMerchant
    from cartpilot.planning.rules import PlanningRequest
    from cartpilot.plans.model import Plan
    from cartpilot_local.merchant.state import MerchantState
    from cartpilot_local.servers import RunningServer
    from tests.fakes.platform import LocalPlatform


def planning_request(
    brand: BrandConfig, users: UserDirectory, goal: str, *, user: str = "user-1",
    context: GoalContext | None = None, goal_id: str = "g-test", today: date = TODAY,
) -> PlanningRequest:  # fmt: skip
    """What a planner is asked: ``goal`` for ``user``'s saved profile, on ``today``."""
    from cartpilot.planning.rules import PlanningRequest

    profile = users.get(user)
    assert profile is not None, f"no profile for {user}"
    return PlanningRequest(
        goalId=goal_id, goal=goal, context=context or GoalContext(), profile=profile, brand=brand, today=today
    )


def make_plan(
    merchant: Any, brand: BrandConfig, users: UserDirectory, goal: str, *, user: str = "user-1",
    context: GoalContext | None = None, goal_id: str = "g-test",
) -> Plan:  # fmt: skip
    """The rules planner's plan for ``goal`` over ``merchant``'s catalog and fulfillment (the fake, or
    the sandbox's UCP adapter); raises ``PlanningFailed`` when there is none."""
    from cartpilot.planning.rules import RulesPlanner

    request = planning_request(brand, users, goal, user=user, context=context, goal_id=goal_id)
    planner = RulesPlanner(merchant, brand.merchant(), choose_handler=handler_chooser(merchant))
    return planner.plan(request)


def handler_chooser(merchant: Any) -> Callable[[Any, BrandConfig], Any] | None:
    """For the fake merchant, ``choose_handler`` with the fake's own credential provider funding the
    brand's handlers (the brand's real providers would call a tokenizer); None (the real chooser) for
    a merchant over HTTP."""
    from cartpilot.commerce.credentials import choose_handler

    credentials = getattr(merchant, "credentials", None)
    if credentials is None:
        return None
    return lambda profile, brand: choose_handler(
        profile, brand, dict.fromkeys(brand.paymentHandlers, credentials)
    )


@pytest.fixture
def brand() -> BrandConfig:
    return load_brand("sandbox")


@pytest.fixture
def users(brand: BrandConfig) -> UserDirectory:
    return directory_for(brand)


@pytest.fixture
def today() -> date:
    return TODAY


@pytest.fixture
def merchant() -> FakeMerchant:
    return FakeMerchant()


@pytest.fixture
def aws_tables(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """moto with the brand's tables, link secret and UCP signing keys, and the functions' environment
    pointing at them."""
    from moto import mock_aws

    from cartpilot import wiring
    from cartpilot_local.resources import (
        audit_bucket_name,
        create_audit_bucket,
        create_link_secret,
        create_plan_signing_key,
        create_signing_keys_secret,
        create_tables,
        plan_signing_key_alias,
        table_environment,
    )
    from cartpilot_local.stack import atomic_dynamodb

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "CARTPILOT_BRAND": "sandbox",
        "LINK_SIGNING_SECRET_ID": "cartpilot/sandbox/link-signing",
        "VIEW_LINK_SECRET_ID": "cartpilot/sandbox/view-link-signing",
        "SIGNING_KEYS_SECRET_ID": "cartpilot/sandbox/ucp-signing-keys",
        "PLAN_SIGNING_KEY_ID": plan_signing_key_alias("sandbox"),
        "AUDIT_BUCKET": audit_bucket_name("sandbox"),
        "PUBLIC_API_URL": "https://api.example.com/v1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "CartPilotTest",
        "POWERTOOLS_SERVICE_NAME": "cartpilot-test",
        **table_environment("sandbox"),
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws(), atomic_dynamodb():
        create_tables(boto3.client("dynamodb"), "sandbox")
        create_link_secret(boto3.client("secretsmanager"), os.environ["LINK_SIGNING_SECRET_ID"])
        create_link_secret(boto3.client("secretsmanager"), os.environ["VIEW_LINK_SECRET_ID"])
        create_signing_keys_secret(boto3.client("secretsmanager"), os.environ["SIGNING_KEYS_SECRET_ID"])
        create_plan_signing_key(boto3.client("kms"), os.environ["PLAN_SIGNING_KEY_ID"])
        create_audit_bucket(boto3.client("s3"), os.environ["AUDIT_BUCKET"])
        wiring.reset()
        yield {"dynamodb": boto3.resource("dynamodb")}
    wiring.reset()


@dataclass
class SandboxMerchant:
    """The sandbox merchant served on loopback, and its state (to inspect, reset or reprice)."""

    server: RunningServer
    state: MerchantState
    real_clock: Callable[[], datetime]
    platform: LocalPlatform  # the platform profiles it fetches, and the identity that names them

    @property
    def url(self) -> str:
        return self.server.url

    def merchant(self) -> UcpMerchant:
        """A UCP connector to it, naming (and signing as) the platform it trusts."""
        from cartpilot.commerce.ucp import UcpMerchant

        return UcpMerchant(self.url, identity=self.platform.identity())

    @contextmanager
    def frozen_at(self, now: datetime) -> Iterator[SandboxMerchant]:
        """Fresh state on a clock fixed at ``now`` (delivery dates, hence shipping choices, stay put);
        on exit, fresh state again on the real clock, as every other user of the server expects."""
        self.state.reset()
        self.state.clock = lambda: now
        try:
            yield self
        finally:
            self.state.reset()
            self.state.clock = self.real_clock


@pytest.fixture(scope="session")
def sandbox_merchant() -> Iterator[SandboxMerchant]:
    """The one sandbox merchant of a test session (per xdist worker), on a free 127.0.0.1 port.

    Its state is shared by every test that uses it: reset it first (``state.reset()`` or
    ``POST /_sandbox/reset``); ``frozen_at`` gives a module a fixed clock and resets around it.
    """
    from cartpilot_local.merchant.app import create_app
    from cartpilot_local.merchant.state import MerchantState
    from cartpilot_local.servers import serve_in_thread
    from tests.fakes.platform import LocalPlatform

    state = MerchantState()
    platform = LocalPlatform()
    server = serve_in_thread(create_app(state, profile_fetcher=platform.fetch))
    try:
        yield SandboxMerchant(server=server, state=state, real_clock=state.clock, platform=platform)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def merchant_server(sandbox_merchant: SandboxMerchant) -> RunningServer:
    """The sandbox merchant's server, on the real clock.

    Its state is shared by the tests that use it: reset it with ``POST /_sandbox/reset`` first.
    """
    return sandbox_merchant.server


@pytest.fixture(scope="module")
def sandbox(sandbox_merchant: SandboxMerchant) -> Iterator[UcpMerchant]:
    """The UCP connector to the sandbox merchant, its clock fixed at 01:00 UTC on ``TODAY``, so
    delivery estimates (and the planners' shipping choices) are the ones recorded."""
    with sandbox_merchant.frozen_at(datetime.combine(TODAY, time(1), UTC)):
        merchant = sandbox_merchant.merchant()
        try:
            yield merchant
        finally:
            merchant.close()
