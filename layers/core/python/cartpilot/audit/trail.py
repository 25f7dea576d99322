"""Appending to a goal's audit chain: masked, linked to the record before, and never overwritten.

Each append reads the newest record, builds the next one over it and inserts it on the
condition that its place in the chain is free. A racing writer that took the place first
makes this one back off a little and build again on the new head.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from cartpilot.audit.chain import GENESIS_HASH, AuditRecord, hash_record_body
from cartpilot.audit.ports import AuditRecords, AuditSlotTaken
from cartpilot.audit.privacy import mask_pii
from cartpilot.kernel.clock import utc_now_iso
from cartpilot.kernel.observability import logger

_MAX_APPEND_ATTEMPTS = 16
_BACKOFF_CAP_SECONDS = 0.05


class AuditContention(RuntimeError):
    """Too many writers raced for the same chain; the caller fails and its retry appends."""


class AuditTrail:
    def __init__(self, records: AuditRecords, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self._records = records
        self._sleep = sleep

    def append(
        self,
        goal_id: str,
        *,
        actor: str,
        event: str,
        status: str | None = None,
        plan_hash: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> AuditRecord:
        masked = mask_pii(detail or {})
        for attempt in range(_MAX_APPEND_ATTEMPTS):
            last = self._records.latest(goal_id)
            body = {
                "goalId": goal_id,
                "seq": (last.seq + 1) if last else 1,
                "at": utc_now_iso(),
                "actor": actor,
                "event": event,
                "status": status,
                "planHash": plan_hash,
                "detail": masked,
                "prevHash": last.hash if last else GENESIS_HASH,
            }
            record = AuditRecord(**body, hash=hash_record_body(AuditRecord(**body, hash="").body()))
            try:
                self._records.insert(record)
            except AuditSlotTaken:
                # Jittered, so racing writers spread out instead of colliding again.
                self._sleep(random.uniform(0, min(_BACKOFF_CAP_SECONDS, 0.002 * 2**attempt)))
                continue
            # The trail, mirrored to the logs when debugging; the same masked detail, nothing more.
            logger.debug(
                "audit record appended",
                extra={
                    "goalId": goal_id,
                    "seq": record.seq,
                    "event": event,
                    "actor": actor,
                    "detail": masked,
                },
            )
            return record
        raise AuditContention(f"could not append to the audit chain of {goal_id}: too much contention")

    def records(self, goal_id: str) -> list[AuditRecord]:
        return self._records.all(goal_id)
