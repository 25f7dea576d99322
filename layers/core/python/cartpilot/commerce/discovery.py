"""Discovery and negotiation: what a merchant speaks, where, and what both sides can do.

overview.md, "Discovery, Governance, and Negotiation":

1. fetch ``{merchant}/.well-known/ucp`` (no redirects, with timeouts), cached as its
   ``Cache-Control: max-age`` says and never for less than 60 seconds ("Fetching");
2. negotiate the protocol version: the highest that CartPilot speaks and the merchant offers, as
   its ``version`` or a ``supported_versions`` entry ("Protocol Version"); a 2026-01-11 business
   declares one version and serves platforms of that version or older (2026-01-11, "Version
   Negotiation"). Another version's profile is fetched from the URL ``supported_versions`` maps it to;
3. read that profile with the version's codec: the REST endpoint of ``dev.ucp.shopping``, the
   capabilities both sides support ("Intersection Algorithm") and the payment handlers.

No version in common is a ``MerchantRejected`` with code ``version_unsupported``, raised where the
merchant is first used (planning), before anything is created.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from cartpilot import __version__
from cartpilot.commerce.codecs import codec_for
from cartpilot.commerce.codecs.wire import MalformedAnswer
from cartpilot.commerce.errors import MerchantRejected, MerchantUnavailable
from cartpilot.commerce.platform_profile import (
    CATALOG_LOOKUP,
    CATALOG_SEARCH,
    CHECKOUT,
    FULFILLMENT,
    LEGACY_VERSION,
    ORDER,
    ORDER_CANCEL,
    ORDER_RETURN,
    PROFILE_PATH,
    SUPPORTED_VERSIONS,
)
from cartpilot.commerce.ports import MerchantProfile

log = logging.getLogger("cartpilot.commerce.discovery")

# overview.md, "Fetching": cache profiles for at least 60 seconds, whatever the origin says.
MIN_PROFILE_TTL: Final = 60.0
# The version that introduced supported_versions; a business declaring an older one follows
# 2026-01-11's rule (it serves platforms of its version or older).
SUPPORTED_VERSIONS_SINCE: Final = "2026-04-08"


def platform_capabilities(version: str) -> dict[str, tuple[str, ...]]:
    """What CartPilot uses at ``version``, with the capability versions it speaks (none listed:
    any, for our own extension, which versions apart from the protocol)."""
    ucp = {CHECKOUT: (version,), FULFILLMENT: (version,), ORDER: (version,)}
    if version != LEGACY_VERSION:  # 2026-01-11 has no catalog capability
        ucp |= {CATALOG_SEARCH: (version,), CATALOG_LOOKUP: (version,)}
    return {**ucp, ORDER_CANCEL: (), ORDER_RETURN: ()}


def negotiate_version(
    merchant_url: str, business_version: str, supported: Mapping[str, str], ours: Sequence[str]
) -> tuple[str, str | None]:
    """The version to speak, and the URL of its profile when it is not the one at hand."""
    offered = {business_version, *supported}
    common = [version for version in ours if version in offered]
    if not common and not supported and business_version < SUPPORTED_VERSIONS_SINCE:
        common = [version for version in ours if version <= business_version]
    if not common:
        raise MerchantRejected(
            f"merchant {merchant_url} speaks UCP {', '.join(sorted(offered, reverse=True))}; "
            f"CartPilot speaks UCP {' and '.join(ours)}: no version in common",
            code="version_unsupported",
        )
    chosen = max(common)
    if chosen != business_version and chosen in supported:
        return chosen, supported[chosen]
    return chosen, None


def max_age(cache_control: str | None) -> float | None:
    for directive in (cache_control or "").split(","):
        name, _, value = directive.strip().partition("=")
        if name.lower() == "max-age":
            try:
                return max(0.0, float(value.strip().strip('"')))
            except ValueError:
                return None
    return None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_secure(url: str, what: str) -> str:
    """overview.md: UCP runs over HTTPS. Plain HTTP is accepted on loopback only (a local merchant)."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and _loopback(parts.hostname or "")):
        return url.rstrip("/")
    raise MerchantRejected(f"{what} {url} is not an HTTPS URL", code="insecure_url")


@dataclass(frozen=True)
class _Fetched:
    document: Mapping[str, Any]
    ttl: float


@dataclass(frozen=True)
class _Cached:
    profile: MerchantProfile
    expires: float


