"""CheckCurrentPrices: the read-only catalog connector snapshots what the plan's items cost now."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from cartpilot import wiring
from cartpilot.goals.events import PlanRef
from cartpilot.kernel.observability import logger, metrics, tracer
from cartpilot.plans.pricing import snapshot_current_prices


@logger.inject_lambda_context(correlation_id_path="goalId")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    ref = PlanRef.model_validate(event)
    snapshot = snapshot_current_prices(
        ref.goalId, ref.planId, store=wiring.goals(), merchants=wiring.merchant, products=wiring.products
    )
    return snapshot.model_dump(mode="json")
