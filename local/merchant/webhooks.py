"""The sandbox's order events: shipments it records, and the signed webhooks that report them.

order.md "Events": a business POSTs the full order entity to the webhook URL the platform advertises
in its profile (the order capability's ``config.webhook_url``), signed as its version says:

- 2026-04-08: RFC 9421 (signatures.md "REST Request Signing": ``@method @authority @path``,
  ``ucp-agent``, ``content-digest content-type``; the sandbox also covers ``webhook-id`` and
  ``webhook-timestamp`` so neither can be swapped), with ``Webhook-Id``, ``Webhook-Timestamp`` and
  ``UCP-Agent`` headers (Standard Webhooks);
- 2026-01-11: a detached JWS over the body (RFC 7797, unencoded payload) in ``Request-Signature``, the
  body carrying ``event_id`` and ``created_time`` (that version's ``order_event_webhook``).

The signing is the sandbox's own (http-message-signatures, cryptography), not CartPilot's, so the
platform's verifier is checked against an independent signer (the detached JWS is built by hand on
``cryptography``: jwcrypto's compact form refuses an unencoded payload holding a "."). Failed deliveries are retried a few
times ("MUST retry failed webhook deliveries").
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import http_sfv
import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver
from http_message_signatures.algorithms import ECDSA_P256_SHA256
from http_message_signatures.digests import ContentDigest

from cartpilot_local.merchant.codec_base import RenderContext, WireCodec
from cartpilot_local.merchant.jwk import SigningKey
from cartpilot_local.merchant.ledger import OrderRecord, iso
from cartpilot_local.merchant.protocol import ORDER, V2026_04_08, JsonObject
from cartpilot_local.merchant.state import MerchantState

ShipmentStep = Literal["shipped", "delivered"]
DEFAULT_CARRIER = "SF Express"
_ATTEMPTS = 3
_TIMEOUT = httpx.Timeout(connect=2.0, read=20.0, write=5.0, pool=2.0)


class NoWebhookUrl(Exception):
    """The order's platform advertises no order webhook (or was never known)."""


@dataclass(frozen=True)
class Delivery:
    """One order event as sent: where, its id, and what the platform answered (None: unreachable)."""

    url: str
    webhook_id: str
    status: int | None
    attempts: int

    def to_json(self) -> JsonObject:
        return {
            "url": self.url,
            "webhookId": self.webhook_id,
            "status": self.status,
            "attempts": self.attempts,
        }


def remember_platform(state: MerchantState, order_id: str, profile_url: str) -> None:
    """Notes which platform placed the order: its order events go to the webhook that profile names."""
    with state.lock:
        order = state.ledger.orders.get(order_id)
        if order is not None and order.platform_profile is None:
            order.platform_profile = profile_url


def record_shipment(
    state: MerchantState, order_id: str, step: ShipmentStep, *, carrier: str, tracking_number: str | None
) -> OrderRecord:
    """Appends a fulfilment event to the order (KeyError: no such order; ValueError: it cannot move so).

    Shipping twice or delivering twice appends nothing; delivering needs a shipment first, and a
    canceled order ships nothing.
    """
    with state.lock:
        order = state.ledger.orders[order_id]
        if order.status == "canceled":
            raise ValueError(f"order {order_id} was canceled; nothing ships")
        kinds = [event.get("type") for event in order.fulfillment_events]
        if step in kinds:
            return order
        shipped = next((e for e in order.fulfillment_events if e.get("type") == "shipped"), None)
        if step == "delivered" and shipped is None:
            raise ValueError(f"order {order_id} has not shipped yet")
        number = tracking_number or (str(shipped["tracking_number"]) if shipped else _tracking_number(order))
        name = str(shipped["carrier"]) if shipped and step == "delivered" else carrier
        description = f"Handed to {name}" if step == "shipped" else "Delivered to the recipient"
        order.fulfillment_events.append(
            {
                "id": f"fe_{len(order.fulfillment_events) + 1}",
                "occurred_at": iso(state.clock()),
                "type": step,
                "line_items": [{"id": line.id, "quantity": line.quantity} for line in order.lines],
                "tracking_number": number,
                "tracking_url": f"https://tracking.example/{number}",
                "carrier": name,
                "description": description,
            }
        )
        return order


def _tracking_number(order: OrderRecord) -> str:
    return "SF" + order.id.removeprefix("ord_").upper()[:12]


def webhook_url_of(profile: Mapping[str, Any]) -> str | None:
    """The order capability's ``config.webhook_url`` in a platform profile of either version."""
    ucp = profile.get("ucp")
    capabilities = ucp.get("capabilities") if isinstance(ucp, Mapping) else None
    if isinstance(capabilities, Mapping):  # 2026-04-08: a registry keyed by name
        entries = capabilities.get(ORDER)
    elif isinstance(capabilities, list):  # 2026-01-11: a list of named entries
        entries = [c for c in capabilities if isinstance(c, Mapping) and c.get("name") == ORDER]
    else:
        entries = None
    for entry in entries if isinstance(entries, list) else []:
        config = entry.get("config") if isinstance(entry, Mapping) else None
        url = config.get("webhook_url") if isinstance(config, Mapping) else None
        if isinstance(url, str) and url.startswith(("https://", "http://")):
            return url
    return None


