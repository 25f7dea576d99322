"""Which planner runs: the brand's ``planner`` section, with environment overrides for local use.

Deployed stacks configure the planner in ``brand.yaml`` and read an OpenAI-compatible provider's
API key from Secrets Manager (``apiKeySecretId`` or ``LLM_API_KEY_SECRET_ID``); Bedrock needs no key,
its calls are signed with the function's IAM role. On a laptop the environment may override the
provider, endpoint and model, and hand over a key directly:

=================================  ==========================================================
``CARTPILOT_PLANNER``              ``rules`` | ``openai`` | ``bedrock``
``CARTPILOT_LLM_URL``              OpenAI-compatible base URL, e.g. ``http://127.0.0.1:11434/v1``
``CARTPILOT_LLM_MODEL``            model name
``CARTPILOT_LLM_API_KEY``          the key itself (local use only; deployments use the secret)
``CARTPILOT_LLM_STRUCTURED_OUTPUT`` ``json_schema`` | ``json_object`` | ``none``
=================================  ==========================================================

A model planner always has the rules planner behind it unless the brand says ``fallback: none``.
Providers are built once per warm container and configuration, so their connection pools are reused.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from cartpilot.brands.config import BrandConfig, PlannerConfig
from cartpilot.commerce.ports import Catalog, Fulfillment
from cartpilot.kernel.errors import MissingSetting
from cartpilot.planning.conversation import ChatProvider
from cartpilot.planning.llm import LlmPlanner
from cartpilot.planning.rules import RulesPlanner
from cartpilot.planning.service import Planner

ENV_PLANNER = "CARTPILOT_PLANNER"
ENV_LLM_URL = "CARTPILOT_LLM_URL"
ENV_LLM_MODEL = "CARTPILOT_LLM_MODEL"
ENV_LLM_API_KEY = "CARTPILOT_LLM_API_KEY"
ENV_STRUCTURED_OUTPUT = "CARTPILOT_LLM_STRUCTURED_OUTPUT"
ENV_API_KEY_SECRET_ID = "LLM_API_KEY_SECRET_ID"  # noqa: S105 - a variable name, not a secret
SECRET_MAX_AGE_SECONDS = 300


@dataclass(frozen=True)
class PlannerOverrides:
    """Local choices that win over brand.yaml; None leaves the brand's value."""

    provider: str | None = None
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    """The name of an environment variable that holds the API key."""
    structured_output: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> PlannerOverrides:
        return cls(
            provider=environ.get(ENV_PLANNER) or None,
            base_url=environ.get(ENV_LLM_URL) or None,
            model=environ.get(ENV_LLM_MODEL) or None,
            api_key_env=ENV_LLM_API_KEY if environ.get(ENV_LLM_API_KEY) else None,
            structured_output=environ.get(ENV_STRUCTURED_OUTPUT) or None,
        )


def effective_config(brand: BrandConfig, overrides: PlannerOverrides) -> PlannerConfig:
    changes = {
        name: value
        for name, value in (
            ("provider", overrides.provider),
            ("baseUrl", overrides.base_url),
            ("model", overrides.model),
            ("structuredOutput", overrides.structured_output),
        )
        if value is not None
    }
    if not changes:
        return brand.planner
    try:
        return PlannerConfig.model_validate({**brand.planner.model_dump(), **changes})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise MissingSetting(f"planner settings from the environment are invalid: {problems}") from None


def configured_planner(
    brand: BrandConfig,
    catalog: Catalog,
    fulfillment: Fulfillment,
    *,
    environ: Mapping[str, str],
    overrides: PlannerOverrides | None = None,
) -> Planner:
    """``environ`` is where API keys are looked up (the composition root passes the process's)."""
    overrides = overrides or PlannerOverrides.from_env(environ)
    config = effective_config(brand, overrides)
    rules = RulesPlanner(catalog, fulfillment)
    if config.provider == "rules":
        return rules
    provider = provider_for(config, api_key=_api_key_source(config, overrides, environ))
    return LlmPlanner(
        provider, catalog, fulfillment, config=config, fallback=rules if config.fallback == "rules" else None
    )


