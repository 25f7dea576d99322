"""Notifier: what a shopper or approver receives, and the id that names it."""

from __future__ import annotations

import pytest

from tests.contract.backends import NotifierBackend

LINK = "https://api.example.com/v1/approvals/a-1?exp=1795000000&kid=k1&sig=abc"


def test_a_notification_carries_kind_goal_user_and_body(notifications: NotifierBackend):
    message_id = notifications.notifier.send(
        kind="approval-request",
        goal_id="g-1",
        user_id="user-1",
        subject="Approve your order",
        body={"link": LINK, "total": {"amount_minor": 249900, "currency": "CNY"}, "items": ["鞋 42"]},
    )

    (received,) = notifications.received(1)
    assert isinstance(message_id, str) and message_id
    assert received.message_id == message_id
    assert received.subject == "Approve your order"
    assert received.message == {
        "kind": "approval-request",
        "goalId": "g-1",
        "userId": "user-1",
        "link": LINK,
        "total": {"amount_minor": 249900, "currency": "CNY"},
        "items": ["鞋 42"],
    }


def test_each_notification_has_its_own_id(notifications: NotifierBackend):
    ids = [
        notifications.notifier.send(
            kind="receipt", goal_id=f"g-{n}", user_id="user-1", subject="Receipt", body={}
        )
        for n in range(3)
    ]
    received = notifications.received(3)
    assert len(set(ids)) == 3
    assert {r.message_id: r.message["goalId"] for r in received} == {ids[n]: f"g-{n}" for n in range(3)}


def test_a_long_subject_is_cut_to_what_sns_takes(notifications: NotifierBackend):
    subject = "Your order of " + "very " * 40 + "nice running shoes"
    notifications.notifier.send(kind="receipt", goal_id="g-1", user_id="user-1", subject=subject, body={})
    (received,) = notifications.received(1)
    assert received.subject == subject[:100]


def test_the_message_is_what_the_body_was_when_sent(notifications: NotifierBackend):
    body = {"receipt": {"orderId": "o-1", "lines": [{"title": "Swift Runner", "quantity": 1}]}}
    notifications.notifier.send(kind="receipt", goal_id="g-1", user_id="user-1", subject="Receipt", body=body)
    body["receipt"]["orderId"] = "o-changed"
    body["receipt"]["lines"].append({"title": "added later", "quantity": 9})  # type: ignore[attr-defined]
    (received,) = notifications.received(1)
    assert received.message["receipt"] == {
        "orderId": "o-1",
        "lines": [{"title": "Swift Runner", "quantity": 1}],
    }


def test_a_body_that_is_not_json_is_refused(notifications: NotifierBackend):
    with pytest.raises(TypeError):
        notifications.notifier.send(
            kind="receipt", goal_id="g-1", user_id="user-1", subject="Receipt", body={"at": object()}
        )
