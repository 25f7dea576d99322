"""Scheduled: tells every status change still due (shopper and brand), and reminds approvers whose
links are about to expire."""

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from cartpilot import wiring
from cartpilot.kernel.observability import logger, metrics, tracer
from cartpilot.notifications.reminders import ReminderChannels, send_reminders
from cartpilot.notifications.status_notices import relay_status_notices
from cartpilot.wiring.notifications import brand_topic, notice_outbox, reminder_queue


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    told = relay_status_notices(
        outbox=notice_outbox(),
        goals=wiring.goals(),
        shopper=wiring.notifier(),
        brand=brand_topic(),
        view_links=wiring.view_links(),
    )
    reminded = send_reminders(
        queue=reminder_queue(),
        approvals=wiring.approvals(),
        ledger=wiring.ledger(),
        channels=ReminderChannels(
            shopper=wiring.notifier(),
            staff=wiring.staff_notifier(),
            keys=wiring.link_keys(),
            base_url=wiring.approval_base_url(),
        ),
        brand=wiring.brand(),
    )
    return {"notices": asdict(told), "reminders": asdict(reminded)}