# --- API keys ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _KeySource:
    """Where the key comes from; ``fingerprint`` tells sources apart without holding the key in a cache key."""

    read: Callable[[], str | None]
    fingerprint: str


def _api_key_source(
    config: PlannerConfig, overrides: PlannerOverrides, environ: Mapping[str, str]
) -> _KeySource:
    if overrides.api_key_env:
        key = environ.get(overrides.api_key_env) or None
        digest = hashlib.sha256((key or "").encode()).hexdigest()[:16]
        return _KeySource(read=lambda: key, fingerprint=f"env:{overrides.api_key_env}:{digest}")
    secret_id = config.apiKeySecretId or environ.get(ENV_API_KEY_SECRET_ID)
    if secret_id:
        # Secrets Manager is an AWS service: its reader lives with the other AWS adapters.
        from cartpilot.adapters.aws.secrets import api_key_from_secrets_manager

        return _KeySource(
            read=api_key_from_secrets_manager(secret_id, max_age_seconds=SECRET_MAX_AGE_SECONDS),
            fingerprint=f"secret:{secret_id}",
        )
    return _KeySource(read=lambda: None, fingerprint="none")


def api_key_from_secret(raw: Any) -> str | None:
    """A secret holds the key as plain text or as JSON with an ``apiKey`` (or ``api_key``) field."""
    if isinstance(raw, bytes):
        raw = raw.decode()
    text = str(raw).strip()
    if text.startswith("{"):
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            return text
        for name in ("apiKey", "api_key", "key"):
            if document.get(name):
                return str(document[name])
        return None
    return text or None


# --- providers ---------------------------------------------------------------------------------

_providers: dict[tuple[Any, ...], ChatProvider] = {}
_providers_lock = threading.Lock()


def provider_for(config: PlannerConfig, *, api_key: _KeySource) -> ChatProvider:
    if not config.model:
        raise MissingSetting(f"the {config.provider} planner needs a model (brand.yaml planner.model)")
    if config.provider == "openai" and not config.baseUrl:
        raise MissingSetting("the openai planner needs a base URL (brand.yaml planner.baseUrl)")
    cache_key = (
        config.provider,
        config.baseUrl,
        config.model,
        config.region,
        config.structuredOutput,
        config.maxOutputTokens,
        config.temperature,
        config.connectTimeoutSeconds,
        config.timeoutSeconds,
        json.dumps(config.extraBody, sort_keys=True),
        api_key.fingerprint,
    )
    with _providers_lock:
        provider = _providers.get(cache_key)
        if provider is None:
            provider = _providers[cache_key] = _build_provider(config, api_key)
        return provider


def _build_provider(config: PlannerConfig, api_key: _KeySource) -> ChatProvider:
    assert config.model is not None
    if config.provider == "openai":
        from cartpilot.planning.providers.openai import OpenAiCompatibleChat

        assert config.baseUrl is not None
        return OpenAiCompatibleChat(
            base_url=config.baseUrl,
            model=config.model,
            api_key=api_key.read,
            structured_output=config.structuredOutput,
            max_output_tokens=config.maxOutputTokens,
            temperature=config.temperature,
            extra_body=config.extraBody,
            connect_timeout=config.connectTimeoutSeconds,
        )
    # Bedrock is an AWS service: its provider lives with the other AWS adapters.
    from cartpilot.adapters.aws.bedrock import bedrock_converse

    return bedrock_converse(config)


def reset_providers() -> None:
    """Closes and forgets cached providers (tests and local stacks that change configuration)."""
    with _providers_lock:
        for provider in _providers.values():
            close = getattr(provider, "close", None)
            if close is not None:
                close()
        _providers.clear()
