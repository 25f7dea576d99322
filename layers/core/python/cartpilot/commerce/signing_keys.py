"""The platform's request-signing key ring: the current key signs, the previous ones still verify.

signatures.md, "Key Rotation": publish the new key, start signing with it, keep accepting the old
one for a grace period (at least 7 days), then remove it. The ring lives in one secret::

    {"keys": [{"kid": "...", "jwk": {private JWK}, "createdAt": "2026-04-08T00:00:00Z",
               "status": "current" | "previous" | "retired"}]}

Exactly one key is ``current`` (it signs once it has been published for a while, see
``SigningKeyRing.signing_key``); ``previous`` keys are still published in the platform profile's
``signing_keys`` (merchants keep verifying what they signed); ``retired`` keys are published no
more and keep only their public half, for whoever must explain an old signature. ``rotate`` makes
a new current key, demotes the current one and retires a previous key once the key that replaced
it has signed for the grace period; ``retire`` removes a compromised key at once.
"""

from __future__ import annotations

import datetime
import itertools
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Protocol

from cartpilot.commerce.signatures import SigningKey, public_key_from_jwk, sign_request

# signatures.md, "Key Rotation": old keys are accepted for a grace period of at least 7 days.
ROTATION_GRACE: Final = datetime.timedelta(days=7)
# signatures.md: "Rotate keys every 90 days".
ROTATION_PERIOD: Final = datetime.timedelta(days=90)
# signatures.md, "Key Rotation": publish the new key first, then start signing with it. A new key
# reaches merchants once our API's cached ring (5 minutes) and their cached copy of our profile
# (max-age 5 minutes) have both expired; until then the key it replaces keeps signing.
PUBLICATION_DELAY: Final = datetime.timedelta(minutes=15)


class KeyStatus(StrEnum):
    CURRENT = "current"
    PREVIOUS = "previous"
    RETIRED = "retired"


class SigningKeysMissing(ValueError):
    """The secret holds no usable ring yet (a new stack's placeholder): ``cartpilot keys rotate`` fills it."""


@dataclass(frozen=True)
class SigningKeyRing:
    """The newest key, the keys still published beside it (newest first), and when the newest was made."""

    current: SigningKey
    previous: tuple[SigningKey, ...] = ()
    current_since: datetime.datetime | None = None

    def signing_key(
        self, now: datetime.datetime | None = None, *, delay: datetime.timedelta = PUBLICATION_DELAY
    ) -> SigningKey:
        """The key to sign with: the newest, once merchants can have seen it in our profile;
        until then the key it replaced (a ring of one key signs with it at once)."""
        moment = now or datetime.datetime.now(datetime.UTC)
        if self.previous and self.current_since is not None and moment - self.current_since < delay:
            return self.previous[0]
        return self.current

    def published(self) -> list[dict[str, str]]:
        """The profile's ``signing_keys``: public JWKs of the current key, then the previous ones."""
        return [key.public_jwk() for key in (self.current, *self.previous)]

    def public_keys(self) -> dict[str, dict[str, str]]:
        """kid -> public JWK, what a verifier of our signatures looks keys up in."""
        return {jwk["kid"]: jwk for jwk in self.published()}

    @classmethod
    def from_secret(cls, secret: Mapping[str, Any]) -> SigningKeyRing:
        entries = _entries(secret)
        if not entries:
            raise SigningKeysMissing("the signing-keys secret holds no keys yet: run 'cartpilot keys rotate'")
        current = [entry for entry in entries if entry.status is KeyStatus.CURRENT]
        if len(current) != 1:
            raise ValueError(f"the signing-keys secret must have exactly one current key, not {len(current)}")
        previous = sorted(
            (entry for entry in entries if entry.status is KeyStatus.PREVIOUS),
            key=lambda entry: entry.created_at,
            reverse=True,
        )
        return cls(
            current=SigningKey.from_secret(current[0].jwk),
            previous=tuple(SigningKey.from_secret(entry.jwk) for entry in previous),
            current_since=current[0].created_at,
        )


class SigningKeySource(Protocol):
    """Where the ring comes from (Secrets Manager on AWS, memory in tests)."""

    def load(self) -> SigningKeyRing: ...


