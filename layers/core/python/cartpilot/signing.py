"""Signed approval links.

A link carries the approval id, an expiry and the id of the key that signed it;
the signature is HMAC-SHA256 over (approval id, expiry, plan hash, approver, tier),
so a link cannot be moved to another approval, stretched in time, or reused for a
changed plan. Keys live in Secrets Manager as ``{"current": "k2", "keys": {"k1": "…", "k2": "…"}}``;
a rotation adds a key and moves ``current``, and dropping a key revokes its links.

The same key ring signs plan snapshots for the audit trail (HMAC over goal, plan id and
plan hash, under a separate domain tag so a snapshot signature can never pass as a link).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlencode


class LinkInvalid(Exception):
    """Forged, tampered or signed by a key that is no longer trusted."""


class LinkExpired(Exception):
    pass


class SignatureInvalid(Exception):
    """A plan snapshot signature that does not match what it claims to sign."""


class SigningKeyUnknown(SignatureInvalid):
    """Signed with a key the ring no longer holds: neither provably good nor provably forged."""


@dataclass(frozen=True)
class KeyRing:
    current: str
    keys: dict[str, bytes]

    @classmethod
    def from_secret(cls, secret: dict[str, object]) -> KeyRing:
        raw_keys = secret.get("keys")
        current = secret.get("current")
        if not isinstance(raw_keys, dict) or not isinstance(current, str) or current not in raw_keys:
            raise ValueError("the link-signing secret must hold 'current' and a 'keys' map containing it")
        return cls(
            current=current, keys={kid: base64.b64decode(str(value)) for kid, value in raw_keys.items()}
        )

    @staticmethod
    def new_secret(key_id: str = "k1") -> dict[str, object]:
        return {"current": key_id, "keys": {key_id: base64.b64encode(secrets.token_bytes(32)).decode()}}


class KeySource(Protocol):
    def keyring(self) -> KeyRing: ...


class SecretsManagerKeySource:
    """Reads the key ring through Powertools Parameters, cached for a few minutes per container."""

    def __init__(self, secret_id: str, max_age_seconds: int = 300) -> None:
        self._secret_id = secret_id
        self._max_age = max_age_seconds

    def keyring(self) -> KeyRing:
        # Imported here: Parameters loads boto3, which a handler should pay for on first use, not at import.
        from aws_lambda_powertools.utilities import parameters

        value = parameters.get_secret(self._secret_id, max_age=self._max_age)
        return KeyRing.from_secret(json.loads(value) if isinstance(value, str) else value)


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


PLAN_SIGNATURE_ALGORITHM = "HMAC-SHA256"
_PLAN_SNAPSHOT_TAG = "cartpilot.plan-snapshot.v1"


@dataclass(frozen=True)
class PlanSnapshotClaims:
    goal_id: str
    plan_id: str
    plan_hash: str


def _plan_message(claims: PlanSnapshotClaims) -> bytes:
    return "\x1f".join([_PLAN_SNAPSHOT_TAG, claims.goal_id, claims.plan_id, claims.plan_hash]).encode()


def _plan_mac(key: bytes, claims: PlanSnapshotClaims) -> str:
    digest = hmac.new(key, _plan_message(claims), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign_plan_snapshot(claims: PlanSnapshotClaims, keyring: KeyRing) -> dict[str, str]:
    """A signature an auditor holding the key ring can check: this backend vouched for this plan."""
    return {
        "alg": PLAN_SIGNATURE_ALGORITHM,
        "kid": keyring.current,
        "sig": _plan_mac(keyring.keys[keyring.current], claims),
    }


def verify_plan_snapshot(claims: PlanSnapshotClaims, *, kid: str, sig: str, keyring: KeyRing) -> None:
    key = keyring.keys.get(kid)
    if key is None:
        raise SigningKeyUnknown(
            f"the plan snapshot was signed with key {kid!r}, which the ring no longer holds"
        )
    if not hmac.compare_digest(_plan_mac(key, claims), sig):
        raise SignatureInvalid("the plan snapshot signature does not match")
