"""Verifying 2026-04-08 request signatures: RFC 9421 with an RFC 9530 Content-Digest.

signatures.md "REST Request Verification": take ``keyid`` from ``Signature-Input``, find it among the
signer's ``signing_keys`` (the profile named by ``UCP-Agent``), check the body digest, rebuild the
signature base and verify the ECDSA signature (raw ``r||s``, P-256 required, P-384 optional; the
algorithm comes from the key's curve). The signature must cover the components signatures.md
"REST Request Signing" requires. ``created`` is optional: replay protection is the idempotency key's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import http_sfv
from http_message_signatures import HTTPMessageVerifier, InvalidSignature, MappingKeyResolver
from http_message_signatures.algorithms import ECDSA_P256_SHA256, ECDSA_P384_SHA384, HTTPSignatureAlgorithm
from http_message_signatures.digests import ContentDigest

from cartpilot_local.merchant.jwk import UnusableKey, public_key_from_jwk
from cartpilot_local.merchant.protocol import JsonObject, TransportError

_ALGORITHMS: dict[str, type[HTTPSignatureAlgorithm]] = {
    "P-256": ECDSA_P256_SHA256,
    "P-384": ECDSA_P384_SHA384,
}
_STATE_CHANGING = frozenset({"POST", "PUT", "DELETE", "PATCH"})


class KeyNotFound(Exception):
    """The signature names a key the signer's profile does not publish."""

    def __init__(self, kid: str) -> None:
        super().__init__(kid)
        self.kid = kid


@dataclass(frozen=True)
class SignedRequest:
    """What verification reads of a request; ``headers`` are (name, value) pairs in order."""

    method: str
    url: str
    headers: Sequence[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key.lower() == name]
        return ", ".join(values) if values else None


class _HeaderLines:
    """The header view the library reads: every field line, in order."""

    def __init__(self, lines: Sequence[tuple[str, str]]) -> None:
        self._lines = list(lines)

    def items(self) -> list[tuple[str, str]]:
        return list(self._lines)

    def __iter__(self) -> Any:
        return iter(name for name, _ in self._lines)

    def __contains__(self, name: object) -> bool:
        return any(key.lower() == str(name).lower() for key, _ in self._lines)


@dataclass(frozen=True)
class _Message:
    method: str
    url: str
    headers: _HeaderLines


class _Verifier(HTTPMessageVerifier):
    require_created = False  # signatures.md: `created` is OPTIONAL


def verify_request(request: SignedRequest, signing_keys: Iterable[JsonObject]) -> str:
    """Returns the key id that signed ``request``; raises TransportError or KeyNotFound."""
    signature_input = request.header("signature-input")
    if signature_input is None or request.header("signature") is None:
        raise TransportError(401, "signature_missing", "the request carries no Signature-Input and Signature")
    label, components, params = _parse_signature_input(signature_input)
    kid = params.get("keyid")
    if not isinstance(kid, str):
        raise TransportError(401, "signature_invalid", f"signature {label} names no keyid")
    jwk = next((key for key in signing_keys if key.get("kid") == kid), None)
    if jwk is None:
        raise KeyNotFound(kid)
    algorithm = _ALGORITHMS.get(str(jwk.get("crv")))
    if jwk.get("kty") != "EC" or algorithm is None:
        raise TransportError(
            400, "algorithm_unsupported", f"key {kid} is not an ES256 or ES384 key (kty EC, crv P-256/P-384)"
        )
    if "alg" in params and params["alg"] != algorithm.algorithm_id:
        raise TransportError(
            400, "algorithm_unsupported", f"signature algorithm {params['alg']} is not supported"
        )
    if request.body:
        _check_digest(request)
    _check_coverage(request, components)
    try:
        public_key = public_key_from_jwk(jwk)
    except UnusableKey as exc:
        raise TransportError(422, "profile_malformed", str(exc)) from None
    verifier = _Verifier(
        signature_algorithm=algorithm,
        key_resolver=MappingKeyResolver(public_keys={kid: public_key}, private_keys={}),
    )
    message = _Message(request.method, request.url, _HeaderLines(request.headers))
    try:
        verifier.verify(message, max_age=None)
    except InvalidSignature as exc:
        raise TransportError(
            401, "signature_invalid", f"Request signature verification failed for key kid={kid}: {exc}"
        ) from None
    return kid


def _parse_signature_input(value: str) -> tuple[str, list[str], dict[str, Any]]:
    dictionary = http_sfv.Dictionary()
    try:
        dictionary.parse(value.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise TransportError(
            401, "signature_invalid", "Signature-Input is not an RFC 8941 dictionary"
        ) from None
    if len(dictionary) != 1:
        raise TransportError(401, "signature_invalid", "exactly one signature is expected")
    ((label, member),) = dictionary.items()
    if not isinstance(member, http_sfv.InnerList):
        raise TransportError(401, "signature_invalid", f"Signature-Input member {label} is not an inner list")
    components = [str(item.value) for item in member]
    return label, components, dict(member.params)


def _check_digest(request: SignedRequest) -> None:
    digest = request.header("content-digest")
    if digest is None:
        raise TransportError(
            401, "signature_missing", "a request with a body needs a Content-Digest (signatures.md, RFC 9530)"
        )
    try:
        members = http_sfv.Dictionary()
        members.parse(digest.encode("ascii"))
        if "sha-256" not in members:
            raise TransportError(400, "digest_mismatch", "Content-Digest must carry a sha-256 digest")
        ContentDigest.verify(digest, request.body)
    except (InvalidSignature, ValueError, UnicodeEncodeError):
        raise TransportError(400, "digest_mismatch", "the body does not match its Content-Digest") from None


def _check_coverage(request: SignedRequest, components: list[str]) -> None:
    required = ["@method", "@authority", "@path"]
    if urlsplit(request.url).query:
        required.append("@query")
    if request.header("ucp-agent") is not None:
        required.append("ucp-agent")
    if request.method.upper() in _STATE_CHANGING and request.header("idempotency-key") is not None:
        required.append("idempotency-key")
    if request.body:
        required += ["content-digest", "content-type"]
    missing = [name for name in required if name not in components]
    if missing:
        raise TransportError(
            401,
            "signature_invalid",
            f'the signature must cover {", ".join(missing)} (signatures.md "REST Request Signing")',
        )
