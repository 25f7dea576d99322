"""Plan snapshots: what a record that fixes a plan carries, signed with the key ring.

Someone who can write to the audit table can rebuild a consistent chain, but cannot vouch
for a plan the backend never signed. The HMAC is over goal, plan id and plan hash, under a
domain tag of its own so a snapshot signature can never pass as an approval link.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cartpilot.kernel.keyring import KeyRing

if TYPE_CHECKING:
    from cartpilot.plans.model import Plan


class SignatureInvalid(Exception):
    """A plan snapshot signature that does not match what it claims to sign."""


class SigningKeyUnknown(SignatureInvalid):
    """Signed with a key the ring no longer holds: neither provably good nor provably forged."""


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


def signed_plan_detail(goal_id: str, plan: Plan, keyring: KeyRing) -> dict[str, Any]:
    """What a record that fixes a plan carries: a readable summary and the snapshot's signature.

    The record's ``planHash`` is the hash of the full plan (recipient included); the summary
    here holds nothing personal, so masking leaves it, and the signature, intact.
    """
    plan_hash = plan.plan_hash()
    signature = sign_plan_snapshot(
        PlanSnapshotClaims(goal_id=goal_id, plan_id=plan.planId, plan_hash=plan_hash), keyring
    )
    summary = plan.summary
    return {
        "planId": plan.planId,
        "total": summary.total.model_dump(mode="json"),
        "items": [f"{item.quantity} x {item.itemId}" for item in summary.items],
        "steps": [f"{step.id} {step.action.value}" for step in plan.steps],
        "promptHash": plan.planner.promptHash,
        "planSignature": {**signature, "planId": plan.planId},
    }
