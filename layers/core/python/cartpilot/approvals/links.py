"""Signed approval links.

A link carries the approval id, an expiry and the id of the key that signed it;
the signature is HMAC-SHA256 over (approval id, expiry, plan hash, approver, tier),
so a link cannot be moved to another approval, stretched in time, or reused for a
changed plan. The keys are the signing key ring (``kernel.keyring``); dropping a key
revokes its links.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlencode

from cartpilot.kernel.keyring import KeyRing


class LinkInvalid(Exception):
    """Forged, tampered or signed by a key that is no longer trusted."""


class LinkExpired(Exception):
    pass


@dataclass(frozen=True)
class LinkClaims:
    approval_id: str
    expires_at: int
    plan_hash: str
    approver: str
    tier: str


def _message(claims: LinkClaims) -> bytes:
    return "\x1f".join(
        [claims.approval_id, str(claims.expires_at), claims.plan_hash, claims.approver, claims.tier]
    ).encode()


def _sign(key: bytes, claims: LinkClaims) -> str:
    digest = hmac.new(key, _message(claims), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign_approval_link(base_url: str, claims: LinkClaims, keyring: KeyRing) -> str:
    query = urlencode(
        {
            "exp": claims.expires_at,
            "kid": keyring.current,
            "sig": _sign(keyring.keys[keyring.current], claims),
        }
    )
    return f"{base_url.rstrip('/')}/approvals/{claims.approval_id}?{query}"


def verify_approval_link(claims: LinkClaims, *, kid: str, sig: str, keyring: KeyRing, now: int) -> None:
    """Raises unless the signature is ours and current; checks expiry only after the signature."""
    key = keyring.keys.get(kid)
    if key is None:
        raise LinkInvalid("the link was signed with a key that is no longer trusted")
    if not hmac.compare_digest(_sign(key, claims), sig):
        raise LinkInvalid("the link's signature does not match")
    if now >= claims.expires_at:
        raise LinkExpired("the approval link has expired")
