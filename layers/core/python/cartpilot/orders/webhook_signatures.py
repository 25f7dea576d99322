"""Is an order-event webhook the merchant's? The signature check of each UCP version.

- 2026-04-08 (order.md, "Webhook Signature Verification"; signatures.md): RFC 9421 over the
  components signatures.md requires of a request (``@method @authority @path``, ``ucp-agent`` when
  sent, ``content-digest content-type`` for the body), the digest checked against the raw body, the
  key found by ``keyid`` among the ``signing_keys`` of the merchant's profile. Shared with our own
  request signing: ``cartpilot.commerce.signatures``.
- 2026-01-11 (order.md, "Webhook Signature Verification"): a detached JWS (RFC 7515 appendix F,
  optionally with RFC 7797's unencoded payload) over the raw body in ``Request-Signature``, its
  ``kid`` naming one of the merchant's ``signing_keys``. ES256 on P-256 or ES384 on P-384 only: the
  algorithm must be the one the key's curve implies, never what the token merely claims.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from jwcrypto import jwk as jose_jwk
from jwcrypto import jws as jose_jws
from jwcrypto.common import JWException

from cartpilot.commerce.platform_profile import CURRENT_VERSION, LEGACY_VERSION
from cartpilot.commerce.signatures import SignatureError, public_key_from_jwk, verify_request

REQUEST_SIGNATURE: Final = "request-signature"
_ALGORITHM_OF_CURVE: Final = {"P-256": "ES256", "P-384": "ES384"}
# A signature's ``created`` older than this is refused (the replay window of the webhook route).
SIGNATURE_MAX_AGE_SECONDS: Final = 300


def verify_webhook_signature(
    version: str,
    *,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    keys: Mapping[str, Mapping[str, Any]],
    now: int,
) -> str:
    """Checks the signature of a webhook POSTed to ``url`` as ``version`` says; returns the key id.

    ``headers`` are the request's fields with lower-case names; ``keys`` maps kid to the merchant's
    public JWK. Raises ``SignatureError`` (its code and status are what to answer).
    """
    if version == CURRENT_VERSION:
        return verify_request(
            method="POST",
            url=url,
            headers=headers,
            body=body,
            keys=keys,
            max_age_seconds=SIGNATURE_MAX_AGE_SECONDS,
            now=now,
        )
    if version == LEGACY_VERSION:
        return _verify_detached_jws(headers.get(REQUEST_SIGNATURE), body, keys)
    raise SignatureError("algorithm_unsupported", f"no webhook signature scheme for UCP {version}")


def _verify_detached_jws(token: str | None, body: bytes, keys: Mapping[str, Mapping[str, Any]]) -> str:
    if not token:
        raise SignatureError("signature_missing", "the webhook carries no Request-Signature")
    parts = token.strip().split(".")
    # Detached: the compact form with its payload left out (``header..signature``).
    if len(parts) != 3 or parts[1] != "" or not parts[0] or not parts[2]:
        raise SignatureError("signature_invalid", "Request-Signature is not a detached compact JWS")
    signed = jose_jws.JWS()
    try:
        signed.deserialize(token.strip())
        header = signed.jose_header
    except (JWException, ValueError, TypeError):
        raise SignatureError("signature_invalid", "Request-Signature cannot be read") from None
    kid = header.get("kid") if isinstance(header, Mapping) else None
    if not isinstance(kid, str) or not kid:
        raise SignatureError("signature_invalid", "the JWS header names no kid")
    published = keys.get(kid)
    if published is None:
        raise SignatureError("key_not_found", f"key {kid} is not among the merchant's signing_keys")
    public_key_from_jwk(published)  # refuses keys UCP does not sign with (RSA, other curves)
    expected = _ALGORITHM_OF_CURVE[str(published["crv"])]
    if header.get("alg") != expected:
        raise SignatureError(
            "algorithm_unsupported", f"key {kid} signs with {expected}, not {header.get('alg')}"
        )
    signed.allowed_algs = [expected]
    try:
        key = jose_jwk.JWK(**{name: published[name] for name in ("kty", "crv", "x", "y")})
        signed.verify(key, alg=expected, detached_payload=body)
    except (JWException, ValueError, TypeError, KeyError):
        raise SignatureError(
            "signature_invalid", f"Signature verification failed for key kid={kid}"
        ) from None
    return kid
