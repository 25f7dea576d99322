"""Letting a request in: credentials, the platform's profile and version, and its signature.

Runs before any business logic, in the order a merchant's edge would: a configured API key or bearer
token (checkout-rest.md "Authentication"), then ``UCP-Agent`` (agent.py), then for 2026-04-08 the
RFC 9421 signature against the signing keys of the profile ``UCP-Agent`` names (signatures.md). A key
the cached profile lacks triggers one refetch per TTL (overview.md "Fetching", rule 6), which is
what lets a platform rotate keys.

2026-01-11 defines request signatures only for webhooks (order.md, ``Request-Signature``) and says
requests SHOULD be authenticated with standard headers, so a 2026-01-11 sandbox checks credentials
and ``UCP-Agent`` but no signature.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from cartpilot_local.merchant.agent import AgentGate, PlatformProfile
from cartpilot_local.merchant.protocol import V2026_04_08, TransportError
from cartpilot_local.merchant.signatures import KeyNotFound, SignedRequest, verify_request


class Admission:
    def __init__(self, gate: AgentGate, *, api_key: str | None = None) -> None:
        self.gate = gate
        self.api_key = api_key
        self.signed = gate.version == V2026_04_08

    def admit(
        self, method: str, url: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> PlatformProfile:
        request = SignedRequest(method=method, url=url, headers=headers, body=body)
        self._authenticate(request)
        profile = self.gate.admit(request.header("ucp-agent"))
        if self.signed:
            self._verify(request, profile)
        return profile

    def _authenticate(self, request: SignedRequest) -> None:
        if self.api_key is None:
            return
        authorization = request.header("authorization") or ""
        offered = request.header("x-api-key") or (
            authorization[len("Bearer ") :] if authorization.startswith("Bearer ") else None
        )
        if offered is None or not hmac.compare_digest(offered.encode(), self.api_key.encode()):
            raise TransportError(
                401,
                "unauthorized",
                "this merchant needs its API key (X-API-Key or Authorization: Bearer)",
                headers={"WWW-Authenticate": 'Bearer realm="ucp"'},
            )

    def _verify(self, request: SignedRequest, profile: PlatformProfile) -> None:
        try:
            verify_request(request, profile.signing_keys)
            return
        except KeyNotFound as missing:
            kid = missing.kid
        newer = self.gate.refreshed(profile)
        if newer is not None:
            try:
                verify_request(request, newer.signing_keys)
                return
            except KeyNotFound:
                pass
        raise TransportError(
            401, "key_not_found", f"key {kid} is not among the platform profile's signing_keys"
        )
