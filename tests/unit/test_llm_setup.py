"""Which planner runs: brand.yaml, environment overrides, API keys, and the fallback behind a model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cartpilot.adapters.aws.bedrock import BedrockConverse
from cartpilot.brands.config import BrandConfig
from cartpilot.kernel.errors import MissingSetting
from cartpilot.planning.llm import LlmPlanner
from cartpilot.planning.providers.openai import OpenAiCompatibleChat
from cartpilot.planning.rules import RulesPlanner
from cartpilot.planning.rules_first import RulesFirstPlanner
from cartpilot.planning.setup import (
    api_key_from_secret,
    configured_planner,
    reset_providers,
)
from tests.fakes import FakeMerchant


@pytest.fixture(autouse=True)
def fresh_providers() -> Iterator[None]:
    reset_providers()
    yield
    reset_providers()


def build(brand: BrandConfig, merchant: FakeMerchant, **environ: str):
    planner = configured_planner(brand, merchant, environ=environ)
    # The sandbox brand puts the rules planner first (test_rules_first.py); these tests look at the
    # model planner behind it.
    return planner.model if isinstance(planner, RulesFirstPlanner) else planner


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
