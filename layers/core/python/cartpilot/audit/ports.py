"""What the audit trail needs from storage: read the newest record, insert a new one, read them all."""

from __future__ import annotations

from typing import Protocol

from cartpilot.audit.chain import AuditRecord


class AuditSlotTaken(Exception):
    """Another writer already holds this (goalId, seq): records are write-once."""


class AuditRecords(Protocol):
    def latest(self, goal_id: str) -> AuditRecord | None:
        """The record with the highest seq, read consistently; None for an empty chain."""
        ...

    def insert(self, record: AuditRecord) -> None:
        """Writes the record only if its (goalId, seq) is free; raises ``AuditSlotTaken`` otherwise."""
        ...

    def all(self, goal_id: str) -> list[AuditRecord]:
        """Every record of the goal, in seq order."""
        ...
