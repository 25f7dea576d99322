"""Where the rollout settings live: AppConfig on AWS, a file on the local stack."""

from __future__ import annotations

from typing import Protocol

from cartpilot.rollout.model import RolloutSettings


class RolloutStore(Protocol):
    def read(self) -> RolloutSettings:
        """The settings in force now (within the store's cache bound)."""
        ...

    def write(self, settings: RolloutSettings, *, actor: str, reason: str) -> None:
        """Makes these settings the ones in force."""
        ...
