"""The price-check stage: what the merchant charges right now for the plan's items.

Runs in the read-only catalog function; the snapshot is stored on the goal and
travels to the validator by reference, keeping the flow's payload small.
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
    checked_at = utc_now_iso()
    store.update(
        goal_id,
        updated_at=checked_at,
        priceCheck={
            "planId": plan_id,
            "checkedAt": checked_at,
            "items": [v.model_dump(mode="json") for v in current],
        },
    )
    return {"checkedAt": checked_at, "items": len(current)}
