"""WaitForApproval: parks the task token server-side and sends the approver a signed link."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from cartpilot import wiring
from cartpilot.approvals.request import request_approval
from cartpilot.goals.events import ApprovalRequestEvent
from cartpilot.kernel.observability import logger, metrics, tracer
from cartpilot.kernel.task_tokens import parse_task_event


# The event holds a task token: never logged (cartpilot.kernel.task_tokens).
@logger.inject_lambda_context(correlation_id_path="goalId", log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_task_event(ApprovalRequestEvent, event)
    requested = request_approval(
        request.goalId,
        request.planHash,
        request.taskToken,
        ledger=wiring.ledger(),
        approvals=wiring.approvals(),
        keys=wiring.link_keys(),
        signer=wiring.plan_signer(),
        notifier=wiring.notifier(),
        staff_notifier=wiring.staff_notifier(),
        brand=wiring.brand(),
        base_url=wiring.approval_base_url(),
    )
    return requested.model_dump(mode="json")
