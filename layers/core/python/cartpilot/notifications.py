"""Telling people things: approval links and receipts, over SNS.

The message carries what the recipient needs (a link, a total, an order id) and
no more; addresses and phone numbers never leave in a notification.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from cartpilot import aws


class Notifier(Protocol):
    def send(self, *, kind: str, goal_id: str, user_id: str, subject: str, body: dict[str, Any]) -> str: ...


class SnsNotifier:
    def __init__(self, topic_arn: str, client: Any | None = None) -> None:
        self._topic_arn = topic_arn
        self._client = client

    def send(self, *, kind: str, goal_id: str, user_id: str, subject: str, body: dict[str, Any]) -> str:
        client = self._client or aws.sns()
        response = client.publish(
            TopicArn=self._topic_arn,
            Subject=subject[:100],
            Message=json.dumps(
                {"kind": kind, "goalId": goal_id, "userId": user_id, **body}, ensure_ascii=False
            ),
            MessageAttributes={
                "kind": {"DataType": "String", "StringValue": kind},
                "goalId": {"DataType": "String", "StringValue": goal_id},
            },
        )
        return str(response["MessageId"])
