"""Which planner runs: brand.yaml, environment overrides, API keys, and the fallback behind a model."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import httpx
import pytest

from cartpilot.adapters.aws.bedrock import BedrockConverse
from cartpilot.brands.config import BrandConfig
from cartpilot.brands.users import directory_for
from cartpilot.goals.model import GoalContext
from cartpilot.kernel.errors import MissingSetting
from cartpilot.planning.llm import LlmPlanner
from cartpilot.planning.providers.openai import OpenAiCompatibleChat
from cartpilot.planning.rules import PlanningRequest, RulesPlanner
from cartpilot.planning.setup import (
    api_key_from_secret,
    api_key_from_secrets_manager,
    configured_planner,
    reset_providers,
)
from tests.fakes import TODAY, FakeMerchant


@pytest.fixture(autouse=True)
def fresh_providers() -> Iterator[None]:
    reset_providers()
    yield
    reset_providers()


def build(brand: BrandConfig, merchant: FakeMerchant, **environ: str):
    return configured_planner(brand, merchant.catalog, merchant.fulfillment, environ=environ)


def test_the_sandbox_brand_plans_with_rules_offline(brand, merchant):
    assert isinstance(build(brand, merchant), RulesPlanner)


def test_environment_switches_on_a_local_openai_compatible_model(brand, merchant):
    planner = build(
        brand,
        merchant,
        CARTPILOT_PLANNER="openai",
        CARTPILOT_LLM_URL="http://127.0.0.1:11434/v1",
        CARTPILOT_LLM_MODEL="qwen3:8b",
        CARTPILOT_LLM_STRUCTURED_OUTPUT="json_object",
    )
    assert isinstance(planner, LlmPlanner) and planner.kind == "openai"
    provider = planner.provider
    assert isinstance(provider, OpenAiCompatibleChat)
    assert (provider.base_url, provider.model) == ("http://127.0.0.1:11434/v1", "qwen3:8b")
    assert isinstance(planner.fallback, RulesPlanner)


def test_a_brand_without_fallback_gets_none(brand, merchant):
    strict = brand.model_copy(update={"planner": brand.planner.model_copy(update={"fallback": "none"})})
    planner = build(strict, merchant, CARTPILOT_PLANNER="openai")
    assert isinstance(planner, LlmPlanner) and planner.fallback is None


def test_bedrock_is_built_for_the_configured_model_and_region(brand, merchant):
    config = brand.planner.model_copy(
        update={"provider": "bedrock", "model": "qwen.qwen3-32b-v1:0", "region": "us-west-2"}
    )
    planner = build(brand.model_copy(update={"planner": config}), merchant)
    assert isinstance(planner, LlmPlanner) and isinstance(planner.provider, BedrockConverse)
    assert planner.provider.client.meta.region_name == "us-west-2"


@pytest.mark.parametrize(
    ("changes", "environ", "message"),
    [
        ({"baseUrl": None}, {"CARTPILOT_PLANNER": "openai"}, "needs a base URL"),
        ({"model": None}, {"CARTPILOT_PLANNER": "openai"}, "needs a model"),
        ({}, {"CARTPILOT_PLANNER": "gpt"}, "planner settings from the environment are invalid: provider"),
    ],
)
def test_an_incomplete_configuration_is_refused_loudly(brand, merchant, changes, environ, message):
    broken = brand.model_copy(update={"planner": brand.planner.model_copy(update=changes)})
    with pytest.raises(MissingSetting, match=message):
        build(broken, merchant, **environ)


def test_one_provider_per_configuration_per_warm_container(brand, merchant):
    environ = {"CARTPILOT_PLANNER": "openai", "CARTPILOT_LLM_API_KEY": "sk-one"}
    first, second = build(brand, merchant, **environ), build(brand, merchant, **environ)
    assert isinstance(first, LlmPlanner) and isinstance(second, LlmPlanner)
    assert first.provider is second.provider
    rotated = build(brand, merchant, **{**environ, "CARTPILOT_LLM_API_KEY": "sk-two"})
    assert isinstance(rotated, LlmPlanner) and rotated.provider is not first.provider


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("sk-plain", "sk-plain"),
        ('{"apiKey": "sk-json"}', "sk-json"),
        ('{"api_key": "sk-snake"}', "sk-snake"),
        (b"sk-bytes\n", "sk-bytes"),
        ('{"username": "x"}', None),
    ],
)
def test_secret_values_hold_the_key_as_text_or_json(raw, key):
    assert api_key_from_secret(raw) == key


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
    planner = LlmPlanner(
        provider, merchant.catalog, merchant.fulfillment, config=brand.planner,
        fallback=RulesPlanner(merchant.catalog, merchant.fulfillment),
    )  # fmt: skip
    plan = planner.plan(socks_request(brand))
    assert seen == ["Bearer sk-from-secret"]
    assert plan.planner.fallbackReason == "openai qwen-plus: HTTP 503 (overloaded)"
    parameters.clear_caches()


def test_an_unreadable_key_secret_falls_back_instead_of_failing_the_goal(brand, merchant, aws_env):
    planner = build(brand, merchant, CARTPILOT_PLANNER="openai", LLM_API_KEY_SECRET_ID="cartpilot/missing")
    plan = planner.plan(socks_request(brand))
    assert (
        plan.planner.fallbackReason == "openai qwen-plus: cannot read the API key secret: GetParameterError"
    )
    assert plan.planner.kind == "rules"


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
    profile = directory_for(brand).get("user-1")
    assert profile is not None
    return PlanningRequest(
        goalId="g-secret", goal="running socks for me", context=GoalContext(), profile=profile, brand=brand,
        today=TODAY,
    )  # fmt: skip
