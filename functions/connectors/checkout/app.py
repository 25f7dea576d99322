"""The checkout connector: runs one mutating plan step against the merchant, once in effect."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from cartpilot import wiring
from cartpilot.adapters.aws.idempotency import run_connector_step
from cartpilot.kernel.observability import logger, metrics, tracer


@logger.inject_lambda_context(correlation_id_path="goalId")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return run_connector_step(
        event,
        context,
        connector="checkout",
        executor=wiring.step_executor,
        persistence=wiring.idempotency_store("connector-step"),
    )
