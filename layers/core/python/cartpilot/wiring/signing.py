"""UCP identity of this deployment: its request-signing key ring and its platform profile."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from cartpilot.wiring import settings as config

if TYPE_CHECKING:
    from cartpilot.commerce.signing_keys import RingSigner, SigningKeySource


@functools.cache
def signing_keys() -> SigningKeySource:
    """The key ring in the secret SIGNING_KEYS_SECRET_ID names, cached per warm container."""
    from cartpilot.adapters.aws.signing_keys import SecretsManagerSigningKeySource

    return SecretsManagerSigningKeySource(config.signing_keys_secret_id())


def request_signer() -> RingSigner:
    """Signs UCP requests with the ring's signing key (for ``MerchantClient``'s ``signer``)."""
    from cartpilot.commerce.signing_keys import RingSigner

    return RingSigner(signing_keys())


def agent_profile_url(version: str) -> str:
    """The profile ``UCP-Agent`` names for a merchant speaking ``version``."""
    from cartpilot.commerce.platform_profile import profile_url

    return profile_url(config.public_api_url(), version)


def platform_profile_document(version: str, merchant_id: str | None = None) -> dict[str, Any]:
    """Our profile for ``version``, served under PUBLIC_API_URL, with the ring's public keys and the
    order-event webhook URL of ``merchant_id`` (one of the brand's; default: its first merchant)."""
    from cartpilot.commerce.platform_profile import platform_profile
    from cartpilot.wiring import brand

    merchant = brand().merchant(merchant_id)
    # A merchant we poll is told of no webhook: its orders are read on a schedule instead.
    pushes = merchant.orderEvents == "webhook"
    return platform_profile(
        config.public_api_url(),
        version,
        signing_keys().load(),
        webhook_merchant=merchant.id if pushes else None,
    )


def reset_signing() -> None:
    signing_keys.cache_clear()
