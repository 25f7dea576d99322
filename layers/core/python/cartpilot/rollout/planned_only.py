"""Gate 2: a checked plan the brand's rollout holds back is routed "planned-only".

The verdict keeps its tier; the goal keeps what would have happened (``plannedOnly``), and the
daily-limit hold the validator took is given back, since no order will follow.
"""

from __future__ import annotations

from typing import Literal, cast

from cartpilot.brands.activity import OrderCounters
from cartpilot.goals.ledger import GoalLedger
from cartpilot.kernel.clock import utc_now
from cartpilot.plans.reservations import release_for_goal
from cartpilot.plans.verdicts import Verdict
from cartpilot.rollout.gate import RolloutGate
from cartpilot.rollout.model import PlannedOnly

PLANNED_ONLY_ROUTE = "planned-only"


def hold_back(
    goal_id: str,
    user_id: str,
    verdict: Verdict,
    *,
    gate: RolloutGate,
    ledger: GoalLedger,
    counters: OrderCounters,
) -> tuple[Verdict, PlannedOnly | None]:
    """The verdict as the flow should route it, and why it is held back (None when it is not).

    A denied plan stays denied at every stage: the rollout never makes a verdict milder."""
    if verdict.denied or verdict.route == PLANNED_ONLY_ROUTE:
        return verdict, None
    reason = gate.planned_only_reason(user_id)
    if reason is None:
        return verdict, None
    planned = PlannedOnly(
        reason=reason,
        wouldRoute=cast(Literal["auto", "approve"], verdict.route),
        tier=verdict.tier,
    )
    release_for_goal(
        goal_id,
        counters=counters,
        ledger=ledger,
        actor="validator",
        why=f"rollout: {reason.value}",
        at=utc_now(),
    )
    return verdict.model_copy(update={"route": PLANNED_ONLY_ROUTE}), planned
