"""The sandbox's returns (com.cartpilot.order_return): filed for a shipped order only, once per order,
refunded once when the goods arrive; a shipped order is no longer cancelled; every message holds to
its version's schemas."""

from __future__ import annotations

import json
import uuid

import pytest
from fastapi.testclient import TestClient

from cartpilot.orders.returns import completed_refund
from cartpilot_local.merchant.app import codec_for, create_app
from cartpilot_local.merchant.specs import SpecLibrary
from cartpilot_local.merchant.state import MerchantState
from cartpilot_local.merchant.webhooks import send_order_event
from tests.fakes.ucp_platform import FakePlatform
from tests.fakes.ucp_shopper import BEIJING, SHOE_42, UcpShopper
from tests.integration.test_sandbox_order_events import _profile_with_webhook

NEW, OLD = "2026-04-08", "2026-01-11"


def _placed(version: str) -> tuple[TestClient, MerchantState, str]:
    platform = FakePlatform(version)
    state = MerchantState()
    http = TestClient(
        create_app(state, ucp_version=version, profile_fetcher=platform.fetch, validate_schemas=True)
    )
    http.auth = platform.auth(signed=version == NEW)
    shopper = UcpShopper(http, version)
    created = shopper.create((SHOE_42, 1)).json()
    shipped = shopper.ship(created, destination=BEIJING, option="expedited")
    completed = shopper.complete(shipped["id"], shopper.token()).json()
    assert completed["status"] == "completed"
    return http, state, completed["order"]["id"]


def _post(http: TestClient, path: str, key: str | None = None) -> dict[str, object]:
    answer = http.post(path, headers={"Idempotency-Key": key or str(uuid.uuid4())})
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


def _refusal_codes(http: TestClient, path: str) -> list[object]:
    """The codes of a business refusal, in the version's no-resource shape (200 or 400)."""
    answer = http.post(path, headers={"Idempotency-Key": str(uuid.uuid4())})
    assert answer.status_code in (200, 400), answer.text
    messages = answer.json().get("messages")
    return [m.get("code") for m in messages] if isinstance(messages, list) else []


@pytest.mark.parametrize("version", [NEW, OLD])
def test_discovery_advertises_the_return_route(version: str) -> None:
    http, _, _ = _placed(version)
    capabilities = http.get("/.well-known/ucp").json()["ucp"]["capabilities"]
    entries = (
        capabilities["com.cartpilot.order_return"]
        if version == NEW
        else [c for c in capabilities if c["name"] == "com.cartpilot.order_return"]
    )
    ((entry),) = entries
    assert entry["extends"] == "dev.ucp.shopping.order"
    assert entry["config"] == {"endpoint": "http://testserver/orders/{id}/return", "method": "POST"}


@pytest.mark.parametrize("version", [NEW, OLD])
def test_a_return_needs_a_shipment_and_a_shipped_order_is_not_cancelled(version: str) -> None:
    http, state, order_id = _placed(version)

    assert _refusal_codes(http, f"/orders/{order_id}/return") == ["order_not_fulfilled"]
    assert state.ledger.returns == {}

    assert http.post(f"/_sandbox/orders/{order_id}/ship").status_code == 200
    assert _refusal_codes(http, f"/orders/{order_id}/cancel") == ["order_fulfilled"]
    assert state.ledger.orders[order_id].status == "open" and state.ledger.refunds == []
    assert http.get("/_sandbox/conformance").json()["violations"] == []


@pytest.mark.parametrize("version", [NEW, OLD])
def test_one_return_per_order_refunded_once_on_receipt(version: str) -> None:
    http, state, order_id = _placed(version)
    http.post(f"/_sandbox/orders/{order_id}/ship")

    first = _post(http, f"/orders/{order_id}/return", key="return-key-1")
    replay = http.post(f"/orders/{order_id}/return", headers={"Idempotency-Key": "return-key-1"})
    other_key = _post(http, f"/orders/{order_id}/return")
    assert replay.json() == first and replay.headers.get("Idempotent-Replayed") == "true"
    (filed,) = state.ledger.returns.values()
    pending = [a for a in first["adjustments"] if a["type"] == "return"]  # type: ignore[union-attr]
    assert [(a["id"], a["status"]) for a in pending] == [(filed.id, "pending")]
    assert other_key["adjustments"] == first["adjustments"]
    assert state.ledger.refunds == []

    for _ in range(2):
        received = http.post(f"/_sandbox/returns/{filed.id}/receive")
        assert received.status_code == 200 and received.json()["return"]["status"] == "received"
    ledger = http.get("/_sandbox/ledger").json()
    (charge,) = ledger["charges"]
    (refund,) = ledger["refunds"]
    assert refund["amount"] == charge["amount"] and ledger["returns"][0]["refund_ids"] == [refund["id"]]

    sent: list[bytes] = []
    send_order_event(
        state.ledger.orders[order_id], state=state, codec=codec_for(version), merchant_url="http://testserver",
        fetch_profile=lambda url: _profile_with_webhook(version), post=lambda u, b, h: sent.append(b) or 200,
    )  # fmt: skip
    entity = json.loads(sent[0])
    spec = SpecLibrary(version)
    assert spec.problems(entity, {"$ref": spec.uri("schemas/shopping/order.json")}, "response", "read") == []
    assert completed_refund(entity, charge["currency"]).amount_minor == charge["amount"]  # type: ignore[union-attr]
    assert http.get("/_sandbox/conformance").json()["violations"] == []


def test_receiving_an_unknown_return_is_refused() -> None:
    http, state, _ = _placed(NEW)
    assert http.post("/_sandbox/returns/ret_missing/receive").status_code == 404
    assert state.ledger.refunds == []
