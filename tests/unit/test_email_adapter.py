"""SesEmailSender on SES v2 (moto): one raw MIME message per send, from a verified identity."""

from __future__ import annotations

import email
from collections.abc import Iterator
from email.message import Message
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from cartpilot.adapters.aws.email import GOAL_HEADER, KIND_HEADER, SesEmailSender, mime_message
from cartpilot.notifications.ports import Email

REGION = "us-east-1"
DOMAIN = "brand.example"

MAIL = Email(
    to="lin.wei@example.com",
    sender=f"receipts@{DOMAIN}",
    subject="Order placed",
    html="<p>Your order <b>o-1</b> is placed.</p>",
    text="Your order o-1 is placed.",
    kind="receipt",
    goal_id="g-1",
)


@pytest.fixture
def ses(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An SES v2 client in a fresh moto account whose domain identity is verified."""
    from moto import mock_aws

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("sesv2", region_name=REGION)
        client.create_email_identity(EmailIdentity=DOMAIN)
        yield client


def sent_messages() -> list[Any]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    return list(ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages)


def sent_count() -> int:
    """Recipients sent to, as SES counts them (moto counts the To header's addresses too)."""
    return int(boto3.client("ses", region_name=REGION).get_send_quota()["SentLast24Hours"])


def parts(message: Message) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in message.walk():
        if part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            found[part.get_content_type()] = payload.decode(part.get_content_charset() or "utf-8")
    return found


def test_a_send_delivers_one_raw_message_with_both_renderings_and_returns_its_id(ses: Any) -> None:
    message_id = SesEmailSender(ses).send(MAIL)

    [sent] = sent_messages()
    assert message_id == sent.id and message_id
    assert sent.source == MAIL.sender
    assert set(sent.destinations) == {MAIL.to}
    received = email.message_from_string(sent.raw_data)
    assert received["Subject"] == "Order placed"
    assert received["From"] == MAIL.sender and received["To"] == MAIL.to
    assert received[KIND_HEADER] == "receipt" and received[GOAL_HEADER] == "g-1"
    assert received.get_content_type() == "multipart/alternative"
    bodies = parts(received)
    assert bodies["text/plain"].strip() == MAIL.text
    assert bodies["text/html"].strip() == MAIL.html


def test_each_send_is_its_own_message(ses: Any) -> None:
    sender = SesEmailSender(ses)
    first = sender.send(MAIL)
    second = sender.send(Email(**(vars(MAIL) | {"to": "sam@example.com", "goal_id": "g-2"})))

    assert first != second
    assert [set(m.destinations) for m in sent_messages()] == [{MAIL.to}, {"sam@example.com"}]
    assert email.message_from_string(sent_messages()[1].raw_data)[GOAL_HEADER] == "g-2"


def test_a_sender_outside_the_verified_identities_is_refused_and_nothing_is_sent(ses: Any) -> None:
    with pytest.raises(ClientError) as refused:
        SesEmailSender(ses).send(Email(**(vars(MAIL) | {"sender": "receipts@unverified.example"})))

    assert refused.value.response["Error"]["Code"] == "MessageRejected"
    assert sent_count() == 0 and sent_messages() == []


def test_the_mail_service_failing_reaches_the_caller() -> None:
    class Throttled:
        def send_email(self, **request: Any) -> dict[str, Any]:
            raise ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "slow"}}, "SendEmail")

    with pytest.raises(ClientError) as failed:
        SesEmailSender(Throttled()).send(MAIL)

    assert failed.value.response["Error"]["Code"] == "TooManyRequestsException"


def test_the_message_names_what_it_is_about_and_no_shopper_detail_but_the_recipient() -> None:
    raw = mime_message(MAIL)
    message = email.message_from_bytes(raw)

    assert message[KIND_HEADER] == "receipt" and message[GOAL_HEADER] == "g-1"
    assert sorted(message.keys()) == sorted(
        ["Subject", "From", "To", KIND_HEADER, GOAL_HEADER, "MIME-Version", "Content-Type"]
    )
    assert raw.count(MAIL.to.encode()) == 1