@dataclass(frozen=True)
class RingSigner:
    """Signs a request with whichever key the ring says signs now (a ``RequestSigner`` of
    ``commerce/http.py``); the source's own cache decides how often the ring is read."""

    source: SigningKeySource

    def __call__(
        self, *, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> dict[str, str]:
        key = self.source.load().signing_key()
        return sign_request(method=method, url=url, headers=headers, body=body, key=key)


@dataclass(frozen=True)
class _Entry:
    kid: str
    jwk: Mapping[str, Any]
    created_at: datetime.datetime
    status: KeyStatus

    def to_json(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "jwk": dict(self.jwk),
            "createdAt": _timestamp(self.created_at),
            "status": self.status.value,
        }


def _timestamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _entries(secret: Mapping[str, Any]) -> list[_Entry]:
    raw = secret.get("keys")
    if not isinstance(raw, list):
        raise ValueError("the signing-keys secret must hold a 'keys' list")
    entries: list[_Entry] = []
    for item in raw:
        if not isinstance(item, Mapping):
            raise ValueError("each entry of the signing-keys secret must be an object")
        jwk = item.get("jwk")
        kid = item.get("kid")
        if not isinstance(jwk, Mapping) or not isinstance(kid, str) or jwk.get("kid") != kid:
            raise ValueError(f"entry {kid!r} of the signing-keys secret needs a JWK with the same kid")
        try:
            status = KeyStatus(str(item.get("status")))
            created_at = datetime.datetime.fromisoformat(str(item.get("createdAt")))
        except ValueError:
            raise ValueError(
                f"entry {kid!r} needs a status (current|previous|retired) and createdAt"
            ) from None
        if created_at.tzinfo is None:
            created_at = created_at.replace(tzinfo=datetime.UTC)
        entries.append(_Entry(kid=kid, jwk=jwk, created_at=created_at, status=status))
    kids = [entry.kid for entry in entries]
    if len(set(kids)) != len(kids):
        raise ValueError("the signing-keys secret names a kid twice")
    return entries


def _existing_entries(secret: Mapping[str, Any] | None) -> list[_Entry]:
    """The entries of a ring, or none for a new secret's placeholder (anything that is not a ring)."""
    if not isinstance(secret, Mapping) or not isinstance(secret.get("keys"), list):
        return []
    return _entries(secret)


def new_key_id(now: datetime.datetime) -> str:
    """Dated, so a profile reader sees which key is which; random, so two rotations never collide."""
    return f"cartpilot-{now.astimezone(datetime.UTC):%Y%m%d}-{secrets.token_hex(3)}"


def rotate(
    secret: Mapping[str, Any] | None,
    *,
    now: datetime.datetime | None = None,
    kid: str | None = None,
    grace: datetime.timedelta = ROTATION_GRACE,
) -> dict[str, Any]:
    """The secret after one rotation: a new current key; the old current key becomes previous.

    A previous key is retired (unpublished, its private half dropped) only once the key that replaced
    it has been current for ``grace``, so signatures merchants received during the overlap keep
    verifying; a previous key younger than that stays published beside the others. Retired entries
    from earlier rotations are dropped. Anything that is not a ring (a new secret's placeholder)
    becomes a ring of one key.
    """
    moment = now or datetime.datetime.now(datetime.UTC)
    entries = _existing_entries(secret)
    fresh = SigningKey.generate(kid or new_key_id(moment))
    if any(entry.kid == fresh.kid for entry in entries):
        raise ValueError(f"key {fresh.kid} is already in the ring")
    # When each key stopped being current: when the next newer key was created.
    replaced_at = _replacement_times(entries)
    rotated: list[_Entry] = [
        _Entry(kid=fresh.kid, jwk=fresh.to_secret(), created_at=moment, status=KeyStatus.CURRENT)
    ]
    for entry in entries:
        if entry.status is KeyStatus.CURRENT:
            rotated.append(_with_status(entry, KeyStatus.PREVIOUS))
        elif entry.status is KeyStatus.PREVIOUS:
            overlap_over = moment - replaced_at.get(entry.kid, moment) >= grace
            rotated.append(_retired(entry) if overlap_over else entry)
    return {"keys": [entry.to_json() for entry in rotated]}


def retire(secret: Mapping[str, Any], kid: str) -> dict[str, Any]:
    """The secret with ``kid`` unpublished at once (signatures.md, "Key Compromise Response").

    The current key cannot be retired this way: rotate first, then retire the old one.
    """
    entries = _entries(secret)
    target = next((entry for entry in entries if entry.kid == kid), None)
    if target is None:
        raise ValueError(f"key {kid} is not in the ring")
    if target.status is KeyStatus.CURRENT:
        raise ValueError(f"key {kid} signs now: rotate to a new key first, then retire it")
    return {"keys": [(_retired(entry) if entry.kid == kid else entry).to_json() for entry in entries]}


def _replacement_times(entries: list[_Entry]) -> dict[str, datetime.datetime]:
    ordered = sorted(entries, key=lambda entry: entry.created_at)
    return {older.kid: newer.created_at for older, newer in itertools.pairwise(ordered)}


def _with_status(entry: _Entry, status: KeyStatus) -> _Entry:
    return _Entry(kid=entry.kid, jwk=entry.jwk, created_at=entry.created_at, status=status)


def _retired(entry: _Entry) -> _Entry:
    # A retired key signs nothing and verifies nothing of ours: its private half has no use left.
    public = {name: value for name, value in entry.jwk.items() if name != "d"}
    public_key_from_jwk(public)  # still a well-formed key
    return _Entry(kid=entry.kid, jwk=public, created_at=entry.created_at, status=KeyStatus.RETIRED)


def new_ring_secret(*, now: datetime.datetime | None = None, kid: str | None = None) -> dict[str, Any]:
    """A ring of one fresh key, for a new stack (the local stack creates its secret with it)."""
    return rotate(None, now=now, kid=kid)
