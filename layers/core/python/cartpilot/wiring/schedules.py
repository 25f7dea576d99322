"""Schedules in the composition root: their table, the desk, the sweep, and the clock they read.

The clock is the schedules' own, not the process's: on AWS it is the system clock; the local stack
installs one that tests can move forward (``POST /_local/clock``), so a monthly recurrence runs in
seconds while everything else (approval expiries, undo windows, audit times) keeps real time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from cartpilot.kernel.clock import utc_now
from cartpilot.kernel.errors import MissingSetting
from cartpilot.wiring import settings as config

if TYPE_CHECKING:
    from cartpilot.schedules.desk import ScheduleDesk
    from cartpilot.schedules.firing import OccurrenceFiring
    from cartpilot.schedules.ports import ScheduleStore

_clock: Callable[[], datetime] = utc_now


def schedule_clock() -> datetime:
    """What time it is for schedules."""
    return _clock()


def use_schedule_clock(clock: Callable[[], datetime] | None) -> None:
    """Makes schedules read ``clock`` (None: the system clock again). The local stack's hook."""
    global _clock
    _clock = clock or utc_now


@functools.cache
def schedule_store() -> ScheduleStore:
    from cartpilot import wiring
    from cartpilot.adapters.aws.schedules_table import DynamoDBScheduleStore

    name = config.schedules_table()
    if not name:
        raise MissingSetting("environment variable SCHEDULES_TABLE is not set")
    return DynamoDBScheduleStore(wiring._table(name))


def schedule_desk() -> ScheduleDesk:
    from cartpilot import wiring
    from cartpilot.schedules.desk import ScheduleDesk

    return ScheduleDesk(
        store=schedule_store(),
        goals=wiring.goals(),
        intake=wiring.intake(),
        audit=wiring.audit(),
        brand=wiring.brand(),
        signer=wiring.plan_signer,
        clock=schedule_clock,
    )


def occurrence_firing() -> OccurrenceFiring:
    from cartpilot import wiring
    from cartpilot.schedules.firing import OccurrenceFiring

    return OccurrenceFiring(
        store=schedule_store(),
        intake=wiring.intake(),
        audit=wiring.audit(),
        brand=wiring.brand(),
        clock=schedule_clock,
    )


def reset_schedules() -> None:
    schedule_store.cache_clear()
