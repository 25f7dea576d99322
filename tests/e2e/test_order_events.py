"""Order events end to end: the sandbox ships and delivers, its signed webhooks reach the API, the goal's
tracking follows and the shopper is told; forged, tampered, replayed, stale and misdirected events are
refused or absorbed and change nothing; a merchant set to be polled is read on a schedule instead."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cartpilot_local.client import CartPilotClient
from cartpilot_local.merchant import webhooks as sandbox_webhooks
from cartpilot_local.merchant.jwk import SigningKey
from cartpilot_local.merchant.webhooks import sign_rfc9421
from tests.e2e.conftest import LOW_RISK_GOAL, Stack
from tests.e2e.stack_process import StackProcess, brand_variant, running_stack_process

MERCHANT = "sandbox-merchant"


def wait_until(read: Any, done: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def completed_order(api: CartPilotClient, user: str) -> tuple[str, str]:
    goal_id = api.submit(user, LOW_RISK_GOAL).json()["goalId"]
    goal = api.wait_for(goal_id, timeout=60)
    assert goal["status"] == "COMPLETED", goal
    return goal_id, goal["receipt"]["orderId"]


def notices(api: CartPilotClient, goal_id: str, kind: str) -> list[dict[str, Any]]:
    """The shopper's messages of ``kind`` on the notification topic (email copies are listed apart)."""
    return [
        m
        for m in api.outbox()
        if m.get("kind") == kind and m.get("goalId") == goal_id and m.get("channel") != "email"
    ]


def test_ship_then_deliver_shows_each_step_and_tells_the_shopper_once(stack: Stack) -> None:
    goal_id, order_id = completed_order(stack.api, "shopper-0101")
    assert stack.api.goal(goal_id).get("tracking") is None

    shipped = stack.merchant.post(f"/_sandbox/orders/{order_id}/ship", json={"tracking_number": "SF1001"})
    assert shipped.status_code == 200, shipped.text
    assert shipped.json()["webhook"]["status"] == 200
    # Answered at once; the tracking sweep applies it within its period (a second locally).
    tracking = wait_until(lambda: stack.api.goal(goal_id).get("tracking"), lambda t: t is not None)
    assert (tracking["status"], tracking["carrier"], tracking["trackingNumber"]) == (
        "shipped",
        "SF Express",
        "SF1001",
    )
    assert [event["status"] for event in tracking["events"]] == ["shipped"]
    assert len(wait_until(lambda: notices(stack.api, goal_id, "shipped"), bool)) == 1

    delivered = stack.merchant.post(f"/_sandbox/orders/{order_id}/deliver")
    assert delivered.json()["webhook"]["status"] == 200
    goal = wait_until(lambda: stack.api.goal(goal_id), lambda g: g["tracking"]["status"] == "delivered")
    assert goal["status"] == "COMPLETED"
    assert goal["tracking"]["status"] == "delivered"
    assert [(e["status"], e["detail"]) for e in goal["tracking"]["events"]] == [
        ("shipped", "Handed to SF Express"),
        ("delivered", "Delivered to the recipient"),
    ]
    # The merchant's Get Order tells the same story.
    order = stack.local.merchant_state
    assert order is not None and [e["type"] for e in order.ledger.orders[order_id].fulfillment_events] == [
        "shipped",
        "delivered",
    ]

    # Sent again (a new event id, the same news): recorded, the shopper not told twice.
    again = stack.merchant.post(f"/_sandbox/orders/{order_id}/deliver")
    assert again.json()["webhook"]["status"] == 200
    assert len(wait_until(lambda: notices(stack.api, goal_id, "delivered"), bool)) == 1
    # The repeat is applied by the next sweep; it tells nobody anything twice.
    assert wait_until(lambda: _pending(stack), lambda pending: pending == 0) == 0
    assert len(notices(stack.api, goal_id, "shipped")) == 1
    assert len(notices(stack.api, goal_id, "delivered")) == 1
    assert stack.events(goal_id).count("order.event") == 3
    audit = stack.api.audit(goal_id)
    assert audit["verification"]["valid"]
    ledger = stack.ledger()
    assert len(ledger["charges"]) == 1 and ledger["refunds"] == []


