"""Idempotency keys and the Powertools persistence layer they are stored in."""

from __future__ import annotations

import functools
import hashlib
from typing import TYPE_CHECKING

from cartpilot.settings import settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer


def step_idempotency_key(goal_id: str, step_id: str, purpose: str = "execute") -> str:
    """Deterministic per (goal, step, purpose): every retry of a step sends the same key to the merchant."""
    digest = hashlib.sha256(f"{goal_id}\x1f{step_id}\x1f{purpose}".encode()).hexdigest()
    return f"cp-{digest[:40]}"


@functools.cache
def persistence_layer(purpose: str) -> DynamoDBPersistenceLayer:
    """One layer per purpose, created on first use (not at import).

    Powertools configures a persistence layer once, with the first config it sees;
    functions that share a process (the local stack) must not share one across configs.
    """
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    return DynamoDBPersistenceLayer(table_name=settings().idempotency_table)
