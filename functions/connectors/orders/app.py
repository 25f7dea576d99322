"""ConfirmOrder: the orders connector reads the placed order back and checks it."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from cartpilot import wiring
from cartpilot.execution.outcomes import confirm_order
from cartpilot.goals.events import ConnectorEvent
from cartpilot.kernel.observability import logger, metrics, tracer


@logger.inject_lambda_context(correlation_id_path="goalId")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = ConnectorEvent.model_validate(event)
    return confirm_order(
        request.goalId,
        request.outputs,
        ledger=wiring.ledger(),
        merchants=wiring.merchant,
        tolerance_percent=wiring.brand().priceTolerancePercent,
    )
