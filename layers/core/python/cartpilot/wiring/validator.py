"""The validator function's parts: its policy check, and what it loads before judging a goal.

Judging a plan needs the brand, its Cedar policies (cedarpy), the plan and goal models and the
checks of ``plans.validation``; loading them is most of the function's start-up, and the handler
module imports none of them. A SnapStart version loads them in ``prepare``, which runs before the
snapshot, while the version is published: a bad brand or policy file fails the publication. Without
a snapshot (the local stack, a function without SnapStart) ``check_policies`` loads them before the
first goal it judges. Either way a bad brand or policy file is an error naming the file (and line),
raised before any goal is touched, on every invocation until the file is fixed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cartpilot import wiring
from cartpilot.kernel.models import build_models

if TYPE_CHECKING:
    from cartpilot.brands.policy import BrandPolicies
    from cartpilot.plans.verdicts import Verdict

# What judging a goal imports; the snapshot is taken with all of them loaded and their models built.
JUDGING_MODULES = (
    "cartpilot.goals.events",
    "cartpilot.plans.validation",
    "cartpilot.plans.mandate_check",
    "cartpilot.wiring.mandates",
    "cartpilot.wiring.rollout",
)


def load_policies() -> BrandPolicies:
    """The brand file and its Cedar policies, parsed and checked against the schema (kept once
    loaded). A bad file raises ``BrandConfigError`` (``PolicyFileError`` naming the line)."""
    return wiring.policies()


def prepare() -> None:
    """The before-snapshot hook: the brand and its policies loaded, every judging module imported
    and every loaded model built. Raises on a bad brand or policy file."""
    load_policies()
    for name in JUDGING_MODULES:
        importlib.import_module(name)
    build_models()


def check_policies(event: dict[str, Any]) -> Verdict:
    """Validates the plan the event names and records the verdict on the goal. The brand and its
    policies are loaded first: with a bad file this raises before the goal is read or moved."""
    load_policies()
    from cartpilot.goals.events import ValidationEvent
    from cartpilot.plans.validation import validate_goal
    from cartpilot.wiring.mandates import mandate_guard
    from cartpilot.wiring.rollout import rollout_gate

    ref = ValidationEvent.model_validate(event)
    return validate_goal(
        ref.goalId,
        ref.planHash,
        ledger=wiring.ledger(),
        brand=wiring.brand(),
        users=wiring.users(),
        counters=wiring.counters(),
        price_check=ref.priceCheck,
        mandates=mandate_guard(),
        rollout=rollout_gate(),
    )
