"""Idempotency keys the merchant sees: one per (goal, step, purpose), the same on every retry."""

from __future__ import annotations

import hashlib


def step_idempotency_key(goal_id: str, step_id: str, purpose: str = "execute") -> str:
    """Deterministic per (goal, step, purpose): every retry of a step sends the same key to the merchant."""
    digest = hashlib.sha256(f"{goal_id}\x1f{step_id}\x1f{purpose}".encode()).hexdigest()
    return f"cp-{digest[:40]}"
