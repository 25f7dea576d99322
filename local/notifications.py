"""Notifications on the local stack: the emails SES would have sent, and an injectable topic outage.

The outbox shows each email as SES received it (its MIME parts, parsed back): ``"channel": "email"``
with the rendered ``html`` and ``text``, what it is about (kind, goal) and never the address. A topic
outage makes every publish about one shopper fail as a topic whose key is disabled does, so a drill
can watch the shopper's channel fall back to email.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_string
from email.message import Message
from email.policy import default as default_policy
from typing import Any
from unittest import mock

KIND_HEADER = "X-CartPilot-Kind"
GOAL_HEADER = "X-CartPilot-Goal"


class TopicOutage:
    """Which shoppers' messages the emulated topics refuse (none unless a test says so)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: set[str] = set()

    def fail_for(self, user_id: str) -> None:
        with self._lock:
            self._users.add(user_id)

    def end(self) -> None:
        with self._lock:
            self._users.clear()

    def refuses(self, message: str) -> bool:
        with self._lock:
            if not self._users:
                return False
        try:
            user = json.loads(message).get("userId")
        except (ValueError, AttributeError):
            return False
        with self._lock:
            return user in self._users

    @contextmanager
    def installed(self) -> Iterator[TopicOutage]:
        from moto.sns.exceptions import SNSException
        from moto.sns.models import Topic

        outage = self
        original = Topic.publish

        def publish(topic: Topic, message: str, *args: Any, **kwargs: Any) -> str:
            if outage.refuses(message):
                raise SNSException("KMSDisabled", "The topic's KMS key is disabled (injected outage)")
            return original(topic, message, *args, **kwargs)

        with mock.patch.object(Topic, "publish", publish):
            yield self


def verify_sender(identity: str, region: str) -> None:
    """What verifying the brand's SES identity does on AWS: the emulator then accepts its mail."""
    import boto3

    boto3.client("sesv2", region_name=region).create_email_identity(EmailIdentity=identity)


def sent_emails(account: str, region: str) -> list[dict[str, Any]]:
    from moto.ses.models import ses_backends

    emails: list[dict[str, Any]] = []
    for sent in ses_backends[account][region].sent_messages:
        raw = getattr(sent, "raw_data", None)
        if raw is None:
            continue
        emails.append(_parsed(message_from_string(raw, policy=default_policy)))
    return emails


def _parsed(message: Message) -> dict[str, Any]:
    parts: dict[str, str] = {}
    for part in message.walk():
        if part.get_content_type() in {"text/plain", "text/html"}:
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                parts[part.get_content_type()] = payload.decode(part.get_content_charset() or "utf-8")
    return {
        "channel": "email",
        "kind": message.get(KIND_HEADER),
        "goalId": message.get(GOAL_HEADER),
        "subject": message.get("Subject"),
        "from": message.get("From"),
        "html": parts.get("text/html", ""),
        "text": parts.get("text/plain", ""),
    }
