"""UndoExecutedSteps: cancels what ran, in reverse, and ends the goal COMPENSATED or NEEDS_ATTENTION."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from cartpilot import wiring
from cartpilot.execution.compensation import undo_executed_steps
from cartpilot.execution.outcomes import failure_code, failure_reason
from cartpilot.goals.events import CompensationEvent
from cartpilot.goals.model import GoalStatus
from cartpilot.kernel.observability import logger, metrics, tracer


@logger.inject_lambda_context(correlation_id_path="goalId")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = CompensationEvent.model_validate(event)
    result = undo_executed_steps(
        request.goalId,
        request.outputs,
        ledger=wiring.ledger(),
        merchants=wiring.merchant,
        final_status=GoalStatus(request.finalStatus),
        reason=failure_reason(request.error),
        reason_code=failure_code(request.error),
        attempt=request.attempt,
        max_attempts=request.maxAttempts,
        counters=wiring.counters(),
        # Only the shopper's undo tells anyone from here (a return filed for a shipped order).
        notifier=wiring.notifier() if request.finalStatus == GoalStatus.UNDONE.value else None,
    )
    return result.model_dump(mode="json")
