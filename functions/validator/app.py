"""CheckPolicies: validates the stored plan and decides its risk tier."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from cartpilot import wiring
from cartpilot.flow_events import PlanRef
from cartpilot.ledger import ledger_from_env
from cartpilot.observability import logger, metrics, tracer
from cartpilot.validation import validate_goal


@logger.inject_lambda_context(correlation_id_path="goalId")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    ref = PlanRef.model_validate(event)
    verdict = validate_goal(
        ref.goalId, ref.planHash, ledger=ledger_from_env(), brand=wiring.brand(), users=wiring.users()
    )
    metrics.add_metric(name=f"Verdict{verdict.tier.value.title().replace('_', '')}", unit="Count", value=1)
    return {"route": verdict.route, "tier": verdict.tier.value, "planHash": verdict.planHash}
