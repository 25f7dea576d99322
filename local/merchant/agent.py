"""Who is calling: the ``UCP-Agent`` header, the platform profile it names, and what both sides speak.

overview.md "Negotiation Protocol": businesses MUST fetch and validate the platform profile named in
``UCP-Agent`` (RFC 8941 Dictionary, ``profile="<url>"``), check its protocol version on every
request, and compute the capability intersection. Failures are transport errors with the codes and
statuses of the version's text (2026-04-08 overview.md "Error Codes"; 2026-01-11 defines no codes
for them, so the same codes and statuses are used there, in that version's error shape).
"""

from __future__ import annotations

import ipaddress
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import http_sfv
import httpx

from cartpilot_local.merchant.protocol import V2026_01_11, JsonObject, TransportError
from cartpilot_local.merchant.specs import SpecLibrary

PROFILE_TTL_SECONDS = 60.0  # overview.md "Fetching": a minimum TTL floor of 60 seconds
PROFILE_CACHE_SIZE = 64
PROFILE_TIMEOUT_SECONDS = 3.0
_DATE_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")  # overview.md "Pre-release Versions": dated releases only

# Raw profile bytes for a URL; raises ProfileUnreachable when they cannot be had.
ProfileFetcher = Callable[[str], bytes]


class ProfileUnreachable(Exception):
    """The profile URL was valid but fetching it failed (timeout, refused, non-2xx, a redirect)."""


