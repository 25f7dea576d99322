"""CheckCurrentPrices: the read-only catalog connector snapshots what the plan's items cost now."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from cartpilot import wiring
from cartpilot.flow_events import PlanRef
from cartpilot.ledger import ledger_from_env
from cartpilot.observability import logger, metrics, tracer
from cartpilot.pricing import snapshot_current_prices


@logger.inject_lambda_context(correlation_id_path="goalId")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    ref = PlanRef.model_validate(event)
    return snapshot_current_prices(
        ref.goalId, ref.planId, store=ledger_from_env().store, catalog=wiring.merchant().catalog
    )
