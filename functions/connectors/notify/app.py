"""SendReceipt and the Record* states: ends the goal and tells the shopper how."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from cartpilot import wiring
from cartpilot.execution.outcomes import record_outcome, send_receipt
from cartpilot.goals.events import OutcomeEvent
from cartpilot.goals.handoff import announce_hand_off
from cartpilot.goals.model import GoalStatus
from cartpilot.goals.undo import close_undo_window, open_undo_window
from cartpilot.kernel.observability import logger, metrics, tracer
from cartpilot.kernel.task_tokens import parse_task_event
from cartpilot.orders.links import link_goal_order, placed_order_id
from cartpilot.wiring.orders import order_events


# The event holds a task token: never logged (cartpilot.kernel.task_tokens).
@logger.inject_lambda_context(correlation_id_path="goalId", log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _end_goal(parse_task_event(OutcomeEvent, event)).model_dump(mode="json")


def _end_goal(request: OutcomeEvent) -> BaseModel:
    if request.kind == "undo_window" and request.taskToken:
        return open_undo_window(request.goalId, request.taskToken, ledger=wiring.ledger())
    if request.kind == "undo_closed":
        return close_undo_window(request.goalId, ledger=wiring.ledger())
    if request.kind == "handed_off":
        return announce_hand_off(request.goalId, ledger=wiring.ledger(), notifier=wiring.notifier())
    if request.kind == "receipt":
        # Linked before the goal shows COMPLETED, so the merchant's first order event finds its goal
        # (a retry links again, harmlessly).
        order_id = placed_order_id(request.outputs)
        if order_id is not None:
            link_goal_order(
                request.goalId, order_id, goals=wiring.goals(), brand=wiring.brand(), store=order_events()
            )
        return send_receipt(
            request.goalId,
            request.outputs,
            ledger=wiring.ledger(),
            notifier=wiring.notifier(),
            brand=wiring.brand(),
            counters=wiring.counters(),
            view_links=wiring.view_links(),
        )
    status = GoalStatus(request.status or "FAILED")
    if status is GoalStatus.NEEDS_ATTENTION:
        metrics.add_metric(name="NeedsAttention", unit="Count", value=1)
    return record_outcome(
        request.goalId,
        status,
        error=request.error,
        ledger=wiring.ledger(),
        notifier=wiring.notifier(),
        approvals=wiring.approvals(),
        counters=wiring.counters(),
        view_links=wiring.view_links(),
    )
