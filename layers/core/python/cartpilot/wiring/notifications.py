"""The composition of telling people: the shopper's channels (topic, then email), the brand's topic,
the outbox of due status notices and the reminder queue."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from cartpilot.kernel.errors import MissingSetting
from cartpilot.wiring import settings as config

if TYPE_CHECKING:
    from cartpilot.goals.ports import Notifier
    from cartpilot.notifications.ports import EmailSender, NoticeOutbox, ReminderQueue


def _goals_table() -> object:
    from cartpilot.adapters.aws import clients

    return clients.dynamodb().Table(config.settings().goals_table)


@functools.cache
def notice_outbox() -> NoticeOutbox:
    from cartpilot.adapters.aws.notices_table import DynamoDBNoticeOutbox

    return DynamoDBNoticeOutbox(_goals_table())


@functools.cache
def reminder_queue() -> ReminderQueue:
    from cartpilot.adapters.aws.notices_table import DynamoDBReminderQueue

    return DynamoDBReminderQueue(_goals_table())


@functools.cache
def brand_topic() -> Notifier:
    """The brand's notification topic alone: messages for the brand's systems, never emailed."""
    from cartpilot.adapters.aws import clients
    from cartpilot.adapters.aws.notifications import SnsNotifier

    topic = config.settings().notify_topic_arn
    if topic is None:
        raise MissingSetting("environment variable NOTIFY_TOPIC_ARN is not set")
    return SnsNotifier(topic, clients.sns())


@functools.cache
def email_sender() -> EmailSender | None:
    """SES v2, where the brand has a verified identity (brand.yaml ``notifications.sesIdentity``)."""
    from cartpilot.adapters.aws import clients
    from cartpilot.adapters.aws.email import SesEmailSender

    if config.settings().ses_identity is None:
        return None
    return SesEmailSender(clients.sesv2())


def shopper_channels(topic: Notifier) -> Notifier:
    """The topic, with email as fallback and for receipts and shipping notices where the brand mails."""
    from cartpilot import wiring
    from cartpilot.notifications.channels import ShopperChannels
    from cartpilot.notifications.email import sender_address

    identity = config.settings().ses_identity
    sender = email_sender()
    if identity is None or sender is None:
        return topic
    return ShopperChannels(
        topic=topic,
        email=sender,
        sender=sender_address(wiring.brand(), identity),
        users=wiring.users(),
        ledger=wiring.ledger(),
        brand=wiring.brand(),
    )


def reset_notifications() -> None:
    for factory in (notice_outbox, reminder_queue, brand_topic, email_sender):
        factory.cache_clear()
