"""A UCP platform as a merchant meets it: a profile at a URL, and the keys its requests are signed with.

Independent of CartPilot's own signer: requests are signed here with the http-message-signatures
library directly (RFC 9421, ``Content-Digest`` per RFC 9530), following signatures.md "REST Request
Signing". The profile is served through the merchant's ``profile_fetcher``, so no network is used.

    platform = FakePlatform("2026-04-08")
    app = create_app(state, profile_fetcher=platform.fetch)
    client = TestClient(app)
    client.auth = platform.auth()          # UCP-Agent on every request, signed
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver
from http_message_signatures.algorithms import ECDSA_P256_SHA256

from cartpilot_local.merchant.agent import ProfileUnreachable
from cartpilot_local.merchant.jwk import SigningKey

PROFILE_URL = "https://platform.test/.well-known/ucp"
ALL_CAPABILITIES = (
    "dev.ucp.shopping.checkout",
    "dev.ucp.shopping.fulfillment",
    "dev.ucp.shopping.order",
    "dev.ucp.shopping.catalog.search",
    "dev.ucp.shopping.catalog.lookup",
    "com.cartpilot.order_cancel",
    "com.cartpilot.order_return",
)
_EXTENDS = {
    "dev.ucp.shopping.fulfillment": "dev.ucp.shopping.checkout",
    "com.cartpilot.order_cancel": "dev.ucp.shopping.order",
    "com.cartpilot.order_return": "dev.ucp.shopping.order",
}


@dataclass
class _Message:
    """What the signer reads and writes: an httpx request's method, URL and (writable) headers."""

    method: str
    url: str
    headers: httpx.Headers


