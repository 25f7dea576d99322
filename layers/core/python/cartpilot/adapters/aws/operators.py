"""The brand's operators over SNS: the stack's alarm topic, where CloudWatch alarms already go."""

from __future__ import annotations

import json
from typing import Any


class SnsOperatorChannel:
    def __init__(self, topic_arn: str, client: Any) -> None:
        self._topic_arn = topic_arn
        self._client = client

    def tell(self, *, subject: str, message: dict[str, Any]) -> None:
        self._client.publish(
            TopicArn=self._topic_arn,
            Subject=subject[:100],
            Message=json.dumps(message, ensure_ascii=False, sort_keys=True),
            MessageAttributes={"kind": {"DataType": "String", "StringValue": str(message.get("kind", ""))}},
        )
