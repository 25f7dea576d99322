"""CartPilot's platform profile on loopback, for commands that talk to a merchant with no API running.

A UCP merchant fetches the profile that ``UCP-Agent`` names and checks our request signatures
against its keys, so ``cartpilot plan`` serves the profile itself, for as long as it runs, with a
signing key made for the occasion and never stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cartpilot.commerce.platform_profile import (
    CURRENT_VERSION,
    SUPPORTED_VERSIONS,
    platform_profile,
    profile_url,
)
from cartpilot.commerce.signing_keys import RingSigner, SigningKeyRing, new_ring_secret
from cartpilot.commerce.ucp import PlatformIdentity
from cartpilot_local.servers import serve_in_thread


class EphemeralSigningKeys:
    """One fresh key ring in memory: the SigningKeySource port for a single command's run."""

    def __init__(self) -> None:
        self._ring = SigningKeyRing.from_secret(new_ring_secret())

    def load(self) -> SigningKeyRing:
        return self._ring


class ProfileServer:
    """Serves our profile documents; they name their own URLs, known once the port is bound."""

    def __init__(self, keys: EphemeralSigningKeys) -> None:
        self.keys = keys
        self.base_url = ""
        self.app = Starlette(
            routes=[
                Route("/.well-known/ucp", self.profile),
                Route("/.well-known/ucp/{version}", self.profile),
            ]
        )

    def documents(self) -> dict[str, dict[str, object]]:
        ring = self.keys.load()
        return {
            urlsplit(profile_url(self.base_url, version)).path: platform_profile(self.base_url, version, ring)
            for version in SUPPORTED_VERSIONS
        }

    async def profile(self, request: Request) -> Response:
        document = self.documents().get(request.url.path)
        if document is None:
            return JSONResponse(
                {"error": {"code": "NOT_FOUND", "message": "no profile here"}}, status_code=404
            )
        return Response(json.dumps(document), media_type="application/json")


@contextmanager
def served_platform() -> Iterator[PlatformIdentity]:
    """Our profiles on a free loopback port; yields the identity that names them and signs with their key."""
    keys = EphemeralSigningKeys()
    profiles = ProfileServer(keys)
    server = serve_in_thread(profiles.app)
    profiles.base_url = server.url
    try:
        yield PlatformIdentity.served_at(server.url, {CURRENT_VERSION: RingSigner(keys)})
    finally:
        server.stop()
