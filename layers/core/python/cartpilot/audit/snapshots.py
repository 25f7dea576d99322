"""Plan snapshots: what a record that fixes a plan carries, signed with the brand's plan-signing key.

The key is asymmetric (KMS, ECC_NIST_P256 with ECDSA_SHA_256): the functions that fix plans may sign,
and anyone holding the published public keys can verify, so an auditor never needs a secret, and
someone who can write to the audit table cannot vouch for a plan the backend never signed. The key is
not the approval-link key: a function that signs snapshots cannot mint approval links.

What is signed is the snapshot as the record shows it (plan id, total, items, steps, prompt hash, and
the release that made the plan where it has one),
bound to the goal and to the hash of the full plan, so rewriting a total or an item under a genuine
signature breaks it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import TYPE_CHECKING, Any, Protocol

from cartpilot.audit.privacy import mask_pii

if TYPE_CHECKING:
    from cartpilot.plans.model import Plan

PLAN_SIGNATURE_ALGORITHM = "ECDSA_SHA_256"
_PLAN_SNAPSHOT_TAG = "cartpilot.plan-snapshot.v2"
# The fields of a record's detail that the signature covers, besides the record's goal and plan hash.
SNAPSHOT_FIELDS = ("planId", "total", "items", "steps", "promptHash")
# Every record of these events fixes a plan and must carry a signature over it.
SIGNED_EVENTS = frozenset({"plan.created", "approval.requested", "plan.reduced", "approval.approved"})


class PlanSigner(Protocol):
    """Signs with the current plan-signing key (KMS on AWS); returns the key id and the signature."""

    def sign(self, message: bytes) -> tuple[str, bytes]: ...


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def snapshot_message(goal_id: str, plan_hash: str | None, detail: dict[str, Any]) -> bytes:
    """The bytes a plan signature covers. Small whatever the plan's size (KMS signs up to 4 KB raw):
    the snapshot enters as its SHA-256."""
    snapshot = {field: detail.get(field) for field in SNAPSHOT_FIELDS}
    if detail.get("release") is not None:
        # Only where the record names one: snapshots signed before releases were named still verify.
        snapshot["release"] = detail["release"]
    return _canonical(
        {
            "tag": _PLAN_SNAPSHOT_TAG,
            "goalId": goal_id,
            "planHash": plan_hash,
            "snapshot": hashlib.sha256(_canonical(snapshot)).hexdigest(),
        }
    )


def encode_signature(signature: bytes) -> str:
    return base64.urlsafe_b64encode(signature).decode().rstrip("=")


def decode_signature(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signed_plan_detail(goal_id: str, plan: Plan, signer: PlanSigner) -> dict[str, Any]:
    """What a record that fixes a plan carries: a readable summary and the signature over it.

    The record's ``planHash`` is the hash of the full plan (recipient included); the summary holds
    nothing personal, and is masked before signing anyway, so the record shows exactly what was signed.
    """
    plan_hash = plan.plan_hash()
    summary = plan.summary
    snapshot = mask_pii(
        {
            "planId": plan.planId,
            "total": summary.total.model_dump(mode="json"),
            "items": [f"{item.quantity} x {item.itemId}" for item in summary.items],
            "steps": [f"{step.id} {step.action.value}" for step in plan.steps],
            "promptHash": plan.planner.promptHash,
            **({"release": plan.release} if plan.release else {}),
        }
    )
    kid, signature = signer.sign(snapshot_message(goal_id, plan_hash, snapshot))
    return {
        **snapshot,
        "planSignature": {
            "alg": PLAN_SIGNATURE_ALGORITHM,
            "kid": kid,
            "sig": encode_signature(signature),
            "planId": plan.planId,
        },
    }
