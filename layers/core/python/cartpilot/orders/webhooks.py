"""``POST /webhooks/merchants/{merchantId}``: a merchant's order event, checked before anything is kept.

In order, each refusal changing nothing:

1. the merchant is one of the brand's (``404 unknown_merchant``);
2. the signature is the merchant's, as its negotiated UCP version says (``webhook_signatures``;
   a key id its cached profile lacks refetches the profile once, for key rotation);
3. the signer is the merchant (order.md, "Authorization"): a ``UCP-Agent`` profile, required by
   2026-04-08 and checked when 2026-01-11 sends one, must be this merchant's (``403 signer_mismatch``);
4. the body is an order entity (``400 invalid_order``);
5. the event has an id and a timestamp inside the replay window: ``Webhook-Id`` and
   ``Webhook-Timestamp`` (2026-04-08, Standard Webhooks); 2026-01-11 carries ``event_id`` and
   ``created_time`` in the signed body (``400 stale_event`` outside the window);
6. the order is one placed with this merchant for one of our goals (``404 unknown_order``).

Then ``events.accept_order_event``: a repeated event id is absorbed (200, nothing changes); a new one
is audited and its snapshot queued for the tracking sweep, which updates tracking and tells the shopper.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit

from http_sfv import Dictionary, Item

from cartpilot.commerce.errors import MerchantRejected, MerchantUnavailable
from cartpilot.commerce.platform_profile import CURRENT_VERSION, ORDER
from cartpilot.commerce.signatures import SignatureError
from cartpilot.goals.ledger import GoalLedger
from cartpilot.orders.events import accept_order_event
from cartpilot.orders.merchant_keys import MerchantKeys
from cartpilot.orders.ports import OrderEventStore, OrderLink
from cartpilot.orders.webhook_signatures import verify_webhook_signature

# Standard Webhooks' default tolerance, either side of our clock.
REPLAY_WINDOW_SECONDS: Final = 300
_MAX_ID: Final = 200


class WebhookRefused(Exception):
    """A webhook not taken: the status and code to answer with; nothing was recorded."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class WebhookAccepted:
    version: str
    goalId: str
    # The event id was recorded before: absorbed, nothing changed.
    duplicate: bool

    def body(self) -> dict[str, Any]:
        """The 200 answer of ``order_event_webhook``: ``{"ucp": ...}`` in the version's shape."""
        if self.version == CURRENT_VERSION:
            return {
                "ucp": {
                    "version": self.version,
                    "status": "success",
                    "capabilities": {ORDER: [{"version": self.version}]},
                }
            }
        return {"ucp": {"version": self.version, "capabilities": [{"name": ORDER, "version": self.version}]}}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _agent_profile(header: str | None) -> str | None:
    """The profile URL of a ``UCP-Agent`` field (RFC 8941 Dictionary, ``profile="<url>"``)."""
    if header is None:
        return None
    parsed = Dictionary()
    try:
        parsed.parse(header.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise WebhookRefused(400, "invalid_profile_url", "UCP-Agent is not an RFC 8941 dictionary") from None
    member = parsed.get("profile")
    if not isinstance(member, Item) or not isinstance(member.value, str):
        raise WebhookRefused(400, "invalid_profile_url", 'UCP-Agent needs profile="<URL>"')
    return member.value


def _event_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_ID or not value.isprintable():
        raise WebhookRefused(
            400, "invalid_event", f"{what} must be a non-empty printable id of at most {_MAX_ID} characters"
        )
    return value.strip()


def _unix_time(value: Any, what: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return int(moment.timestamp())
    raise WebhookRefused(400, "invalid_event", f"{what} must be a Unix time or an RFC 3339 timestamp")


def _event_identity(version: str, headers: Mapping[str, str], order: Mapping[str, Any]) -> tuple[str, int]:
    if version == CURRENT_VERSION:
        if "webhook-id" not in headers or "webhook-timestamp" not in headers:
            raise WebhookRefused(
                400, "invalid_event", "an order event needs Webhook-Id and Webhook-Timestamp"
            )
        return _event_id(headers["webhook-id"], "Webhook-Id"), _unix_time(
            headers["webhook-timestamp"], "Webhook-Timestamp"
        )
    # 2026-01-11: the signed body carries them; headers, when sent, must not contradict them.
    event_id = _event_id(order.get("event_id", headers.get("webhook-id")), "event_id")
    if "webhook-id" in headers and headers["webhook-id"] != event_id:
        raise WebhookRefused(400, "invalid_event", "Webhook-Id differs from the signed event_id")
    created = order.get("created_time", headers.get("webhook-timestamp"))
    return event_id, _unix_time(created, "created_time")


def _order_of(body: bytes) -> dict[str, Any]:
    try:
        order = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRefused(400, "invalid_order", "the body is not JSON") from None
    if not isinstance(order, dict) or not isinstance(order.get("id"), str) or not order["id"]:
        raise WebhookRefused(400, "invalid_order", "the body is not an order entity with an id")
    if len(order["id"]) > _MAX_ID:
        raise WebhookRefused(400, "invalid_order", "the order id is too long")
    return order


def receive_order_webhook(
    merchant_id: str,
    *,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    now: int,
    merchants: Mapping[str, str],
    keys: MerchantKeys,
    store: OrderEventStore,
    ledger: GoalLedger,
) -> WebhookAccepted:
    """Checks and records one order event. ``merchants`` maps the brand's merchant ids to their URLs;
    ``headers`` are the request's fields, any case. Raises ``WebhookRefused``."""
    fields = {name.lower(): value for name, value in headers.items()}
    merchant_url = merchants.get(merchant_id)
    if merchant_url is None:
        raise WebhookRefused(404, "unknown_merchant", f"no merchant {merchant_id} sends events here")
    try:
        signer = keys.signer(merchant_id)
        try:
            verify_webhook_signature(
                signer.version, url=url, headers=fields, body=body, keys=signer.keys, now=now
            )
        except SignatureError as error:
            if error.code != "key_not_found":
                raise
            signer = keys.signer(merchant_id, refresh=True)  # a key rotated in since we cached
            verify_webhook_signature(
                signer.version, url=url, headers=fields, body=body, keys=signer.keys, now=now
            )
    except SignatureError as error:
        raise WebhookRefused(error.status, error.code, error.message) from None
    except MerchantUnavailable:
        raise WebhookRefused(
            503, "merchant_unavailable", "the merchant's profile cannot be read now; retry"
        ) from None
    except MerchantRejected as error:
        raise WebhookRefused(403, "merchant_profile_unusable", str(error)) from None

    profile = _agent_profile(fields.get("ucp-agent"))
    if profile is None and signer.version == CURRENT_VERSION:
        raise WebhookRefused(400, "invalid_profile_url", "the UCP-Agent header is missing")
    if profile is not None and _origin(profile) != _origin(merchant_url):
        raise WebhookRefused(403, "signer_mismatch", f"the signer's profile is not merchant {merchant_id}'s")

    order = _order_of(body)
    event_id, timestamp = _event_identity(signer.version, fields, order)
    if abs(now - timestamp) > REPLAY_WINDOW_SECONDS:
        raise WebhookRefused(
            400, "stale_event", f"the event's timestamp is more than {REPLAY_WINDOW_SECONDS} seconds from now"
        )

    goal_id = store.goal_for_order(merchant_id, order["id"])
    if goal_id is None:
        raise WebhookRefused(
            404, "unknown_order", f"no order {order['id']} of merchant {merchant_id} is ours"
        )
    link = OrderLink(merchantId=merchant_id, orderId=order["id"], goalId=goal_id)
    recorded = accept_order_event(link, event_id, order, source="webhook", store=store, ledger=ledger)
    return WebhookAccepted(version=signer.version, goalId=goal_id, duplicate=not recorded)
