"""UndoExecutedSteps: cancels what ran, in reverse, and ends the goal COMPENSATED or NEEDS_ATTENTION."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from cartpilot import wiring
from cartpilot.compensation import undo_executed_steps
from cartpilot.flow_events import CompensationEvent
from cartpilot.goals import GoalStatus
from cartpilot.ledger import ledger_from_env
from cartpilot.observability import logger, metrics, tracer
from cartpilot.outcomes import failure_reason


@logger.inject_lambda_context(correlation_id_path="goalId")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = CompensationEvent.model_validate(event)
    return undo_executed_steps(
        request.goalId,
        request.outputs,
        ledger=ledger_from_env(),
        merchant=wiring.merchant(),
        final_status=GoalStatus(request.finalStatus),
        reason=failure_reason(request.error),
        attempt=request.attempt,
        max_attempts=request.maxAttempts,
    )
