"""Appending to a goal's audit chain: masked, linked to the record before, and never overwritten.

Each append reads the newest record, builds the next one over it, anchors it in write-once storage
on the condition that its place in the chain has no anchor yet, and then inserts it in the table.
The anchor decides who holds a place: a racing writer that anchored it first makes this one back
off a little and build again on the new head. Anchoring first means every record in the table has
its anchor; a writer stopped between the two leaves an anchor without a record, which the next
append copies into the table before going on.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from typing import Any

from cartpilot.audit.chain import GENESIS_HASH, AuditAnchor, AuditRecord, hash_record_body
from cartpilot.audit.ports import AuditAnchors, AuditRecords, AuditSlotTaken
from cartpilot.audit.privacy import mask_pii
from cartpilot.kernel.clock import utc_now_iso
from cartpilot.kernel.observability import logger

_MAX_APPEND_ATTEMPTS = 16
_BACKOFF_CAP_SECONDS = 0.05


class AuditContention(RuntimeError):
    """Too many writers raced for the same chain; the caller fails and its retry appends."""


class AuditTrail:
    def __init__(
        self,
        records: AuditRecords,
        *,
        anchors: AuditAnchors | None = None,
        sleep: Callable[[float], None] = time.sleep,
        release: str | None = None,
    ) -> None:
        self._records = records
        self._anchors = anchors
        self._sleep = sleep
        # The release this code belongs to (``cartpilot.release``), on every record it writes.
        self._release = release

    def append(
        self,
        goal_id: str,
        *,
        actor: str,
        event: str,
        status: str | None = None,
        plan_hash: str | None = None,
        detail: dict[str, Any] | None = None,
        reuse_after: int | None = None,
    ) -> AuditRecord:
        """Appends the record. ``reuse_after``: the seq the goal's chain head points at; a newest record
        past it that says exactly this is returned instead of a second one (an attempt that wrote
        its record and stopped before pointing the goal at it, now retried)."""
        masked = mask_pii(detail or {})
        for attempt in range(_MAX_APPEND_ATTEMPTS):
            last = self._records.latest(goal_id)
            if (
                reuse_after is not None
                and last is not None
                and last.seq > reuse_after
                and (last.actor, last.event, last.status, last.planHash, last.detail)
                == (actor, event, status, plan_hash, masked)
            ):
                return last
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
                "release": self._release,
            }
            record = AuditRecord(**body, hash=hash_record_body(AuditRecord(**body, hash="").body()))
            try:
                self._anchor(record)
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

    def _anchor(self, record: AuditRecord) -> None:
        if self._anchors is None:
            return
        try:
            self._anchors.claim(record)
        except AuditSlotTaken:
            anchored = self._anchors.anchored(record.goalId, record.seq)
            if anchored is not None:
                # Restores a record whose writer stopped after anchoring it; if the table already
                # holds that place, this changes nothing.
                with contextlib.suppress(AuditSlotTaken):
                    self._records.insert(anchored)
            raise

    def records(self, goal_id: str) -> list[AuditRecord]:
        return self._records.all(goal_id)

    def anchors(self, goal_id: str) -> list[AuditAnchor] | None:
        """The goal's anchors, or None where this trail keeps none (unit tests' in-memory trails)."""
        return None if self._anchors is None else self._anchors.all(goal_id)
