"""The brand's rollout settings: how far goals may go, and for whom."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cartpilot.plans.verdicts import RiskTier

USER_ID_PATTERN = r"^[A-Za-z0-9_.@\-]{1,128}$"
MAX_PILOT_USERS = 500


class RolloutStage(StrEnum):
    # No goals accepted at all.
    OFF = "off"
    # Plans are made, priced and validated; nothing mutating ever runs.
    READ_ONLY = "read-only"
    # Mutating steps only for the pilot users and a stable share of all users.
    PILOT = "pilot"
    ALL = "all"


class RolloutSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    stage: RolloutStage = RolloutStage.ALL
    pilotUsers: list[str] = Field(default_factory=list, max_length=MAX_PILOT_USERS)
    pilotPercent: int = Field(default=0, ge=0, le=100)
    # Stops every mutating step not yet started, whatever the stage.
    killSwitch: bool = False

    @field_validator("pilotUsers")
    @classmethod
    def _plain_user_ids(cls, users: list[str]) -> list[str]:
        bad = [u for u in users if not re.fullmatch(USER_ID_PATTERN, u)]
        if bad:
            raise ValueError(f"pilot user ids must match {USER_ID_PATTERN}")
        # Sorted and unique, so the same list is the same document.
        return sorted(set(users))


class PlannedOnlyReason(StrEnum):
    READ_ONLY = "ROLLOUT_READ_ONLY"
    PILOT_EXCLUDED = "ROLLOUT_PILOT_EXCLUDED"
    KILL_SWITCH = "ROLLOUT_KILL_SWITCH"
    # The stage went to off between intake and validation.
    OFF = "ROLLOUT_OFF"


class PlannedOnly(BaseModel):
    """What a planned-only goal would have done: the route and tier its checked plan earned."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    reason: PlannedOnlyReason
    wouldRoute: Literal["auto", "approve"]
    tier: RiskTier
