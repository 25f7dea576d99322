"""Deployment settings read from the environment, once per warm container."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass


class MissingSetting(RuntimeError):
    """A function was started without an environment variable it needs."""


def _require(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise MissingSetting(f"environment variable {name} is not set")
    return value


@dataclass(frozen=True)
class Settings:
    goals_table: str
    audit_table: str
    idempotency_table: str
    counters_table: str
    link_signing_secret_id: str
    notify_topic_arn: str | None
    state_machine_arn: str | None
    approval_base_url: str | None


@functools.cache
def settings() -> Settings:
    return Settings(
        goals_table=_require("GOALS_TABLE"),
        audit_table=_require("AUDIT_TABLE"),
        idempotency_table=_require("IDEMPOTENCY_TABLE"),
        counters_table=os.environ.get("COUNTERS_TABLE", ""),
        link_signing_secret_id=os.environ.get("LINK_SIGNING_SECRET_ID", ""),
        notify_topic_arn=os.environ.get("NOTIFY_TOPIC_ARN") or None,
        state_machine_arn=os.environ.get("STATE_MACHINE_ARN") or None,
        approval_base_url=os.environ.get("APPROVAL_BASE_URL") or None,
    )


def reset_settings() -> None:
    """Forget cached settings; the local stack and tests change the environment between stacks."""
    settings.cache_clear()
