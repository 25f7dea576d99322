"""The published public keys of plan signatures: every key that ever signed, kept as long as the audit.

A rotation makes a new KMS key current and never removes a published one, so a record signed
before any number of rotations still verifies. The document served at ``GET /audit/keys`` (and
accepted from a pinned file by ``cartpilot audit --verify --public-keys FILE``) is
``{"keys": [{"kid", "alg", "publicKey"}]}`` with the key as base64 DER (SubjectPublicKeyInfo).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from pydantic import BaseModel, ConfigDict

from cartpilot.audit.snapshots import PLAN_SIGNATURE_ALGORITHM


class PublishedKey(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    kid: str
    alg: str = PLAN_SIGNATURE_ALGORITHM
    publicKey: str


class PublishedKeys(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    keys: list[PublishedKey]


class KeyRegistry(Protocol):
    """Where public keys are published (a write-once bucket on AWS)."""

    def publish(self, kid: str, public_key_der: bytes) -> None:
        """Publishes the key once; publishing a key already there changes nothing."""
        ...

    def all(self) -> dict[str, bytes]:
        """Every published key: key id -> DER, the first version published of each."""
        ...


def published_keys(registry: KeyRegistry) -> PublishedKeys:
    return PublishedKeys(
        keys=[
            PublishedKey(kid=kid, publicKey=base64.b64encode(der).decode())
            for kid, der in sorted(registry.all().items())
        ]
    )


class PlanSignatureVerifier:
    """Checks plan signatures against published keys only: no secret, no call to KMS."""

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        self._keys: dict[str, ec.EllipticCurvePublicKey] = {}
        for kid, der in keys.items():
            key = load_der_public_key(der)
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise ValueError(f"published key {kid!r} is not an elliptic-curve key")
            self._keys[kid] = key

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> PlanSignatureVerifier:
        parsed = PublishedKeys.model_validate(document)
        return cls({key.kid: base64.b64decode(key.publicKey) for key in parsed.keys})

    def knows(self, kid: str) -> bool:
        return kid in self._keys

    def verifies(self, kid: str, message: bytes, signature: bytes) -> bool:
        key = self._keys.get(kid)
        if key is None:
            return False
        try:
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True
