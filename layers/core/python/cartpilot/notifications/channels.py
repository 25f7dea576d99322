"""The shopper's channel: the brand's topic first, email when the topic cannot be reached, and an
email copy of the messages people keep (receipts, shipping notices).

A ``Notifier`` like the topic it wraps, so every step that tells the shopper gets the fallback
without knowing of it. The audit says which channel delivered a message that went by email, never
the address. One-time codes never fall back to email: they prove the shopper holds the phone.
"""

from __future__ import annotations

from typing import Any

from cartpilot.brands.config import BrandConfig
from cartpilot.brands.users import UserDirectory
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.ports import Notifier
from cartpilot.kernel.observability import logger
from cartpilot.notifications.email import EMAILED_KINDS, compose_email
from cartpilot.notifications.ports import EmailSender

# Messages that must reach one device and no other.
NEVER_BY_EMAIL = frozenset({"verification-code"})


class NotDelivered(RuntimeError):
    """Neither the topic nor email took the message."""


class ShopperChannels:
    def __init__(
        self,
        *,
        topic: Notifier,
        email: EmailSender,
        sender: str,
        users: UserDirectory,
        ledger: GoalLedger,
        brand: BrandConfig,
        emailed_kinds: frozenset[str] = EMAILED_KINDS,
    ) -> None:
        self._topic = topic
        self._email = email
        self._sender = sender
        self._users = users
        self._ledger = ledger
        self._brand = brand
        self._emailed_kinds = emailed_kinds

    def send(self, *, kind: str, goal_id: str, user_id: str, subject: str, body: dict[str, Any]) -> str:
        try:
            message_id = self._topic.send(
                kind=kind, goal_id=goal_id, user_id=user_id, subject=subject, body=body
            )
        except Exception as topic_error:
            if kind in NEVER_BY_EMAIL:
                raise
            logger.warning("topic publish failed; sending by email", extra={"goalId": goal_id, "kind": kind})
            try:
                return self._send_email(kind, goal_id, user_id, subject, body, fallback=True)
            except Exception as email_error:
                logger.warning(
                    "email fallback failed",
                    extra={"goalId": goal_id, "kind": kind, "error": type(email_error).__name__},
                )
                raise NotDelivered(
                    f"{kind} for goal {goal_id}: neither the topic nor email took it"
                ) from topic_error
        if kind in self._emailed_kinds:
            # The copy is extra: the topic delivered, so a failed copy is logged and audited, not raised
            # (raising would make the flow retry the step and send the topic message twice).
            try:
                self._send_email(kind, goal_id, user_id, subject, body, fallback=False)
            except Exception as exc:
                logger.warning(
                    "email copy not sent",
                    extra={"goalId": goal_id, "kind": kind, "error": type(exc).__name__},
                )
                self._ledger.note(
                    goal_id,
                    actor="notify",
                    event="notification.email-failed",
                    detail={"kind": kind, "channel": "email", "error": type(exc).__name__},
                )
        return message_id

    def _send_email(
        self, kind: str, goal_id: str, user_id: str, subject: str, body: dict[str, Any], *, fallback: bool
    ) -> str:
        profile = self._users.get(user_id)
        if profile is None or not profile.email:
            raise NotDelivered(f"no email address on file for the shopper of goal {goal_id}")
        email = compose_email(
            kind=kind,
            goal=self._ledger.store.get(goal_id),
            goal_id=goal_id,
            subject=subject,
            body=body,
            brand=self._brand,
            to=profile.email,
            sender=self._sender,
        )
        message_id = self._email.send(email)
        self._ledger.note(
            goal_id,
            actor="notify",
            event="notification.delivered",
            # Which channel, never where to: the address stays in the shopper's profile.
            detail={"kind": kind, "channel": "email", "fallbackFrom": "sns" if fallback else None},
        )
        return message_id
