"""The three rollout gates: taking goals, letting a checked plan run, and each mutating step."""

from __future__ import annotations

from cartpilot.rollout.flags import RolloutFlags
from cartpilot.rollout.model import PlannedOnlyReason, RolloutStage


class RolloutHalted(RuntimeError):
    """The brand's kill switch is on: a mutating step that has not started yet must not start.

    Raised from the shared step execution; the flow then undoes what ran (``COMPENSATED``,
    reason ``ROLLOUT_HALTED``)."""


class RolloutOff(RuntimeError):
    """The brand's rollout stage is ``off``: no goal is accepted."""


class RolloutGate:
    def __init__(self, flags: RolloutFlags) -> None:
        self._flags = flags

    def check_accepting(self) -> None:
        """Gate 1, at intake: raises ``RolloutOff`` at stage ``off``."""
        if self._flags.stage() is RolloutStage.OFF:
            raise RolloutOff("this brand is not taking orders right now (rollout stage off)")

    def planned_only_reason(self, user_id: str) -> PlannedOnlyReason | None:
        """Gate 2, at validation: why this user's checked plan may not run, or None when it may."""
        if self._flags.kill_switch():
            return PlannedOnlyReason.KILL_SWITCH
        stage = self._flags.stage()
        if stage is RolloutStage.OFF:
            return PlannedOnlyReason.OFF
        if stage is RolloutStage.READ_ONLY:
            return PlannedOnlyReason.READ_ONLY
        if not self._flags.pilot_member(user_id):
            return PlannedOnlyReason.PILOT_EXCLUDED
        return None

    def may_mutate(self, user_id: str) -> bool:
        return self.planned_only_reason(user_id) is None

    def check_step(self, user_id: str | None = None) -> None:
        """Gate 3, before a mutating step that has not started: raises ``RolloutHalted`` when the
        kill switch is on or, given the goal's user, when the stage no longer lets that user's plan
        run (dropped to read-only or off, or out of the pilot, since the plan was checked)."""
        if self._flags.kill_switch():
            raise RolloutHalted("the brand's kill switch is on: no further mutating step starts")
        if user_id is not None and (reason := self.planned_only_reason(user_id)) is not None:
            raise RolloutHalted(f"the brand's rollout no longer lets this plan run ({reason.value})")
