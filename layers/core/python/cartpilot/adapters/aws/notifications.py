"""Notifications over SNS: one topic per brand; the local stack's outbox reads the same topic."""

from __future__ import annotations

import json
from typing import Any


class SnsNotifier:
    def __init__(self, topic_arn: str, client: Any) -> None:
        self._topic_arn = topic_arn
        self._client = client

    def send(self, *, kind: str, goal_id: str, user_id: str, subject: str, body: dict[str, Any]) -> str:
        response = self._client.publish(
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
