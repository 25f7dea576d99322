"""Plan signing and audit anchors in memory: an ECDSA P-256 key per generation, as KMS holds them,
a key registry, and write-once anchors."""

from __future__ import annotations

import itertools

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cartpilot.audit.chain import AuditAnchor, AuditRecord
from cartpilot.audit.ports import AuditSlotTaken
from cartpilot.audit.public_keys import PlanSignatureVerifier

_kids = itertools.count(1)


class InMemoryKeyRegistry:
    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}

    def publish(self, kid: str, public_key_der: bytes) -> None:
        self.keys.setdefault(kid, public_key_der)

    def all(self) -> dict[str, bytes]:
        return dict(self.keys)


class LocalPlanSigner:
    """Signs with the current key; ``rotate`` makes a new key current, as moving the KMS alias does."""

    def __init__(self, registry: InMemoryKeyRegistry | None = None) -> None:
        self.registry = registry or InMemoryKeyRegistry()
        self.rotate()

    def rotate(self) -> str:
        self.kid = f"plan-key-{next(_kids)}"
        self._key = ec.generate_private_key(ec.SECP256R1())
        return self.kid

    def sign(self, message: bytes) -> tuple[str, bytes]:
        der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.registry.publish(self.kid, der)
        return self.kid, self._key.sign(message, ec.ECDSA(hashes.SHA256()))

    def verifier(self) -> PlanSignatureVerifier:
        return PlanSignatureVerifier(self.registry.all())


class InMemoryAuditAnchors:
    """Write-once anchors as the Object Lock bucket keeps them; ``overwrite`` adds a version, as a
    PutObject without its condition would."""

    def __init__(self) -> None:
        self.versions: dict[tuple[str, int], list[AuditRecord]] = {}

    def claim(self, record: AuditRecord) -> None:
        place = (record.goalId, record.seq)
        if place in self.versions:
            raise AuditSlotTaken(f"{record.goalId}#{record.seq}")
        self.versions[place] = [record]

    def overwrite(self, record: AuditRecord) -> None:
        self.versions.setdefault((record.goalId, record.seq), []).append(record)

    def anchored(self, goal_id: str, seq: int) -> AuditRecord | None:
        found = self.versions.get((goal_id, seq))
        return found[0] if found else None

    def all(self, goal_id: str) -> list[AuditAnchor]:
        return [
            AuditAnchor(seq=seq, hash=found[0].hash, versions=len(found), at=found[0].at)
            for (gid, seq), found in sorted(self.versions.items())
            if gid == goal_id
        ]
