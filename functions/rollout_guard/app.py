"""EventBridge: an anomaly alarm entered ALARM; drop the brand to read-only and tell its operators."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from cartpilot import wiring
from cartpilot.kernel.observability import logger, metrics, tracer
from cartpilot.rollout.guard import NotAnAlarm, drop_to_read_only, fired_alarm
from cartpilot.wiring import settings as config
from cartpilot.wiring.guard import operators
from cartpilot.wiring.rollout import rollout_store


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        alarm = fired_alarm(event)
    except NotAnAlarm as skipped:
        # The rule sends only ALARM states of the anomaly alarms; anything else is not ours to act on.
        logger.warning("rollout guard ignored an event", extra={"why": str(skipped)})
        return {"changed": False, "ignored": True}
    outcome = drop_to_read_only(
        alarm,
        brand=config.brand_name(),
        store=rollout_store(),
        audit=wiring.audit(),
        operators=operators(),
    )
    return outcome.as_dict()
