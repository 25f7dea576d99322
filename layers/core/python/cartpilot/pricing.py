"""The price-check stage: what the merchant charges right now for the plan's items.

Runs in the read-only catalog function, which may read the goal but write nothing: the
snapshot (a few items) travels to the validator in the flow, and the validator stores it
on the goal beside its verdict.
"""

from __future__ import annotations

from typing import Any

from cartpilot.clock import utc_now_iso
from cartpilot.commerce import Catalog
from cartpilot.goal_store import GoalStore
from cartpilot.plans import Plan


def snapshot_current_prices(
    goal_id: str, plan_id: str, *, store: GoalStore, catalog: Catalog
) -> dict[str, Any]:
    goal = store.require(goal_id)
    if goal.plan is None or goal.plan.get("planId") != plan_id:
        raise LookupError(f"goal {goal_id} has no plan {plan_id}")
    plan = Plan.model_validate(goal.plan)
    item_ids = sorted({item.itemId for item in plan.summary.items})
    current = catalog.lookup(item_ids, plan.currency)
    return {
        "planId": plan_id,
        "checkedAt": utc_now_iso(),
        "items": [v.model_dump(mode="json") for v in current],
    }