def _pending(stack: Stack) -> int:
    """Order snapshots the tracking sweep has still to apply."""
    import boto3

    table = boto3.resource("dynamodb").Table(f"cartpilot-{stack.local.brand}-goals")
    return len(table.query(IndexName="openTracking", KeyConditionExpression="openTracking = :p",
                           ExpressionAttributeValues={":p": "pending"})["Items"])  # fmt: skip


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bytes, dict[str, str]]]:
    """Every order event the sandbox sends, as it went over the wire."""
    sent: list[tuple[str, bytes, dict[str, str]]] = []
    original = sandbox_webhooks._post

    def recording(url: str, body: bytes, headers: dict[str, str]) -> int:
        sent.append((url, body, dict(headers)))
        return original(url, body, headers)

    monkeypatch.setattr(sandbox_webhooks, "_post", recording)
    return sent


def _post(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(url, content=body, headers=headers, timeout=30)


def _signed(
    url: str,
    order: dict[str, Any],
    key: SigningKey,
    *,
    merchant_url: str,
    at: int,
    signed_at: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(order).encode()
    headers = {
        "Content-Type": "application/json",
        "UCP-Agent": f'profile="{merchant_url}/.well-known/ucp"',
        "Webhook-Id": str(uuid.uuid4()),
        "Webhook-Timestamp": str(at),
    }
    return body, sign_rfc9421(url, headers, body, key, at if signed_at is None else signed_at)


def test_forged_tampered_replayed_stale_and_misdirected_events_change_nothing(
    stack: Stack, captured: list[tuple[str, bytes, dict[str, str]]]
) -> None:
    goal_id, order_id = completed_order(stack.api, "shopper-0102")
    assert stack.merchant.post(f"/_sandbox/orders/{order_id}/ship").json()["webhook"]["status"] == 200
    ((url, body, headers),) = captured
    assert url == f"{stack.local.api_url}/webhooks/merchants/{MERCHANT}"
    wait_until(lambda: notices(stack.api, goal_id, "shipped"), bool)
    before = stack.api.goal(goal_id)["tracking"]
    assert before["status"] == "shipped"
    records = len(stack.api.audit(goal_id)["records"])
    outbox = len(stack.api.outbox())

    state = stack.local.merchant_state
    assert state is not None
    genuine_key = state.signing_key
    merchant_url = stack.local.merchant_url
    delivered = {**json.loads(body), "fulfillment": {
        **json.loads(body)["fulfillment"],
        "events": [*json.loads(body)["fulfillment"]["events"], {
            "id": "fe_9", "occurred_at": "2026-01-12T09:00:00Z", "type": "delivered",
            "line_items": [{"id": "x", "quantity": 1}], "tracking_number": "FAKE", "tracking_url": "https://x.example/t",
        }],
    }}  # fmt: skip
    now = int(time.time())

    # A key the merchant never published.
    forged_body, forged = _signed(
        url, delivered, SigningKey.generate("sandbox-merchant"), merchant_url=merchant_url, at=now
    )
    answer = _post(url, forged_body, forged)
    assert (answer.status_code, answer.json()["error"]["code"]) == (401, "key_not_found")

    # The genuine event with its body changed after signing.
    tampered = _post(url, body.replace(b'"shipped"', b'"delivered"'), headers)
    assert (tampered.status_code, tampered.json()["error"]["code"]) == (400, "digest_mismatch")

    # The genuine event again (same Webhook-Id): absorbed with 200.
    replay = _post(url, body, headers)
    assert replay.status_code == 200 and "ucp" in replay.json()

    # The merchant's own key, signed now, for an event older than the replay window.
    stale_body, stale = _signed(
        url, delivered, genuine_key, merchant_url=merchant_url, at=now - 600, signed_at=now
    )
    answer = _post(url, stale_body, stale)
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "stale_event")
    # ... and one whose signature itself is that old.
    old_body, old = _signed(url, delivered, genuine_key, merchant_url=merchant_url, at=now - 600)
    answer = _post(url, old_body, old)
    assert (answer.status_code, answer.json()["error"]["code"]) == (401, "signature_invalid")

    # The merchant's own key, for an order that is not ours.
    unknown = {**delivered, "id": "ord_not_ours"}
    unknown_body, unknown_headers = _signed(url, unknown, genuine_key, merchant_url=merchant_url, at=now)
    answer = _post(url, unknown_body, unknown_headers)
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "unknown_order")

    # A valid signature naming another merchant's profile as the signer.
    other_body, other = _signed(url, delivered, genuine_key, merchant_url="http://127.0.0.2:9", at=now)
    answer = _post(url, other_body, other)
    assert (answer.status_code, answer.json()["error"]["code"]) == (403, "signer_mismatch")

    # A merchant that is not the brand's.
    elsewhere = url.replace(MERCHANT, "other-merchant")
    misdirected_body, misdirected = _signed(
        elsewhere, delivered, genuine_key, merchant_url=merchant_url, at=now
    )
    answer = _post(elsewhere, misdirected_body, misdirected)
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "unknown_merchant")

    assert wait_until(lambda: _pending(stack), lambda pending: pending == 0) == 0
    assert stack.api.goal(goal_id)["tracking"] == before
    assert len(stack.api.audit(goal_id)["records"]) == records
    assert len(stack.api.outbox()) == outbox
    assert stack.api.audit(goal_id)["verification"]["valid"]


