"""Text messages over SNS: published straight to a phone number, no topic in between."""

from __future__ import annotations

from typing import Any


class SnsSmsSender:
    """One-time codes by SMS: SNS publishes straight to the phone number, no topic in between."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def send_code(self, phone: str, text: str) -> None:
        self._client.publish(
            PhoneNumber=phone,
            Message=text,
            MessageAttributes={
                # Transactional: delivered with priority, and not subject to marketing opt-outs.
                "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"},
            },
        )
