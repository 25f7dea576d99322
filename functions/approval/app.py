"""WaitForApproval: parks the task token server-side and sends the approver a signed link."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from cartpilot import wiring
from cartpilot.approval_requests import request_approval
from cartpilot.flow_events import ApprovalRequestEvent
from cartpilot.ledger import ledger_from_env
from cartpilot.observability import logger, metrics, tracer
from cartpilot.settings import MissingSetting, settings


@logger.inject_lambda_context(correlation_id_path="goalId")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = ApprovalRequestEvent.model_validate(event)
    base_url = settings().approval_base_url
    if base_url is None:
        raise MissingSetting("environment variable APPROVAL_BASE_URL is not set")
    return request_approval(
        request.goalId,
        request.planHash,
        request.taskToken,
        ledger=ledger_from_env(),
        approvals=wiring.approvals(),
        keys=wiring.link_keys(),
        notifier=wiring.notifier(),
        brand=wiring.brand(),
        base_url=base_url,
    )