def _ucp_agent(profile_url: str) -> str:
    header = http_sfv.Dictionary()
    header["profile"] = http_sfv.Item(profile_url)
    return str(header)


@dataclass
class _Request:
    method: str
    url: str
    headers: dict[str, str]


def sign_rfc9421(
    url: str, headers: dict[str, str], body: bytes, key: SigningKey, created: int
) -> dict[str, str]:
    """Content-Digest, Signature-Input and Signature of a webhook POST (2026-04-08)."""
    fields = {**headers, "Content-Digest": str(ContentDigest.create(body))}
    message = _Request("POST", url, fields)
    covered = ["@method", "@authority", "@path"]
    if "?" in url:
        covered.append("@query")
    covered += ["ucp-agent", "content-digest", "content-type", "webhook-id", "webhook-timestamp"]
    HTTPMessageSigner(
        signature_algorithm=ECDSA_P256_SHA256,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={key.kid: key.private_key}),
    ).sign(
        message,
        key_id=key.kid,
        created=datetime.fromtimestamp(created, UTC),
        label="sig1",
        include_alg=False,
        covered_component_ids=covered,
        use_existing_digest=True,
    )
    return message.headers


def sign_detached_jws(body: bytes, key: SigningKey) -> str:
    """A detached compact JWS over the raw body, unencoded (RFC 7797), for 2026-01-11: ES256 over
    ``BASE64URL(header) || "." || body``, the signature as fixed-width ``r || s`` (RFC 7518 3.4)."""
    header = {"alg": "ES256", "kid": key.kid, "b64": False, "crit": ["b64"]}
    protected = _b64url(json.dumps(header, separators=(",", ":")).encode())
    der = key.private_key.sign(protected.encode("ascii") + b"." + body, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return f"{protected}..{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def send_order_event(
    order: OrderRecord,
    *,
    state: MerchantState,
    codec: WireCodec,
    merchant_url: str,
    fetch_profile: Callable[[str], bytes],
    post: Callable[[str, bytes, dict[str, str]], int] | None = None,
    now: Callable[[], float] = time.time,
) -> Delivery:
    """Signs and POSTs the order's current entity to its platform's webhook; retried on failure.

    ``fetch_profile`` reads the platform profile's bytes (the app's cache); ``post`` sends and answers
    the status (default: httpx). Raises ``NoWebhookUrl`` when the platform advertises none.
    """
    if order.platform_profile is None:
        raise NoWebhookUrl(f"order {order.id} was placed by no known platform")
    try:
        profile = json.loads(fetch_profile(order.platform_profile))
    except Exception as exc:
        raise NoWebhookUrl(f"the platform profile {order.platform_profile} cannot be read: {exc}") from None
    url = webhook_url_of(profile) if isinstance(profile, dict) else None
    if url is None:
        raise NoWebhookUrl(f"the platform profile {order.platform_profile} advertises no order webhook")

    with state.lock:
        refunds = state.ledger.refunds_for(order.id)
        ctx = RenderContext(merchant_url.rstrip("/") + "/", {ORDER: codec.version}, ())
        entity = codec.order(order, refunds, ctx)
    webhook_id = str(uuid.uuid4())
    sent_at = int(now())
    if codec.version != V2026_04_08:
        entity = {**entity, "event_id": webhook_id, "created_time": iso(datetime.fromtimestamp(sent_at, UTC))}
    body = json.dumps(entity, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "UCP-Agent": _ucp_agent(merchant_url.rstrip("/") + "/.well-known/ucp"),
        "Webhook-Id": webhook_id,
        "Webhook-Timestamp": str(sent_at),
    }
    if codec.version == V2026_04_08:
        headers = sign_rfc9421(url, headers, body, state.signing_key, sent_at)
    else:
        headers["Request-Signature"] = sign_detached_jws(body, state.signing_key)

    send = post or _post
    status: int | None = None
    attempts = 0
    for attempts in range(1, _ATTEMPTS + 1):
        try:
            status = send(url, body, headers)
        except httpx.HTTPError:
            status = None
        if status is not None and 200 <= status < 300:
            break
        if status is not None and 400 <= status < 500 and status != 429:
            break  # the platform refused this event; sending it again cannot change that
        time.sleep(0.2 * attempts)  # a short backoff between delivery attempts
    return Delivery(url=url, webhook_id=webhook_id, status=status, attempts=attempts)


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    return httpx.post(
        url, content=body, headers=headers, timeout=_TIMEOUT, follow_redirects=False
    ).status_code