def http_profile_fetcher(url: str) -> bytes:
    """GET the profile with a short timeout, following no redirects (overview.md "Fetching")."""
    try:
        response = httpx.get(url, timeout=PROFILE_TIMEOUT_SECONDS, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise ProfileUnreachable(f"fetching {url} failed: {type(exc).__name__}") from exc
    if response.status_code != 200:
        raise ProfileUnreachable(f"{url} answered {response.status_code}")
    return response.content


class ProfileCache:
    """A small LRU of fetched profile bytes with the spec's TTL floor.

    A profile may be fetched again before its TTL runs out only when a signature names a key it
    lacks, and then once per TTL per origin (overview.md "Fetching", rule 6).
    """

    def __init__(self, fetch: ProfileFetcher, clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._forced: dict[str, float] = {}

    def get(self, url: str) -> bytes:
        now = self._clock()
        with self._lock:
            cached = self._entries.get(url)
            if cached is not None and now - cached[0] < PROFILE_TTL_SECONDS:
                self._entries.move_to_end(url)
                return cached[1]
        return self._store(url, self._fetch(url), now)

    def refresh(self, url: str) -> bytes | None:
        """Fetches again if this origin has not been force-refreshed within the TTL; else None."""
        origin = _origin(url)
        now = self._clock()
        with self._lock:
            last = self._forced.get(origin)
            if last is not None and now - last < PROFILE_TTL_SECONDS:
                return None
            self._forced[origin] = now
        return self._store(url, self._fetch(url), now)

    def _store(self, url: str, content: bytes, now: float) -> bytes:
        with self._lock:
            self._entries[url] = (now, content)
            self._entries.move_to_end(url)
            while len(self._entries) > PROFILE_CACHE_SIZE:
                self._entries.popitem(last=False)
        return content

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._forced.clear()


@dataclass(frozen=True)
class BusinessCapability:
    name: str
    version: str
    extends: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlatformProfile:
    """A validated platform profile: its URL, protocol version, capabilities and signing keys."""

    url: str
    version: str
    capabilities: Mapping[str, frozenset[str]]  # name -> capability versions offered
    signing_keys: tuple[JsonObject, ...]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def profile_url_from_header(header: str | None) -> str:
    """signatures.md "Parsing Rules": an RFC 8941 Dictionary whose ``profile`` is a quoted HTTPS URL.

    Plain HTTP is accepted for loopback hosts only, where the sandbox and a local platform run.
    """
    if not header:
        raise TransportError(400, "invalid_profile_url", "the UCP-Agent header is missing")
    dictionary = http_sfv.Dictionary()
    try:
        dictionary.parse(header.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise TransportError(400, "invalid_profile_url", "UCP-Agent is not an RFC 8941 dictionary") from None
    member = dictionary.get("profile")
    value = getattr(member, "value", None)
    if type(value) is not str:  # a Token or a number is not a quoted string
        raise TransportError(400, "invalid_profile_url", 'UCP-Agent needs profile="<https URL>"')
    parts = urlsplit(value)
    host = parts.hostname or ""
    secure = parts.scheme == "https" or (parts.scheme == "http" and _loopback(host))
    if not host or not secure:
        raise TransportError(400, "invalid_profile_url", "the profile URL must be an absolute https URL")
    return value


class AgentGate:
    """Admits requests whose platform profile is reachable, valid and of a version we speak."""

    def __init__(
        self,
        spec: SpecLibrary,
        capabilities: Mapping[str, BusinessCapability],
        cache: ProfileCache,
    ) -> None:
        self.spec = spec
        self.version = spec.version
        self.capabilities = capabilities
        self.cache = cache

    def admit(self, header: str | None) -> PlatformProfile:
        url = profile_url_from_header(header)
        try:
            raw = self.cache.get(url)
        except ProfileUnreachable as exc:
            raise TransportError(
                424, "profile_unreachable", f"could not fetch the platform profile: {exc}"
            ) from None
        return self._validated(url, raw)

    def refreshed(self, profile: PlatformProfile) -> PlatformProfile | None:
        """The profile fetched anew (for a key it lacked), or None when refreshing is not allowed now."""
        try:
            raw = self.cache.refresh(profile.url)
        except ProfileUnreachable as exc:
            raise TransportError(
                424, "profile_unreachable", f"could not fetch the platform profile: {exc}"
            ) from None
        return None if raw is None else self._validated(profile.url, raw)

    def _validated(self, url: str, raw: bytes) -> PlatformProfile:
        try:
            document = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise TransportError(422, "profile_malformed", "the platform profile is not JSON") from None
        ucp = document.get("ucp") if isinstance(document, dict) else None
        version = ucp.get("version") if isinstance(ucp, dict) else None
        if not isinstance(ucp, dict) or not isinstance(version, str) or not _DATE_VERSION.match(version):
            raise TransportError(
                422, "profile_malformed", "the platform profile declares no ucp.version (YYYY-MM-DD)"
            )
        # The version decides which schema the rest of the profile follows, so it is checked first.
        if not self._speaks(version):
            raise TransportError(
                422,
                "version_unsupported",
                f"Protocol version {version} is not supported. This business implements version {self.version}.",
            )
        problems = (
            self.spec.problems(document, _platform_profile_schema(self.version), "response", "read")
            if self.spec.available
            else []
        )
        if problems:
            where, what = problems[0]
            raise TransportError(
                422,
                "profile_malformed",
                f"the platform profile violates the {self.version} schema at {where}: {what}",
            )
        return PlatformProfile(
            url=url,
            version=version,
            capabilities=_capabilities(ucp.get("capabilities")),
            signing_keys=tuple(k for k in document.get("signing_keys", []) if isinstance(k, dict)),
        )

    def _speaks(self, platform_version: str) -> bool:
        if self.version == V2026_01_11:
            # 2026-01-11 overview.md "Version Negotiation": platform version <= business version.
            return platform_version <= self.version
        # 2026-04-08 overview.md "Request-Time Validation": the business's version or a key of its
        # supported_versions; this sandbox speaks one version per process and lists no others.
        return platform_version == self.version

    def negotiate(self, platform: PlatformProfile) -> dict[str, str]:
        """overview.md "Intersection Algorithm": active capability name -> version."""
        active: dict[str, str] = {}
        for name, ours in self.capabilities.items():
            theirs = platform.capabilities.get(name)
            if theirs is None:
                continue
            if self.version == V2026_01_11:
                active[name] = ours.version  # 2026-01-11 intersects by name only
            elif ours.version in theirs:
                active[name] = ours.version
        pruned = True
        while pruned:
            pruned = False
            for name in list(active):
                parents = self.capabilities[name].extends
                if parents and not any(parent in active for parent in parents):
                    del active[name]
                    pruned = True
        return active


def _capabilities(declared: Any) -> dict[str, frozenset[str]]:
    """Name -> versions, from 2026-04-08's object of arrays or 2026-01-11's array of entries."""
    found: dict[str, set[str]] = {}
    if isinstance(declared, dict):
        for name, entries in declared.items():
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, dict) and isinstance(entry.get("version"), str):
                    found.setdefault(name, set()).add(entry["version"])
    elif isinstance(declared, list):
        for entry in declared:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                found.setdefault(entry["name"], set()).add(str(entry.get("version", "")))
    return {name: frozenset(versions) for name, versions in found.items()}


def _platform_profile_schema(version: str) -> JsonObject:
    profile = "https://ucp.dev/discovery/profile_schema.json"
    if version != V2026_01_11:
        return {"$ref": profile + "#/$defs/platform_profile"}
    # 2026-01-11's discovery schema describes the business profile at /.well-known/ucp; its platform
    # profile example has no `services`, so a platform profile is held to the same parts without it.
    return {
        "type": "object",
        "required": ["ucp"],
        "properties": {
            "ucp": {
                "type": "object",
                "required": ["version", "capabilities"],
                "properties": {
                    "version": {"$ref": "https://ucp.dev/schemas/ucp.json#/$defs/version"},
                    "services": {"$ref": "https://ucp.dev/schemas/ucp.json#/$defs/services"},
                    "capabilities": {
                        "type": "array",
                        "items": {"$ref": "https://ucp.dev/schemas/capability.json#/$defs/discovery"},
                    },
                },
            },
            "payment": {"$ref": profile + "#/properties/payment"},
            "signing_keys": {"$ref": profile + "#/properties/signing_keys"},
        },
    }
