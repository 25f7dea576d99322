"""Which goal an order is: recorded when the receipt records the order, so events find their goal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cartpilot.brands.config import BrandConfig
from cartpilot.goals.ports import GoalStore
from cartpilot.orders.ports import OrderEventStore, OrderLink


def link_goal_order(
    goal_id: str, order_id: str, *, goals: GoalStore, brand: BrandConfig, store: OrderEventStore
) -> OrderLink:
    """Links the goal's order at the merchant it was placed with; a merchant set to be polled
    (brand.yaml ``orderEvents: poll``) gets the order listed for the polling sweep. Idempotent."""
    goal = goals.require(goal_id)
    merchant = brand.merchant(goal.context.merchantId)
    link = OrderLink(merchantId=merchant.id, orderId=order_id, goalId=goal_id)
    store.link_order(link, polled=merchant.orderEvents == "poll")
    return link


def placed_order_id(outputs: Mapping[str, Any]) -> str | None:
    """The order id the executed steps report (the confirmation's first), as the receipt records it."""
    confirm = outputs.get("confirm")
    candidates = [confirm, *outputs.values()] if isinstance(confirm, Mapping) else list(outputs.values())
    for output in candidates:
        if isinstance(output, Mapping) and isinstance(output.get("orderId"), str) and output["orderId"]:
            return str(output["orderId"])
    return None
