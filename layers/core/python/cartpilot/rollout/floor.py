"""The rollout on AWS: the operators' settings, held down by a floor no alarm can roll back.

AppConfig rolls a deployment back when one of its environment's monitors is in ALARM while it runs.
The anomaly alarms are those monitors (a bad flag change must roll back), and the guard drops the
brand to ``read-only`` exactly while one of them fires: deployed to the monitored environment, its
own drop would be rolled back. So the flags live in two environments of one profile:

- the *live* environment, monitored, deployed gradually with a bake: what the operators set;
- the *floor* environment, with no monitors, deployed all at once with no bake: only ever a stage
  and a kill switch that hold the live settings down. Nothing watches it, so nothing rolls it back.

Functions read both and obey the stricter: the lower stage (off < read-only < pilot < all) and
either kill switch. A change that restricts goes to the floor first, so it is in force at once and
stays; a change that relaxes goes to the live environment first (gradual, monitored: an anomaly
rolls it back), then lifts the floor to match.
"""

from __future__ import annotations

from typing import Any, Protocol

from aws_lambda_powertools.utilities.feature_flags.base import StoreProvider

from cartpilot.kernel.observability import logger
from cartpilot.rollout.flags import flags_document, settings_from_document
from cartpilot.rollout.model import RolloutSettings, RolloutStage
from cartpilot.rollout.ports import RolloutStore

# From the most to the least restrictive.
STAGE_ORDER: tuple[RolloutStage, ...] = (
    RolloutStage.OFF,
    RolloutStage.READ_ONLY,
    RolloutStage.PILOT,
    RolloutStage.ALL,
)
NO_FLOOR = RolloutSettings()


def stricter_stage(a: RolloutStage, b: RolloutStage) -> RolloutStage:
    return a if STAGE_ORDER.index(a) <= STAGE_ORDER.index(b) else b


def held_down(live: RolloutSettings, floor: RolloutSettings) -> RolloutSettings:
    """The settings in force: the live ones, at the stricter stage, halted if either says so."""
    return live.model_copy(
        update={
            "stage": stricter_stage(live.stage, floor.stage),
            "killSwitch": live.killSwitch or floor.killSwitch,
        }
    )


def floor_of(settings: RolloutSettings) -> RolloutSettings:
    """What the floor holds for ``settings``: its stage and kill switch, nothing else."""
    return RolloutSettings(stage=settings.stage, killSwitch=settings.killSwitch)


class _FlagsStore(RolloutStore, Protocol):
    flags: StoreProvider


class HeldDownFlags(StoreProvider):
    """The flags document in force, for Powertools ``FeatureFlags`` (the rollout gate reads this)."""

    def __init__(self, live: StoreProvider, floor: StoreProvider) -> None:
        self._live = live
        self._floor = floor

    @property
    def get_raw_configuration(self) -> dict[str, Any]:
        return self.get_configuration()

    def get_configuration(self) -> dict[str, Any]:
        live = settings_from_document(self._live.get_configuration())
        floor = settings_from_document(self._floor.get_configuration())
        return flags_document(held_down(live, floor))


class FlooredRolloutStore:
    """``RolloutStore`` over the live and the floor stores (``AppConfigRolloutStore`` each)."""

    def __init__(self, live: _FlagsStore, floor: _FlagsStore) -> None:
        self.live = live
        self.floor = floor
        self.flags = HeldDownFlags(live.flags, floor.flags)

    def read(self) -> RolloutSettings:
        return held_down(self.live.read(), self.floor.read())

    def write(self, settings: RolloutSettings, *, actor: str, reason: str) -> None:
        floor = self.floor.read()
        wanted = floor_of(settings)
        restricts = held_down(floor, wanted) != floor
        if restricts:
            # In force at once and beyond any rollback; the live environment follows if it can.
            self.floor.write(wanted, actor=actor, reason=reason)
            try:
                self.live.write(settings, actor=actor, reason=reason)
            except Exception as exc:
                # AppConfig runs one deployment per environment at a time: a flag change still
                # deploying (or rolling back) refuses this one. The floor is what holds.
                logger.warning(
                    "live rollout settings not updated; the floor holds the restriction",
                    extra={"error": type(exc).__name__},
                )
            return
        # Relaxing: gradual and monitored first; the floor is lifted only once that is under way.
        self.live.write(settings, actor=actor, reason=reason)
        if wanted != floor:
            self.floor.write(wanted, actor=actor, reason=reason)
