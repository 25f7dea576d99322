"""What a plan costs to buy and what it cost to make: the order's total beside the planner's model cost.

The model cost is the plan's own ``planner.estimatedCost`` (tokens priced from the brand's table,
prompt tokens the provider served from its context cache at the table's cached-input price), shown
so nobody is surprised by the bill. A plan the rules planner made alone called no model: its
cost is zero. A model the brand's table has no price for is shown as not priced, never as free.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from cartpilot.kernel.money import Money
from cartpilot.plans.model import Plan

NO_MODEL = "no model"
NOT_PRICED = "not priced"


class PlanCostSummary(BaseModel):
    """``GET /goals/{id}`` ``planSummary``: the order's total and what planning it cost."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    total: Money = Field(description="The order's total, as the plan's summary says")
    plannerCost: Money | None = Field(
        description="The planner's model cost (zero for the rules planner alone); None: the model is not "
        "in the brand's price table"
    )
    plannerKind: str = Field(description="rules, openai or bedrock")
    plannerModel: str | None = Field(
        description="The model asked, if any (also when the rules planner stood in)"
    )

    def planner_cost_words(self) -> str:
        """One line for people: ``0.03 CNY (qwen-plus)``, ``no model``, or ``not priced (qwen-max)``."""
        if self.plannerModel is None:
            return NO_MODEL
        if self.plannerCost is None:
            return f"{NOT_PRICED} ({self.plannerModel})"
        return f"{self.plannerCost.format()} ({self.plannerModel})"


def plan_cost_summary(plan: Plan) -> PlanCostSummary:
    planner = plan.planner
    asked_model = planner.kind != "rules" or planner.fallbackFrom is not None
    if planner.estimatedCost is not None:
        cost: Money | None = planner.estimatedCost
    elif not asked_model:
        cost = Money.zero(plan.currency)
    else:
        cost = None
    return PlanCostSummary(
        total=plan.summary.total,
        plannerCost=cost,
        plannerKind=planner.kind,
        plannerModel=(planner.model or planner.fallbackFrom or planner.kind) if asked_model else None,
    )
