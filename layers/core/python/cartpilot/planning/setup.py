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
``CARTPILOT_RULES_FIRST``          ``true`` | ``false``: the brand's ``rulesFirst``
``CARTPILOT_LLM_CONTEXT_CACHE``    ``implicit`` | ``explicit``: the brand's ``contextCache``
                                   (``implicit`` for a local vLLM or Ollama)
=================================  ==========================================================

A model planner always has the rules planner behind it unless the brand says ``fallback: none``, and
with ``rulesFirst: true`` the rules planner in front of it too, for the goals whose plan the shop's
rules fix (``rules_first``).
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

from cartpilot.brands.config import BrandConfig, MerchantConfig, PlannerConfig
from cartpilot.commerce.feed import FeedSource
from cartpilot.commerce.ports import Catalog, Merchant
from cartpilot.kernel.errors import MissingSetting
from cartpilot.planning.conversation import ChatProvider
from cartpilot.planning.llm import LlmPlanner
from cartpilot.planning.rules import RulesPlanner
from cartpilot.planning.rules_first import RulesFirstPlanner
from cartpilot.planning.service import Planner
from cartpilot.planning.storefront import HandlerChooser, Storefront, StorefrontSource

ENV_PLANNER = "CARTPILOT_PLANNER"
ENV_LLM_URL = "CARTPILOT_LLM_URL"
ENV_LLM_MODEL = "CARTPILOT_LLM_MODEL"
ENV_LLM_API_KEY = "CARTPILOT_LLM_API_KEY"
ENV_STRUCTURED_OUTPUT = "CARTPILOT_LLM_STRUCTURED_OUTPUT"
ENV_RULES_FIRST = "CARTPILOT_RULES_FIRST"
ENV_CONTEXT_CACHE = "CARTPILOT_LLM_CONTEXT_CACHE"
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
    rules_first: str | None = None
    context_cache: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> PlannerOverrides:
        return cls(
            provider=environ.get(ENV_PLANNER) or None,
            base_url=environ.get(ENV_LLM_URL) or None,
            model=environ.get(ENV_LLM_MODEL) or None,
            api_key_env=ENV_LLM_API_KEY if environ.get(ENV_LLM_API_KEY) else None,
            structured_output=environ.get(ENV_STRUCTURED_OUTPUT) or None,
            rules_first=environ.get(ENV_RULES_FIRST) or None,
            context_cache=environ.get(ENV_CONTEXT_CACHE) or None,
        )


def effective_config(brand: BrandConfig, overrides: PlannerOverrides) -> PlannerConfig:
    changes = {
        name: value
        for name, value in (
            ("provider", overrides.provider),
            ("baseUrl", overrides.base_url),
            ("model", overrides.model),
            ("structuredOutput", overrides.structured_output),
            ("rulesFirst", overrides.rules_first),
            ("contextCache", overrides.context_cache),
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
    merchant: Merchant,
    *,
    environ: Mapping[str, str],
    overrides: PlannerOverrides | None = None,
    merchant_config: MerchantConfig | None = None,
    feed: Catalog | None = None,
    elsewhere: StorefrontSource | None = None,
    choose_handler: HandlerChooser | None = None,
    provider: ChatProvider | None = None,
) -> Planner:
    """The brand's planner for ``merchant`` (the brand's first merchant unless ``merchant_config`` says
    which it is), with that merchant's product feed from brand.yaml unless ``feed`` is given.

    ``elsewhere`` builds the storefronts of the brand's other merchants, for goals whose context names
    one (``storefront_source``); without it a planner plans at its own merchant only. ``choose_handler``
    replaces ``commerce.credentials.choose_handler`` (tests over a fake merchant). ``environ`` is
    where API keys are looked up (the composition root passes the process's). ``provider`` replaces the
    one the configuration names (recorded model answers replayed by the corpus benchmark and tests).
    """
    overrides = overrides or PlannerOverrides.from_env(environ)
    config = effective_config(brand, overrides)
    merchant_config = merchant_config or brand.merchant()
    if feed is None and merchant_config.feed:
        feed = feed_for(merchant_config, brand)
    rules = RulesPlanner(merchant, merchant_config, feed, elsewhere=elsewhere, choose_handler=choose_handler)
    if config.provider == "rules":
        return rules
    provider = provider or provider_for(config, api_key=_api_key_source(config, overrides, environ))
    model = LlmPlanner(
        provider,
        merchant,
        merchant_config,
        config=config,
        feed=feed,
        elsewhere=elsewhere,
        choose_handler=choose_handler,
        fallback=rules if config.fallback == "rules" else None,
    )
    return RulesFirstPlanner(rules, model) if config.rulesFirst else model


# --- product feeds -----------------------------------------------------------------------------

_feeds: dict[tuple[str, str], FeedSource] = {}
_feeds_lock = threading.Lock()


def feed_for(merchant_config: MerchantConfig, brand: BrandConfig) -> FeedSource | None:
    """The merchant's product feed from brand.yaml (a path relative to the brand, or a URL), one per
    warm container: read when first searched and refreshed as it ages."""
    if not merchant_config.feed:
        return None
    key = (merchant_config.feed, str(brand.directory))
    with _feeds_lock:
        source = _feeds.get(key)
        if source is None:
            source = _feeds[key] = FeedSource(merchant_config.feed, base_dir=brand.directory)
        return source


def storefront_source(
    brand: BrandConfig, open_merchant: Callable[[MerchantConfig], Merchant]
) -> StorefrontSource:
    """Storefronts for the brand's merchants: the connector ``open_merchant`` builds, and the feed."""

    def storefront(merchant_config: MerchantConfig) -> Storefront:
        return Storefront(open_merchant(merchant_config), merchant_config, feed_for(merchant_config, brand))

    return storefront


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
        config.contextCache,
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
            context_cache=config.contextCache,
        )
    # Bedrock is an AWS service: its provider lives with the other AWS adapters.
    from cartpilot.adapters.aws.bedrock import bedrock_converse

    return bedrock_converse(config)


def reset_providers() -> None:
    """Closes and forgets cached providers and product feeds (tests and local stacks that change
    configuration)."""
    with _providers_lock:
        for provider in _providers.values():
            close = getattr(provider, "close", None)
            if close is not None:
                close()
        _providers.clear()
    with _feeds_lock:
        _feeds.clear()
