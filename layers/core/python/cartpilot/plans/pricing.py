"""The price-check stage: what the merchant charges right now for the plan's items.

Runs in the read-only catalog function, which may read the goal but write nothing: the
snapshot (a few items) travels to the validator in the flow, and the validator stores it
on the goal beside its verdict.
"""

from __future__ import annotations

from cartpilot.commerce.ports import Catalog
from cartpilot.goals.model import PriceCheck
from cartpilot.goals.ports import GoalStore
from cartpilot.kernel.clock import utc_now_iso
from cartpilot.plans.model import Plan


def snapshot_current_prices(goal_id: str, plan_id: str, *, store: GoalStore, catalog: Catalog) -> PriceCheck:
    goal = store.require(goal_id)
    plan = goal.plan
    if not isinstance(plan, Plan) or plan.planId != plan_id:
        raise LookupError(f"goal {goal_id} has no plan {plan_id}")
    item_ids = sorted({item.itemId for item in plan.summary.items})
    current = catalog.lookup(item_ids, plan.currency)
    return PriceCheck(planId=plan_id, checkedAt=utc_now_iso(), items=current)
