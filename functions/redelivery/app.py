"""Scheduled: sends recorded approval decisions that have not reached their flow yet."""

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from cartpilot import wiring
from cartpilot.approvals.redelivery import redeliver
from cartpilot.kernel.observability import logger, metrics, tracer


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = redeliver(approvals=wiring.approvals(), workflow=wiring.workflow(), ledger=wiring.ledger())
    return asdict(report)
