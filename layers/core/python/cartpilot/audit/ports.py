"""What the audit trail needs from storage: the records table and the write-once anchors beside it."""

from __future__ import annotations

from typing import Protocol

from cartpilot.audit.chain import AuditAnchor, AuditRecord


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


class AuditAnchors(Protocol):
    """A copy of every record, written once where no function can change or remove it (S3 Object
    Lock on AWS). Claiming the anchor of a place in the chain is what takes that place."""

    def claim(self, record: AuditRecord) -> None:
        """Writes the record's anchor only if its (goalId, seq) has none; ``AuditSlotTaken`` otherwise."""
        ...

    def anchored(self, goal_id: str, seq: int) -> AuditRecord | None:
        """The record first anchored at this place, if any."""
        ...

    def all(self, goal_id: str) -> list[AuditAnchor]:
        """Every anchor of the goal, in seq order, each with the hash first written there."""
        ...
