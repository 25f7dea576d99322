"""The sandbox's shipments and order events hold to each UCP version's schemas, and its webhooks are
signed so that CartPilot's verifier (each version's scheme) accepts them and nothing else."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cartpilot.orders.webhook_signatures import verify_webhook_signature
from cartpilot_local.merchant.app import codec_for, create_app
from cartpilot_local.merchant.specs import SpecLibrary
from cartpilot_local.merchant.state import MerchantState
from cartpilot_local.merchant.webhooks import send_order_event, webhook_url_of
from tests.fakes.ucp_platform import FakePlatform
from tests.fakes.ucp_shopper import BEIJING, SHOE_42, UcpShopper

NEW, OLD = "2026-04-08", "2026-01-11"
WEBHOOK = "https://platform.example/webhooks/merchants/sandbox-merchant"


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


def _profile_with_webhook(version: str) -> bytes:
    if version == NEW:
        document: dict[str, Any] = {
            "ucp": {"capabilities": {"dev.ucp.shopping.order": [{"config": {"webhook_url": WEBHOOK}}]}}
        }
    else:
        document = {
            "ucp": {"capabilities": [{"name": "dev.ucp.shopping.order", "config": {"webhook_url": WEBHOOK}}]}
        }
    return json.dumps(document).encode()


@pytest.mark.parametrize("version", [NEW, OLD])
def test_shipping_and_delivering_keep_every_message_in_the_schemas(version: str) -> None:
    http, state, order_id = _placed(version)
    assert state.ledger.orders[order_id].platform_profile is not None
    shipped = http.post(
        f"/_sandbox/orders/{order_id}/ship", json={"carrier": "EMS", "tracking_number": "EM1"}
    )
    # The fake platform's profile advertises no webhook: recorded, nothing sent.
    assert shipped.status_code == 200 and shipped.json()["webhook"] is None
    assert http.post(f"/_sandbox/orders/{order_id}/deliver").status_code == 200
    if version == NEW:
        order = http.get(f"/orders/{order_id}").json()
        events = order["fulfillment"]["events"]
        assert [(e["type"], e["carrier"], e["tracking_number"]) for e in events] == [
            ("shipped", "EMS", "EM1"),
            ("delivered", "EMS", "EM1"),
        ]
        # order.md "Status Derivation": every unit shipped, so the line (and the order) is fulfilled.
        assert [(line["quantity"]["fulfilled"], line["status"]) for line in order["line_items"]] == [
            (line["quantity"]["total"], "fulfilled") for line in order["line_items"]
        ]
    report = http.get("/_sandbox/conformance").json()
    assert report["violations"] == []


def test_a_shipment_of_an_unknown_or_unshipped_order_is_refused() -> None:
    http, _, order_id = _placed(NEW)
    assert http.post("/_sandbox/orders/ord_missing/ship").status_code == 404
    assert http.post(f"/_sandbox/orders/{order_id}/deliver").status_code == 409
    assert (
        http.post(f"/_sandbox/orders/{order_id}/ship", json={"tracking_number": "no spaces"}).status_code
        == 400
    )
    assert http.post(f"/_sandbox/orders/{order_id}/ship", json={"surprise": 1}).status_code == 400


@pytest.mark.parametrize("version", [NEW, OLD])
def test_the_order_event_is_the_versions_order_signed_as_the_version_says(version: str) -> None:
    http, state, order_id = _placed(version)
    http.post(f"/_sandbox/orders/{order_id}/ship")
    sent: list[tuple[str, bytes, dict[str, str]]] = []

    def post(url: str, body: bytes, headers: dict[str, str]) -> int:
        sent.append((url, body, headers))
        return 200

    delivery = send_order_event(
        state.ledger.orders[order_id], state=state, codec=codec_for(version), merchant_url="http://testserver",
        fetch_profile=lambda url: _profile_with_webhook(version), post=post,
    )  # fmt: skip
    assert delivery.status == 200 and delivery.attempts == 1
    ((url, body, headers),) = sent
    assert url == WEBHOOK == webhook_url_of(json.loads(_profile_with_webhook(version)))
    entity = json.loads(body)
    spec = SpecLibrary(version)
    schema = {"$ref": spec.uri("schemas/shopping/order.json")}
    assert spec.problems(entity, schema, "response", "read") == []
    # The shipment is in the line items as each version derives it: all units fulfilled.
    assert [(line["quantity"]["fulfilled"], line["status"]) for line in entity["line_items"]] == [
        (line.quantity, "fulfilled") for line in state.ledger.orders[order_id].lines
    ]
    if version == OLD:
        assert entity["event_id"] == headers["Webhook-Id"] and entity["created_time"].endswith("Z")
    keys = {state.signing_key.kid: state.signing_key.public_jwk}
    fields = {name.lower(): value for name, value in headers.items()}
    now = int(time.time())
    assert (
        verify_webhook_signature(version, url=url, headers=fields, body=body, keys=keys, now=now)
        == state.signing_key.kid
    )
