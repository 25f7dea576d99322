"""CheckPolicies: validates the stored plan and decides its risk tier."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from cartpilot import wiring
from cartpilot.brands import current_brand_name
from cartpilot.flow_events import ValidationEvent
from cartpilot.ledger import ledger_from_env
from cartpilot.observability import logger, metrics, tracer
from cartpilot.policy import policies_for
from cartpilot.validation import validate_goal

# A bad policy file stops the function at start-up, naming the line, not in the middle of an order.
policies_for(current_brand_name())


@logger.inject_lambda_context(correlation_id_path="goalId")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    ref = ValidationEvent.model_validate(event)
    verdict = validate_goal(
        ref.goalId,
        ref.planHash,
        ledger=ledger_from_env(),
        brand=wiring.brand(),
        users=wiring.users(),
        price_check=ref.priceCheck,
    )
    metrics.add_metric(name=f"Verdict{verdict.tier.value.title().replace('_', '')}", unit="Count", value=1)
    return {"route": verdict.route, "tier": verdict.tier.value, "planHash": verdict.planHash}
