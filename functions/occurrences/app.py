"""Scheduled: fires the due occurrences of scheduled and recurring goals, each as a normal goal."""

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from cartpilot.kernel.observability import logger, metrics, tracer
from cartpilot.wiring.schedules import occurrence_firing


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = occurrence_firing().sweep()
    return asdict(report)
