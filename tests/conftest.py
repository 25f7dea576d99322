"""Fixtures shared by every test layer."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from cartpilot.brands.config import BrandConfig, load_brand
from cartpilot.brands.users import UserDirectory, directory_for
from tests.fakes import TODAY, FakeMerchant

if TYPE_CHECKING:
    from cartpilot_local.servers import RunningServer


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
    """moto with the brand's tables and link secret, and the functions' environment pointing at them."""
    from moto import mock_aws

    from cartpilot import wiring
    from cartpilot_local.resources import create_link_secret, create_tables, table_environment
    from cartpilot_local.stack import atomic_dynamodb

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "CARTPILOT_BRAND": "sandbox",
        "LINK_SIGNING_SECRET_ID": "cartpilot/sandbox/link-signing",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "CartPilotTest",
        "POWERTOOLS_SERVICE_NAME": "cartpilot-test",
        **table_environment("sandbox"),
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws(), atomic_dynamodb():
        create_tables(boto3.client("dynamodb"), "sandbox")
        create_link_secret(boto3.client("secretsmanager"), os.environ["LINK_SIGNING_SECRET_ID"])
        wiring.reset()
        yield {"dynamodb": boto3.resource("dynamodb")}
    wiring.reset()


@pytest.fixture(scope="session")
def merchant_server() -> Iterator[RunningServer]:
    """The sandbox merchant on a free 127.0.0.1 port, one per test session (per xdist worker).

    Its state is shared by the tests that use it: reset it with ``POST /_sandbox/reset`` first.
    """
    from cartpilot_local.merchant.app import create_app
    from cartpilot_local.servers import serve_in_thread

    server = serve_in_thread(create_app())
    try:
        yield server
    finally:
        server.stop()
