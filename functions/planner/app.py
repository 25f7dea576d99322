"""PlanOrder: turns the goal into a concrete plan with read-only merchant lookups."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from cartpilot import wiring
from cartpilot.goals.events import GoalRef
from cartpilot.kernel.observability import logger, metrics, tracer
from cartpilot.planning.service import plan_goal


@logger.inject_lambda_context(correlation_id_path="goalId")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    ref = GoalRef.model_validate(event)
    reference = plan_goal(
        ref.goalId,
        ledger=wiring.ledger(),
        planner=wiring.planner(),
        users=wiring.users(),
        brand=wiring.brand(),
        signer=wiring.plan_signer(),
        release=wiring.release_id(),
    )
    return reference.model_dump(mode="json")
