"""Email over SES v2: one MIME message (plain text and HTML alternatives) per send.

Sent as raw content so the message carries its own headers: what it is about (kind, goal) for the
brand's mail tooling and the local outbox, never anything about the shopper but the To line.
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

from cartpilot.notifications.ports import Email

KIND_HEADER = "X-CartPilot-Kind"
GOAL_HEADER = "X-CartPilot-Goal"


def mime_message(email: Email) -> bytes:
    message = EmailMessage()
    message["Subject"] = email.subject
    message["From"] = email.sender
    message["To"] = email.to
    message[KIND_HEADER] = email.kind
    message[GOAL_HEADER] = email.goal_id
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message.as_bytes()


class SesEmailSender:
    def __init__(self, client: Any) -> None:
        # The identity's default configuration set applies (infra/notifications.py): none is named here.
        self._client = client

    def send(self, email: Email) -> str:
        request: dict[str, Any] = {
            "FromEmailAddress": email.sender,
            "Destination": {"ToAddresses": [email.to]},
            "Content": {"Raw": {"Data": mime_message(email)}},
        }
        response = self._client.send_email(**request)
        return str(response["MessageId"])
