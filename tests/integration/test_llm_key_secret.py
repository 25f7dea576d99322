"""The model planner's API key read from Secrets Manager (moto), and what happens when it cannot be read."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import httpx
import pytest

from cartpilot.adapters.aws.secrets import api_key_from_secrets_manager
from cartpilot.brands.config import BrandConfig
from cartpilot.brands.users import directory_for
from cartpilot.planning.llm import LlmPlanner
from cartpilot.planning.providers.openai import OpenAiCompatibleChat
from cartpilot.planning.rules import PlanningRequest, RulesPlanner
from cartpilot.planning.setup import configured_planner, reset_providers
from tests.conftest import handler_chooser, planning_request


@pytest.fixture(autouse=True)
def fresh_providers() -> Iterator[None]:
    reset_providers()
    yield
    reset_providers()


@pytest.fixture
def aws_env(monkeypatch) -> Iterator[None]:
    from aws_lambda_powertools.utilities import parameters
    from moto import mock_aws

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        parameters.clear_caches()
        yield
    parameters.clear_caches()


def socks_request(brand: BrandConfig) -> PlanningRequest:
    return planning_request(brand, directory_for(brand), "running socks for me", goal_id="g-secret")


def test_deployed_key_is_read_from_secrets_manager_and_sent_as_bearer(brand, merchant, aws_env):
    from aws_lambda_powertools.utilities import parameters

    seen: list[str | None] = []

    def overloaded_model(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(503, json={"error": {"code": "overloaded"}})

    secret = boto3.client("secretsmanager").create_secret(
        Name="cartpilot/sandbox/llm", SecretString=json.dumps({"apiKey": "sk-from-secret"})
    )
    provider = OpenAiCompatibleChat(
        base_url=brand.planner.baseUrl or "",
        model="qwen-plus",
        api_key=api_key_from_secrets_manager(secret["ARN"]),
        transport=httpx.MockTransport(overloaded_model),
    )
    chooser = handler_chooser(merchant)
    planner = LlmPlanner(
        provider, merchant, brand.merchant(), config=brand.planner, choose_handler=chooser,
        fallback=RulesPlanner(merchant, brand.merchant(), choose_handler=chooser),
    )  # fmt: skip
    plan = planner.plan(socks_request(brand))
    assert seen == ["Bearer sk-from-secret"]
    assert plan.planner.fallbackReason == "openai qwen-plus: HTTP 503 (overloaded)"
    parameters.clear_caches()


def test_an_unreadable_key_secret_falls_back_instead_of_failing_the_goal(brand, merchant, aws_env):
    planner = configured_planner(
        brand,
        merchant,
        environ={
            "CARTPILOT_PLANNER": "openai",
            "CARTPILOT_RULES_FIRST": "false",
            "LLM_API_KEY_SECRET_ID": "cartpilot/missing",
        },
        choose_handler=handler_chooser(merchant),
    )
    plan = planner.plan(socks_request(brand))
    assert (
        plan.planner.fallbackReason == "openai qwen-plus: cannot read the API key secret: GetParameterError"
    )
    assert plan.planner.kind == "rules"
