"""Standing mandates in the composition root: their budgets on the counters table, and the validator's check."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from cartpilot.kernel.errors import MissingSetting
from cartpilot.wiring import settings as config

if TYPE_CHECKING:
    from cartpilot.plans.mandate_budget import MandateBudget
    from cartpilot.plans.mandate_check import MandateGuard


@functools.cache
def mandate_budget() -> MandateBudget:
    from cartpilot import wiring
    from cartpilot.adapters.aws.mandate_budget_table import DynamoDBMandateBudget

    name = config.settings().counters_table
    if not name:
        raise MissingSetting("environment variable COUNTERS_TABLE is not set")
    return DynamoDBMandateBudget(wiring._table(name))


def mandate_guard() -> MandateGuard:
    from cartpilot import wiring
    from cartpilot.audit.public_keys import PlanSignatureVerifier
    from cartpilot.plans.mandate_check import MandateGuard
    from cartpilot.wiring.schedules import schedule_clock, schedule_store

    return MandateGuard(
        schedules=schedule_store(),
        budget=mandate_budget(),
        # Read when an occurrence has a mandate: only the published keys, never the signing key.
        verifier=lambda: PlanSignatureVerifier(wiring.plan_keys().all()),
        brand=wiring.brand(),
        clock=schedule_clock,
    )


def reset_mandates() -> None:
    mandate_budget.cache_clear()
