"""CartPilot's platform profile without a server: what a merchant fetches, and what our client signs with.

``LocalPlatform`` holds a signing-key ring in memory, serves our profile documents for the URLs it
publishes them at (``fetch``, a sandbox merchant's ``profile_fetcher``), and gives ``UcpMerchant``
the identity that names those URLs in ``UCP-Agent`` and signs 2026-04-08 requests with the ring.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from cartpilot.commerce.platform_profile import (
    CURRENT_VERSION,
    SUPPORTED_VERSIONS,
    platform_profile,
    profile_url,
)
from cartpilot.commerce.signing_keys import RingSigner
from cartpilot.commerce.ucp import PlatformIdentity
from tests.fakes.signing import InMemorySigningKeySource

PLATFORM_BASE_URL = "https://cartpilot.test/v1"


class ProfileNotServed(LookupError):
    """A URL this platform publishes no profile at (a merchant answers ``profile_unreachable``)."""


@dataclass
class LocalPlatform:
    base_url: str = PLATFORM_BASE_URL
    keys: InMemorySigningKeySource = field(default_factory=InMemorySigningKeySource)
    fetched: list[str] = field(default_factory=list)

    def documents(self) -> dict[str, bytes]:
        ring = self.keys.load()
        return {
            profile_url(self.base_url, version): json.dumps(
                platform_profile(self.base_url, version, ring)
            ).encode()
            for version in SUPPORTED_VERSIONS
        }

    def fetch(self, url: str) -> bytes:
        """A merchant's profile fetcher: our profile at the URLs we publish (or, when the environment
        configures a deployment, at the URLs its API serves them), nothing elsewhere."""
        from cartpilot_local.merchant.agent import ProfileUnreachable

        self.fetched.append(url)
        document = self.documents().get(url) or deployed_profile(url)
        if document is None:
            raise ProfileUnreachable(f"{url} serves no profile")
        return document

    def identity(self) -> PlatformIdentity:
        return PlatformIdentity.served_at(self.base_url, {CURRENT_VERSION: RingSigner(self.keys)})


def deployed_profile(url: str) -> bytes | None:
    """Our profile as the API of the deployment in this process's environment serves it (PUBLIC_API_URL
    and the signing-key ring the wiring reads), for tests that run the functions against the sandbox."""
    if not os.environ.get("PUBLIC_API_URL"):
        return None
    from cartpilot.wiring import signing

    for version in SUPPORTED_VERSIONS:
        if signing.agent_profile_url(version) == url:
            return json.dumps(signing.platform_profile_document(version)).encode()
    return None
