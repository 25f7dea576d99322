"""Signing plan snapshots with the brand's asymmetric KMS key; publishing each key's public half.

``key_id`` is the key's alias: a rotation points the alias at a new key, and the signature names
the key that actually signed (KMS returns its ARN). Before a key's first signature leaves this
process, its public key is published in the key registry, so no record can carry a signature that
verifiers cannot check.
"""

from __future__ import annotations

from typing import Any

from cartpilot.audit.public_keys import KeyRegistry
from cartpilot.audit.snapshots import PLAN_SIGNATURE_ALGORITHM


class KeyRotatedWhileSigning(RuntimeError):
    """The alias moved between signing and publishing; the caller fails and its retry signs again."""


def _key_id(arn_or_id: object) -> str:
    return str(arn_or_id).rsplit("/", 1)[-1]


class KmsPlanSigner:
    def __init__(self, kms: Any, key_id: str, registry: KeyRegistry) -> None:
        self._kms = kms
        self._key_id = key_id
        self._registry = registry
        self._published: set[str] = set()

    def sign(self, message: bytes) -> tuple[str, bytes]:
        signed = self._kms.sign(
            KeyId=self._key_id,
            Message=message,
            MessageType="RAW",
            SigningAlgorithm=PLAN_SIGNATURE_ALGORITHM,
        )
        kid = _key_id(signed["KeyId"])
        if kid not in self._published:
            # Asked by the alias, as the role's policy grants it; the answer names its key.
            public = self._kms.get_public_key(KeyId=self._key_id)
            if _key_id(public["KeyId"]) != kid:
                raise KeyRotatedWhileSigning(f"the plan-signing key moved from {kid} while signing")
            self._registry.publish(kid, public["PublicKey"])
            self._published.add(kid)
        signature: bytes = signed["Signature"]
        return kid, signature