def test_the_platform_profile_advertises_the_merchants_webhook(stack: Stack) -> None:
    for path in ("/.well-known/ucp", "/.well-known/ucp/2026-01-11"):
        document = httpx.get(f"{stack.local.api_url}{path}", timeout=10).json()
        capabilities = document["ucp"]["capabilities"]
        entries = (
            capabilities["dev.ucp.shopping.order"]
            if isinstance(capabilities, dict)
            else [c for c in capabilities if c["name"] == "dev.ucp.shopping.order"]
        )
        assert entries[0]["config"] == {"webhook_url": f"{stack.local.api_url}/webhooks/merchants/{MERCHANT}"}


@pytest.fixture(scope="module")
def polled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    root = tmp_path_factory.mktemp("polled")
    merchants = [{"id": MERCHANT, "url": "http://127.0.0.1:8081", "orderEvents": "poll"}]
    brands = brand_variant(root, "polled", merchants=merchants)
    with running_stack_process(root / "stack.log", brand="polled", brands_dir=brands) as running:
        yield running


def test_a_merchant_set_to_poll_is_read_on_a_schedule(polled: StackProcess) -> None:
    api = CartPilotClient(polled.api_url)
    goal_id, order_id = completed_order(api, "shopper-0103")

    shipped = httpx.post(f"{polled.merchant_url}/_sandbox/orders/{order_id}/ship", timeout=30).json()
    assert shipped["webhook"] is None  # told of no webhook: the merchant pushes nothing
    goal = wait_until(
        lambda: api.goal(goal_id), lambda g: (g.get("tracking") or {}).get("status") == "shipped"
    )
    assert goal["tracking"]["status"] == "shipped"

    httpx.post(f"{polled.merchant_url}/_sandbox/orders/{order_id}/deliver", timeout=30)
    goal = wait_until(lambda: api.goal(goal_id), lambda g: g["tracking"]["status"] == "delivered")
    assert [e["status"] for e in goal["tracking"]["events"]] == ["shipped", "delivered"]
    # The notice follows the tracking update within the same sweep.
    kinds = wait_until(
        lambda: [
            m["kind"] for m in api.outbox() if m.get("goalId") == goal_id and m.get("channel") != "email"
        ],
        lambda found: "delivered" in found,
    )
    assert kinds.count("shipped") == 1 and kinds.count("delivered") == 1
    records = [r for r in api.audit(goal_id)["records"] if r["event"] == "order.event"]
    # Each new state of the order read once: as placed (when the sweep got there first), shipped, delivered.
    assert {r["detail"]["source"] for r in records} == {"poll"}
    statuses = [(r["detail"].get("tracking") or {}).get("status") for r in records]
    assert statuses[-2:] == ["shipped", "delivered"] and statuses[:-2] in ([], [None])
