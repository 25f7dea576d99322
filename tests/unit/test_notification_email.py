"""Receipts by email and the shopper's channel falling back from the topic to email."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cartpilot.brands.config import BrandConfig
from cartpilot.brands.users import UserDirectory
from cartpilot.goals.model import ReceiptLine
from cartpilot.notifications.channels import NotDelivered, ShopperChannels
from cartpilot.notifications.email import compose_email, sender_address
from cartpilot.notifications.ports import Email
from tests.fakes import RecordingNotifier
from tests.fakes.merchant import cny
from tests.unit.stages import OrderFlow


class FailingTopic:
    def send(self, *, kind: str, goal_id: str, user_id: str, subject: str, body: dict[str, Any]) -> str:
        raise ConnectionError("KMSDisabled")


class RecordingMail:
    def __init__(self, *, fail: bool = False) -> None:
        self.sent: list[Email] = []
        self._fail = fail

    def send(self, email: Email) -> str:
        if self._fail:
            raise ConnectionError("SES throttled")
        self.sent.append(email)
        return f"e-{len(self.sent)}"


def channels(flow: OrderFlow, topic: Any, mail: RecordingMail) -> ShopperChannels:
    return ShopperChannels(
        topic=topic, email=mail, sender="receipts@brand.example", users=flow.users, ledger=flow.ledger,
        brand=flow.brand,
    )  # fmt: skip


def test_the_receipt_email_escapes_product_text_and_masks_the_recipient(flow: OrderFlow, brand: BrandConfig):
    flow.completed()
    goal = flow.goal()
    assert goal.receipt is not None
    hostile = goal.receipt.model_copy(
        update={
            "items": [
                ReceiptLine(title='<script>alert("x")</script> Socks & Co', quantity=1, unitPrice=cny("9.90"))
            ]
        }
    )
    email = compose_email(
        kind="receipt", goal=goal.model_copy(update={"receipt": hostile}), goal_id=goal.goalId,
        subject="Order placed", body={"orderId": hostile.orderId, "total": "9.90 CNY"}, brand=brand,
        to="lin.wei@example.com", sender="receipts@brand.example",
    )  # fmt: skip
    assert "<script>" not in email.html and "&lt;script&gt;" in email.html
    assert "Socks &amp; Co" in email.html and "Socks & Co" in email.text  # text is text, not HTML
    assert brand.displayName in email.html and email.sender.startswith(brand.displayName)
    profile = flow.users.get(goal.userId)
    assert profile is not None
    recipient = flow.plan.summary.recipient
    for personal in (profile.email, recipient.address.line1, recipient.phone, recipient.name):
        assert personal not in email.html and personal not in email.text
    assert hostile.recipient in email.html  # as the receipt masks it


@pytest.mark.parametrize("kind", ["shipped", "delivered"])
def test_a_shipping_notice_names_the_carrier_and_tracking_number_once(
    flow: OrderFlow, brand: BrandConfig, kind: str
) -> None:
    flow.completed()
    goal = flow.goal()
    email = compose_email(
        kind=kind, goal=goal, goal_id=goal.goalId, subject="Your order has shipped",
        body={"carrier": "SF Express", "trackingNumber": "SF1234567890", "status": kind}, brand=brand,
        to="lin.wei@example.com", sender="receipts@brand.example",
    )  # fmt: skip
    for shown in (email.text, email.html):
        assert shown.count("SF Express") == 1 and shown.count("SF1234567890") == 1


def test_sender_is_the_identity_address_or_receipts_at_the_domain(brand: BrandConfig) -> None:
    assert sender_address(brand, "shop@brand.example") == "shop@brand.example"
    assert sender_address(brand, "brand.example") == "receipts@brand.example"


def test_a_receipt_goes_by_topic_and_by_email(flow: OrderFlow, users: UserDirectory) -> None:
    flow.completed()
    topic, mail = RecordingNotifier(), RecordingMail()
    channels(flow, topic, mail).send(
        kind="receipt", goal_id=flow.goal_id, user_id=flow.goal().userId, subject="Order placed", body={}
    )
    assert [m["kind"] for m in topic.sent] == ["receipt"]
    (email,) = mail.sent
    profile = users.get(flow.goal().userId)
    assert profile is not None and email.to == profile.email
    (record,) = [r for r in flow.records() if r.event == "notification.delivered"]
    assert record.detail == {"kind": "receipt", "channel": "email", "fallbackFrom": None}
    assert profile.email not in json.dumps([r.model_dump(mode="json") for r in flow.records()])


def test_when_the_topic_fails_the_message_goes_by_email_and_the_audit_says_so(flow: OrderFlow) -> None:
    mail = RecordingMail()
    message_id = channels(flow, FailingTopic(), mail).send(
        kind="outcome", goal_id=flow.goal_id, user_id=flow.goal().userId, subject="Not approved",
        body={"status": "REJECTED", "reason": "The order was not approved, so nothing was bought."},
    )  # fmt: skip
    assert message_id == "e-1"
    (email,) = mail.sent
    assert "nothing was bought" in email.text and "nothing was bought" in email.html
    (record,) = [r for r in flow.records() if r.event == "notification.delivered"]
    assert record.detail == {"kind": "outcome", "channel": "email", "fallbackFrom": "sns"}


def test_a_one_time_code_never_falls_back_to_email(flow: OrderFlow) -> None:
    mail = RecordingMail()
    with pytest.raises(ConnectionError):
        channels(flow, FailingTopic(), mail).send(
            kind="verification-code", goal_id=flow.goal_id, user_id=flow.goal().userId, subject="Code",
            body={"text": "123456"},
        )  # fmt: skip
    assert mail.sent == []


def test_when_both_channels_fail_the_send_fails(flow: OrderFlow) -> None:
    with pytest.raises(NotDelivered):
        channels(flow, FailingTopic(), RecordingMail(fail=True)).send(
            kind="outcome", goal_id=flow.goal_id, user_id=flow.goal().userId, subject="x", body={}
        )
    assert not [r for r in flow.records() if r.event == "notification.delivered"]


def test_a_failed_email_copy_does_not_fail_a_delivered_receipt(flow: OrderFlow) -> None:
    flow.completed()
    topic = RecordingNotifier()
    channels(flow, topic, RecordingMail(fail=True)).send(
        kind="receipt", goal_id=flow.goal_id, user_id=flow.goal().userId, subject="Order placed", body={}
    )
    assert len(topic.sent) == 1
    assert [r.detail for r in flow.records() if r.event == "notification.email-failed"] == [
        {"kind": "receipt", "channel": "email", "error": "ConnectionError"}
    ]
