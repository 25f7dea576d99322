"""The merchants of the brand, each a ``UcpMerchant`` kept warm per container, and what pays them.

A merchant comes from ``brand.yaml`` (``merchants``: id, URL, credentials); ``MERCHANT_URL`` and
``MERCHANT_CREDENTIALS_SECRET_ID``, when set, stand in for the default merchant's URL and secret (the
local stack and a deployed stack set them). CartPilot names its own profile in ``UCP-Agent`` (served
under ``PUBLIC_API_URL``) and signs 2026-04-08 requests with the key ring's signing key; neither is
read before the first request.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING

from cartpilot.brands.config import MerchantCredentials
from cartpilot.commerce.breaker import BreakerPolicy
from cartpilot.commerce.discovery import MerchantDiscovery
from cartpilot.commerce.http import MerchantAuth, RequestSigner, Timeouts
from cartpilot.commerce.platform_profile import CURRENT_VERSION, SUPPORTED_VERSIONS
from cartpilot.commerce.ucp import PlatformIdentity, UcpMerchant
from cartpilot.wiring.settings import merchant_settings

if TYPE_CHECKING:
    from cartpilot.brands.config import BrandConfig
    from cartpilot.commerce.ports import CredentialProvider

_merchants: dict[tuple[str, str, str, float, float, float], UcpMerchant] = {}
_discovery: MerchantDiscovery | None = None
_providers: dict[tuple[str, str], dict[str, CredentialProvider]] = {}
_merchants_lock = threading.Lock()

# On Lambda a process is one warm container. The local stack hosts many containers in one
# process and names the one running here, so each keeps its own clients and circuit breakers,
# as separate containers would (a breaker shared by all of them half-opens for one caller).
container_scope: ContextVar[str] = ContextVar("container_scope", default="")


class _RingSigner:
    """Signs with the deployment's key ring, loaded when the first signed request goes out."""

    def __call__(
        self, *, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> Mapping[str, str]:
        from cartpilot.wiring.signing import request_signer

        return request_signer()(method=method, url=url, headers=headers, body=body)


class _AgentProfiles(Mapping[str, str]):
    """Our profile URL per version, read from PUBLIC_API_URL when a merchant is first spoken to."""

    def __getitem__(self, version: str) -> str:
        if version not in SUPPORTED_VERSIONS:
            raise KeyError(version)
        from cartpilot.wiring.signing import agent_profile_url

        return agent_profile_url(version)

    def __iter__(self) -> Iterator[str]:
        return iter(SUPPORTED_VERSIONS)

    def __len__(self) -> int:
        return len(SUPPORTED_VERSIONS)


def platform_identity() -> PlatformIdentity:
    # signatures.md is 2026-04-08's; a 2026-01-11 merchant authenticates us by our credentials.
    signers: dict[str, RequestSigner] = {CURRENT_VERSION: _RingSigner()}
    return PlatformIdentity(profile_urls=_AgentProfiles(), signers=signers)


def _discovery_service() -> MerchantDiscovery:
    global _discovery
    if _discovery is None:
        _discovery = MerchantDiscovery()
    return _discovery


def credentials_sent_as(header: str, secret_id: str) -> MerchantCredentials:
    return MerchantCredentials(secretId=secret_id, header=header, scheme=MerchantAuth.scheme_for(header))


def merchant_for(brand: BrandConfig, merchant_id: str | None = None) -> UcpMerchant:
    """The brand's merchant with this id (default: its first), one per warm container and URL."""
    config = brand.merchant(merchant_id)
    defaults = Timeouts()
    settings = merchant_settings(defaults.connect, defaults.read, BreakerPolicy().reset_timeout)
    is_default = config.id == brand.merchants[0].id
    url = (settings.url if is_default and settings.url else config.url).rstrip("/")
    key = (
        container_scope.get(),
        config.id,
        url,
        settings.connect_timeout,
        settings.read_timeout,
        settings.breaker_reset,
    )
    with _merchants_lock:
        merchant = _merchants.get(key)
        if merchant is None:
            auth = None
            credentials = config.credentials
            if (
                credentials is None
                and is_default
                and settings.credentials_secret_id
                and settings.credentials_header
            ):
                credentials = credentials_sent_as(settings.credentials_header, settings.credentials_secret_id)
            if credentials is not None:
                from cartpilot.adapters.aws.secrets import secret_text

                secret_id = settings.credentials_secret_id if is_default else None
                auth = MerchantAuth(
                    header=credentials.header,
                    scheme=credentials.scheme,
                    secret=secret_text(secret_id or credentials.secretId),
                )
            merchant = _merchants[key] = UcpMerchant(
                url,
                identity=platform_identity(),
                discovery=_discovery_service(),
                auth=auth,
                timeouts=Timeouts(connect=settings.connect_timeout, read=settings.read_timeout),
                breakers=BreakerPolicy(reset_timeout=settings.breaker_reset),
            )
        return merchant


def credential_providers_for(brand: BrandConfig) -> dict[str, CredentialProvider]:
    """The brand's credential providers, kept per container: a provider remembers the credentials it
    obtained, so a retried payment step in a warm container presents the same one."""
    from cartpilot.commerce.credentials import providers_for

    key = (container_scope.get(), brand.name)
    with _merchants_lock:
        providers = _providers.get(key)
        if providers is None:
            providers = _providers[key] = providers_for(brand)
        return providers


def reset_merchant_cache() -> None:
    """Closes and forgets cached merchants and profiles; for tests and local stacks that restart the merchant."""
    global _discovery
    with _merchants_lock:
        for merchant in _merchants.values():
            merchant.close()
        _merchants.clear()
        _providers.clear()
        if _discovery is not None:
            _discovery.close()
            _discovery = None
