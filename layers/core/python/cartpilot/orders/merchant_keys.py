"""Who may sign a merchant's webhooks: the ``signing_keys`` its UCP profile publishes.

order.md, "Verification (Platform)": fetch the business's profile from ``/.well-known/ucp`` (cache as
appropriate) and find the key by its id. overview.md, "Fetching": no redirects, cached for at least 60
seconds, and refetched before then only when a signature names a key the cached profile lacks, at
most once per TTL (so a flood of forged key ids cannot make us hammer the merchant).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import httpx

from cartpilot import __version__
from cartpilot.commerce.discovery import MIN_PROFILE_TTL, max_age, require_secure
from cartpilot.commerce.errors import MerchantRejected, MerchantUnavailable
from cartpilot.commerce.platform_profile import PROFILE_PATH

_TIMEOUT: Final = httpx.Timeout(connect=2.0, read=5.0, write=5.0, pool=2.0)


@dataclass(frozen=True)
class MerchantSigner:
    """What verifies a merchant's messages: its UCP version (as negotiated), its profile URL and keys."""

    version: str
    profile_url: str
    keys: Mapping[str, Mapping[str, Any]]


class MerchantKeys(Protocol):
    def signer(self, merchant_id: str, *, refresh: bool = False) -> MerchantSigner:
        """The merchant's signer; ``refresh`` asks for the profile again (a key id it lacked), which
        the source may decline within the TTL. Raises ``MerchantUnavailable`` or ``MerchantRejected``."""
        ...


def keys_of(document: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """kid -> JWK of a profile's ``signing_keys`` (entries without a string kid are ignored)."""
    listed = document.get("signing_keys")
    if not isinstance(listed, list):
        return {}
    return {str(k["kid"]): k for k in listed if isinstance(k, Mapping) and isinstance(k.get("kid"), str)}


@dataclass
class _Entry:
    signer: MerchantSigner
    fetched: float
    ttl: float


class ProfileKeys:
    """Merchant signers from their profiles over HTTP, per merchant id, thread-safe and cached."""

    def __init__(
        self,
        merchant_urls: Callable[[str], str],
        negotiated_version: Callable[[str], str],
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._urls = merchant_urls
        self._version = negotiated_version
        self._transport = transport
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, _Entry] = {}
        self._refreshed: dict[str, float] = {}

    def signer(self, merchant_id: str, *, refresh: bool = False) -> MerchantSigner:
        now = self._clock()
        with self._lock:
            entry = self._cache.get(merchant_id)
            if entry is not None and now - entry.fetched < entry.ttl:
                last = self._refreshed.get(merchant_id)
                if not refresh or (last is not None and now - last < MIN_PROFILE_TTL):
                    return entry.signer
            if refresh:
                self._refreshed[merchant_id] = now
        url = require_secure(self._urls(merchant_id), "merchant")
        version = self._version(merchant_id)
        document, ttl = self._fetch(url + PROFILE_PATH)
        keys = keys_of(document)
        # A merchant that speaks an older version through ``supported_versions`` publishes that
        # version's profile apart; its keys count too.
        ucp = document.get("ucp")
        supported = ucp.get("supported_versions") if isinstance(ucp, Mapping) else None
        if isinstance(supported, Mapping) and isinstance(supported.get(version), str):
            leaf, leaf_ttl = self._fetch(require_secure(str(supported[version]), "profile"))
            keys = {**keys, **keys_of(leaf)}
            ttl = min(ttl, leaf_ttl)
        signer = MerchantSigner(version=version, profile_url=url + PROFILE_PATH, keys=keys)
        with self._lock:
            self._cache[merchant_id] = _Entry(signer, self._clock(), ttl)
        return signer

    def _fetch(self, url: str) -> tuple[Mapping[str, Any], float]:
        try:
            with httpx.Client(
                timeout=_TIMEOUT,
                transport=self._transport,
                follow_redirects=False,  # overview.md, "Fetching"
                headers={"Accept": "application/json", "User-Agent": f"cartpilot/{__version__}"},
            ) as client:
                response = client.get(url)
        except httpx.TransportError as error:
            raise MerchantUnavailable(f"cannot fetch {url}: {type(error).__name__}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise MerchantUnavailable(f"{url} answered {response.status_code}")
        if response.status_code != 200:
            raise MerchantRejected(f"{url} answers {response.status_code}", code="profile_unreachable")
        try:
            document = json.loads(response.content)
        except ValueError:
            document = None
        if not isinstance(document, Mapping):
            raise MerchantRejected(f"{url} is not a JSON object", code="profile_malformed")
        age = max_age(response.headers.get("Cache-Control"))
        return document, max(MIN_PROFILE_TTL, age if age is not None else MIN_PROFILE_TTL)
