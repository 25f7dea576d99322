"""Scheduled: applies the order events merchants pushed, and reads the open orders of those that do not."""

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from cartpilot import wiring
from cartpilot.kernel.observability import logger, metrics, tracer
from cartpilot.orders.polling import sweep_orders
from cartpilot.wiring.orders import fetch_order, order_events


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = sweep_orders(
        store=order_events(),
        fetch_order=fetch_order,
        ledger=wiring.ledger(),
        notifier=wiring.notifier(),
        counters=wiring.counters(),
    )
    return asdict(report)