class MerchantDiscovery:
    """Merchant profiles, discovered, negotiated and cached; thread-safe, nothing fetched until asked."""

    def __init__(
        self,
        *,
        versions: Sequence[str] = SUPPORTED_VERSIONS,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | None = None,
        clock: Callable[[], float] = time.monotonic,
        min_ttl: float = MIN_PROFILE_TTL,
    ) -> None:
        self.versions = tuple(sorted(versions, reverse=True))
        self._transport = transport
        self._timeout = timeout or httpx.Timeout(connect=2.0, read=5.0, write=5.0, pool=2.0)
        self._clock = clock
        self._min_ttl = min_ttl
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None

    def profile(self, merchant_url: str) -> MerchantProfile:
        """The merchant's negotiated profile, from the cache while it is fresh."""
        merchant_url = require_secure(merchant_url, "merchant")
        now = self._clock()
        with self._lock:
            cached = self._cache.get(merchant_url)
        if cached is not None and cached.expires > now:
            return cached.profile
        profile, ttl = self._discover(merchant_url)
        with self._lock:
            self._cache[merchant_url] = _Cached(profile, self._clock() + ttl)
        return profile

    def forget(self, merchant_url: str | None = None) -> None:
        with self._lock:
            if merchant_url is None:
                self._cache.clear()
            else:
                self._cache.pop(merchant_url.rstrip("/"), None)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # --- machinery -------------------------------------------------------------------------------

    def _discover(self, merchant_url: str) -> tuple[MerchantProfile, float]:
        root = self._fetch(merchant_url + PROFILE_PATH)
        ucp = root.document.get("ucp")
        if not isinstance(ucp, Mapping) or not isinstance(ucp.get("version"), str):
            raise MerchantRejected(
                f"merchant {merchant_url}: {PROFILE_PATH} declares no ucp.version", code="profile_malformed"
            )
        supported = ucp.get("supported_versions")
        supported_versions = (
            {str(v): str(url) for v, url in supported.items() if isinstance(url, str)}
            if isinstance(supported, Mapping)
            else {}
        )
        version, leaf_url = negotiate_version(
            merchant_url, str(ucp["version"]), supported_versions, self.versions
        )
        fetched = root if leaf_url is None else self._fetch(require_secure(leaf_url, "profile"))
        codec = codec_for(version)
        try:
            document = codec.read_profile(fetched.document)
        except MalformedAnswer as error:
            raise MerchantRejected(
                f"merchant {merchant_url}: its UCP {version} profile cannot be read: {error}",
                code="profile_malformed",
            ) from error
        if leaf_url is not None and document.version != version:
            raise MerchantRejected(
                f"merchant {merchant_url}: the profile for UCP {version} declares {document.version}",
                code="profile_malformed",
            )
        if document.rest_endpoint is None:
            raise MerchantRejected(
                f"merchant {merchant_url} binds no REST endpoint for dev.ucp.shopping at UCP {version}",
                code="transport_unsupported",
            )
        capabilities = codec.offers(document, platform_capabilities(version))
        if CHECKOUT not in capabilities:
            raise MerchantRejected(
                f"merchant {merchant_url} offers no checkout CartPilot can use at UCP {version}",
                code="capabilities_incompatible",
            )
        profile = MerchantProfile(
            merchantUrl=merchant_url,
            version=version,
            endpoint=require_secure(document.rest_endpoint, "REST endpoint"),
            capabilities=capabilities,
            paymentHandlers=document.payment_handlers,
        )
        log.info("merchant %s: UCP %s, %d capabilities", merchant_url, version, len(capabilities))
        return profile, min(root.ttl, fetched.ttl)

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    timeout=self._timeout,
                    transport=self._transport,
                    # overview.md, "Fetching": implementations MUST NOT follow redirects on profiles.
                    follow_redirects=False,
                    headers={"Accept": "application/json", "User-Agent": f"cartpilot/{__version__}"},
                )
            return self._client

    def _fetch(self, url: str) -> _Fetched:
        try:
            response = self._http().get(url)
        except httpx.TransportError as error:
            raise MerchantUnavailable(f"cannot fetch {url}: {type(error).__name__}") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise MerchantUnavailable(f"{url} answered {status}")
        if not 200 <= status < 300:
            why = "redirects, and profiles must not" if 300 <= status < 400 else f"answers {status}"
            raise MerchantRejected(
                f"{url} {why}: not a UCP profile", status_code=status, code="profile_unreachable"
            )
        try:
            document = json.loads(response.content)
        except ValueError:
            document = None
        if not isinstance(document, Mapping):
            raise MerchantRejected(f"{url} is not a JSON object", code="profile_malformed")
        age = max_age(response.headers.get("Cache-Control"))
        return _Fetched(document, max(self._min_ttl, age if age is not None else self._min_ttl))
