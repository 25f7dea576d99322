"""Signed shopper-view links.

A link carries an expiry and the id of the key that signed it; the signature is HMAC-SHA256 over
(purpose, goal id, shopper, expiry) with the view-link key ring (``kernel.keyring``; a secret of its
own, apart from the approval-link ring, so the functions that sign view links cannot sign approval
links), so a link cannot be moved to another goal or shopper, stretched in time, or passed off as an
approval link: the purpose is part of every signed message, and an approval link's message never
starts with it. Dropping a key revokes its links.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote, urlencode

from cartpilot.kernel.clock import utc_now
from cartpilot.kernel.keyring import KeyRing, KeySource

# Domain separation from approval links, should the two key rings ever be the same secret.
PURPOSE = "cartpilot.shopper-view.v1"
VIEW_ROUTE = "/shoppers/goals/"
# A link handed out has at least this long left (or the brand's whole time, when that is shorter).
MIN_LEFT = timedelta(days=1)


class ViewLinkInvalid(Exception):
    """Forged, tampered, for another goal or shopper, or signed by a key no longer trusted."""


class ViewLinkExpired(Exception):
    pass


@dataclass(frozen=True)
class ViewClaims:
    goal_id: str
    user_id: str
    expires_at: int


@dataclass(frozen=True)
class ViewLinkParams:
    """The link's query as it arrives: untrusted text until verified."""

    exp: str
    kid: str
    sig: str

    def expires_at(self) -> int | None:
        """Epoch seconds, or None. ASCII digits only, at most twelve (past the year 30000)."""
        if not (self.exp.isascii() and self.exp.isdigit() and len(self.exp) <= 12):
            return None
        return int(self.exp)


def _message(claims: ViewClaims) -> bytes:
    return "\x1f".join([PURPOSE, claims.goal_id, claims.user_id, str(claims.expires_at)]).encode()


def _sign(key: bytes, claims: ViewClaims) -> str:
    digest = hmac.new(key, _message(claims), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def view_path(goal_id: str) -> str:
    return f"{VIEW_ROUTE}{quote(goal_id, safe='')}"


def sign_view_link(base_url: str, claims: ViewClaims, keyring: KeyRing) -> str:
    query = urlencode(
        {
            "exp": claims.expires_at,
            "kid": keyring.current,
            "sig": _sign(keyring.keys[keyring.current], claims),
        }
    )
    return f"{base_url.rstrip('/')}{view_path(claims.goal_id)}?{query}"


def verify_view_link(claims: ViewClaims, *, kid: str, sig: str, keyring: KeyRing, now: int) -> None:
    """Raises unless the signature is ours and current; expiry is checked only after the signature,
    so an expired forgery says nothing about which links exist."""
    key = keyring.keys.get(kid)
    if key is None:
        raise ViewLinkInvalid("the link was signed with a key that is no longer trusted")
    if not hmac.compare_digest(_sign(key, claims).encode(), sig.encode()):
        raise ViewLinkInvalid("the link's signature does not match")
    if now >= claims.expires_at:
        raise ViewLinkExpired("the link has expired")


class ViewLinks:
    """Issues a shopper's view link for one goal: where receipts and outcome notices point."""

    def __init__(
        self,
        *,
        keys: KeySource,
        base_url: str,
        ttl_seconds: int,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._keys = keys
        self._base_url = base_url
        self._ttl = timedelta(seconds=ttl_seconds)
        self._clock = clock

    def url_for(self, goal_id: str, user_id: str, *, since: datetime | None = None) -> str:
        """A link valid for the brand's time from ``since`` (default: now). ``GET /goals/{id}`` passes
        the goal's last change, so the goal reads the same until it changes; a link that would be
        close to expiring is issued from now instead."""
        now = self._clock()
        expires = (since or now) + self._ttl
        if expires < now + min(self._ttl, MIN_LEFT):
            expires = now + self._ttl
        claims = ViewClaims(goal_id=goal_id, user_id=user_id, expires_at=int(expires.timestamp()))
        return sign_view_link(self._base_url, claims, self._keys.keyring())