@dataclass
class FakePlatform:
    version: str = "2026-04-08"
    url: str = PROFILE_URL
    capabilities: tuple[str, ...] = ALL_CAPABILITIES
    keys: list[SigningKey] = field(default_factory=lambda: [SigningKey.generate("platform")])
    documents: dict[str, Any] = field(default_factory=dict)  # other URLs this fake serves
    fetched: list[str] = field(default_factory=list)
    hidden_kids: set[str] = field(default_factory=set)  # keys that sign but are not published yet

    @property
    def key(self) -> SigningKey:
        """The key requests are signed with: the newest."""
        return self.keys[-1]

    def rotate(self, *, publish: bool = True) -> SigningKey:
        """A new signing key; the old one stays published (rotation with overlap) unless dropped."""
        new = SigningKey.generate("platform")
        self.keys.append(new)
        if not publish:
            self.hidden_kids.add(new.kid)
        return new

    def published_keys(self) -> list[dict[str, Any]]:
        return [key.public_jwk for key in self.keys if key.kid not in self.hidden_kids]

    def publish_all(self) -> None:
        self.hidden_kids.clear()

    # --- the profile -------------------------------------------------------------------------

    def profile(self) -> dict[str, Any]:
        if self.version <= "2026-01-11":  # that version's shape, and older ones
            return {
                "ucp": {
                    "version": self.version,
                    "capabilities": [self._capability_2026_01_11(name) for name in self.capabilities],
                },
                "payment": {"handlers": []},
                "signing_keys": self.published_keys(),
            }
        site = f"https://ucp.dev/{self.version}"
        return {
            "ucp": {
                "version": self.version,
                "services": {
                    "dev.ucp.shopping": [
                        {
                            "version": self.version,
                            "spec": f"{site}/specification/overview",
                            "transport": "rest",
                            "schema": f"{site}/services/shopping/rest.openapi.json",
                        }
                    ]
                },
                "capabilities": {name: [self._capability_2026_04_08(name)] for name in self.capabilities},
                "payment_handlers": {
                    "com.cartpilot.sandbox_tokenizer": [
                        {
                            "id": "sandbox_tokenizer",
                            "version": "2026-01-11",
                            "spec": "https://cartpilot.com/ucp/handlers/sandbox_tokenizer",
                            "schema": "https://cartpilot.com/ucp/handlers/sandbox_tokenizer/schema.json",
                            "available_instruments": [{"type": "card"}],
                        }
                    ]
                },
            },
            "signing_keys": self.published_keys(),
        }

    def _capability_2026_04_08(self, name: str) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "version": self.version,
            **self._urls(name, f"https://ucp.dev/{self.version}"),
        }
        if name in _EXTENDS:
            entry["extends"] = _EXTENDS[name]
        return entry

    def _capability_2026_01_11(self, name: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": name, "version": self.version, **self._urls(name, "https://ucp.dev")}
        if name in _EXTENDS:
            entry["extends"] = _EXTENDS[name]
        return entry

    @staticmethod
    def _urls(name: str, site: str) -> dict[str, str]:
        short = name.rsplit(".", 1)[-1]
        if name.startswith("com.cartpilot."):
            return {
                "spec": f"https://cartpilot.com/ucp/specification/{short}",
                "schema": f"https://cartpilot.com/ucp/schemas/{short}.json",
            }
        return {"spec": f"{site}/specification/{short}", "schema": f"{site}/schemas/shopping/{short}.json"}

    def fetch(self, url: str) -> bytes:
        """The merchant's profile fetcher: this platform's profile, or a document served by the test."""
        self.fetched.append(url)
        if url == self.url:
            return json.dumps(self.profile()).encode()
        if url in self.documents:
            document = self.documents[url]
            if isinstance(document, Exception):
                raise document
            return document if isinstance(document, bytes) else json.dumps(document).encode()
        raise ProfileUnreachable(f"{url} answered 404")

    def serve(self, url: str, document: Any) -> str:
        """Serves ``document`` (JSON, raw bytes, or an exception to raise) at ``url``."""
        self.documents[url] = document
        return url

    @staticmethod
    def unreachable(reason: str = "connection refused") -> ProfileUnreachable:
        return ProfileUnreachable(reason)

    # --- requests ----------------------------------------------------------------------------

    def agent_header(self, url: str | None = None) -> str:
        return f'profile="{url or self.url}"'

    def sign(
        self,
        request: httpx.Request,
        *,
        key: SigningKey | None = None,
        components: Iterable[str] | None = None,
    ) -> None:
        """Signs ``request`` in place as signatures.md "REST Request Signing" says."""
        key = key or self.key
        body = request.content
        covered = list(components) if components is not None else self.components(request)
        signer = HTTPMessageSigner(
            signature_algorithm=ECDSA_P256_SHA256,
            key_resolver=MappingKeyResolver(public_keys={}, private_keys={key.kid: key.private_key}),
        )
        signer.sign(
            _Message(request.method, str(request.url), request.headers),
            key_id=key.kid,
            label="sig1",
            include_alg=False,  # signatures.md: the algorithm follows from the key, not a parameter
            covered_component_ids=covered,
            body=body or None,
        )

    @staticmethod
    def components(request: httpx.Request) -> list[str]:
        covered = ["@method", "@authority", "@path"]
        if request.url.query:
            covered.append("@query")
        if "ucp-agent" in request.headers:
            covered.append("ucp-agent")
        if request.method in {"POST", "PUT", "DELETE", "PATCH"} and "idempotency-key" in request.headers:
            covered.append("idempotency-key")
        if request.content:
            covered += ["content-digest", "content-type"]
        return covered

    def auth(self, *, signed: bool = True, agent: str | None = None) -> httpx.Auth:
        """An httpx auth that names this platform in ``UCP-Agent`` and (by default) signs."""
        return _PlatformAuth(self, signed=signed, agent=agent)


class _PlatformAuth(httpx.Auth):
    requires_request_body = True

    def __init__(self, platform: FakePlatform, *, signed: bool, agent: str | None) -> None:
        self.platform = platform
        self.signed = signed
        self.agent = agent

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if "ucp-agent" not in request.headers:
            request.headers["UCP-Agent"] = self.agent or self.platform.agent_header()
        if self.signed and "signature" not in request.headers:
            self.platform.sign(request)
        yield request
