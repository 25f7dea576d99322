"""The sandbox merchant as a UCP platform sees it, in both versions: discovery, catalog, checkout,
payment, orders, idempotency and faults."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from cartpilot_local.merchant.app import create_app
from cartpilot_local.merchant.catalog import CATALOG_SEED, build_catalog
from cartpilot_local.merchant.feed import COLUMNS, write_feed
from cartpilot_local.merchant.handlers import UNFUNDABLE_PAYMENT_HANDLERS
from cartpilot_local.merchant.state import MerchantState
from cartpilot_local.servers import serve_in_thread
from tests.fakes.ucp_platform import FakePlatform
from tests.fakes.ucp_shopper import BEIJING, GIFT_WRAP, SAN_FRANCISCO, SHOE_42, UcpShopper, new_key

NOW = datetime(2026, 1, 28, 3, 0, tzinfo=UTC)
NEW, OLD = "2026-04-08", "2026-01-11"
COMPLETE = "POST /checkout-sessions/{id}/complete"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock) -> MerchantState:
    return MerchantState(clock=clock)


@pytest.fixture(params=[NEW, OLD])
def version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def platform(version: str) -> FakePlatform:
    return FakePlatform(version)


@pytest.fixture
def client(state: MerchantState, platform: FakePlatform, version: str) -> TestClient:
    http = TestClient(create_app(state, ucp_version=version, profile_fetcher=platform.fetch))
    http.auth = platform.auth()
    return http


@pytest.fixture
def shopper(client: TestClient, version: str) -> UcpShopper:
    return UcpShopper(client, version)


def total(body: dict[str, Any], kind: str = "total") -> int:
    return next(entry["amount"] for entry in body["totals"] if entry["type"] == kind)


def codes(body: dict[str, Any]) -> list[str]:
    return [message["code"] for message in body.get("messages", [])]


def method_of(session: dict[str, Any]) -> dict[str, Any]:
    return dict(session["fulfillment"]["methods"][0])


def refused_code(response: httpx.Response, version: str) -> str:
    """The code of a refusal with no resource behind it, in the version's shape."""
    body = response.json()
    if version == NEW:
        assert response.status_code == 200 and body["ucp"]["status"] == "error"
    else:
        assert response.status_code in {400, 404} and body["status"] == "requires_escalation"
    return str(body["messages"][0]["code"])


# --- discovery -----------------------------------------------------------------------------------


def test_2026_04_08_discovery_names_the_endpoint_capabilities_handlers_and_keys() -> None:
    client = TestClient(create_app(MerchantState()))
    response = client.get("/.well-known/ucp")
    assert "public" in response.headers["Cache-Control"]
    profile = response.json()
    ucp = profile["ucp"]
    assert ucp["version"] == NEW
    ((rest),) = ucp["services"]["dev.ucp.shopping"]
    assert (rest["transport"], rest["endpoint"]) == ("rest", "http://testserver")
    capabilities = ucp["capabilities"]
    assert {"dev.ucp.shopping.checkout", "dev.ucp.shopping.fulfillment", "dev.ucp.shopping.order",
            "dev.ucp.shopping.catalog.search", "dev.ucp.shopping.catalog.lookup"} <= set(capabilities)  # fmt: skip
    assert capabilities["com.cartpilot.order_cancel"][0]["extends"] == "dev.ucp.shopping.order"
    assert "com.cartpilot.shipping_quote" not in capabilities
    tokenizer = ucp["payment_handlers"]["com.cartpilot.sandbox_tokenizer"][0]
    assert tokenizer["id"] == "sandbox_tokenizer"
    assert tokenizer["available_instruments"] == [{"type": "card"}]
    assert tokenizer["config"] == {"tokenization_url": "http://testserver/psp/tokens"}
    assert "com.google.pay" in ucp["payment_handlers"]
    (key,) = profile["signing_keys"]
    assert (key["kty"], key["crv"], key["alg"]) == ("EC", "P-256", "ES256")


def test_2026_01_11_discovery_has_its_own_shape_and_no_catalog() -> None:
    profile = TestClient(create_app(MerchantState(), ucp_version=OLD)).get("/.well-known/ucp").json()
    ucp = profile["ucp"]
    assert ucp["version"] == OLD
    assert ucp["services"]["dev.ucp.shopping"]["rest"]["endpoint"] == "http://testserver"
    names = [capability["name"] for capability in ucp["capabilities"]]
    assert names == ["dev.ucp.shopping.checkout", "dev.ucp.shopping.fulfillment", "dev.ucp.shopping.order",
                     "com.cartpilot.order_cancel", "com.cartpilot.order_return"]  # fmt: skip
    handlers = {handler["name"]: handler for handler in profile["payment"]["handlers"]}
    assert handlers["com.cartpilot.sandbox_tokenizer"]["config"]["tokenization_url"].endswith("/psp/tokens")
    assert profile["signing_keys"]


def test_a_merchant_can_advertise_only_handlers_a_platform_cannot_fund() -> None:
    app = create_app(MerchantState(), payment_handlers=UNFUNDABLE_PAYMENT_HANDLERS)
    handlers = TestClient(app).get("/.well-known/ucp").json()["ucp"]["payment_handlers"]
    assert set(handlers) == {"com.google.pay", "dev.shopify.shop_pay"}


# --- catalog (2026-04-08) ------------------------------------------------------------------------


@pytest.fixture
def catalog_client(state: MerchantState) -> TestClient:
    platform = FakePlatform(NEW)
    http = TestClient(create_app(state, profile_fetcher=platform.fetch))
    http.auth = platform.auth()
    return http


def search(client: TestClient, **body: Any) -> Any:
    response = client.post("/catalog/search", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_catalog_is_large_varied_and_the_same_every_time() -> None:
    catalog = build_catalog()
    categories = {product.category for product in catalog.products}
    assert len(catalog.products) >= 200
    assert {"running-shoes", "socks", "apparel", "bags", "electronics-accessories", "home", "books", "toys",
            "beauty", "gift-wrap", "knives", "alcohol"} <= categories  # fmt: skip
    assert any(not v.in_stock for p in catalog.products for v in p.variants)
    rebuilt = build_catalog.__wrapped__(CATALOG_SEED)
    assert [(v.id, v.prices, v.stock) for p in rebuilt.products for v in p.variants] == [
        (v.id, v.prices, v.stock) for p in catalog.products for v in p.variants
    ]


def test_search_finds_running_shoes_by_size_and_in_chinese(catalog_client: TestClient) -> None:
    found = search(
        catalog_client,
        query="running shoes",
        filters={"categories": ["running-shoes"], "size": "42", "in_stock": True},
    )
    assert len(found["products"]) >= 2
    assert SHOE_42 in {v["id"] for v in found["products"][0]["variants"]}
    assert found["ucp"]["capabilities"] == {"dev.ucp.shopping.catalog.search": [{"version": NEW}]}
    shoes = search(catalog_client, query="给朋友买跑鞋")["products"]
    assert shoes and all(p["categories"][0]["value"] == "running-shoes" for p in shoes)


def test_search_pages_with_a_cursor(catalog_client: TestClient) -> None:
    first = search(catalog_client, query="", filters={"categories": ["apparel"]}, pagination={"limit": 5})
    second = search(catalog_client, query="", filters={"categories": ["apparel"]},
                    pagination={"limit": 5, "cursor": first["pagination"]["cursor"]})  # fmt: skip
    assert first["pagination"]["has_next_page"] is True
    assert not {p["id"] for p in first["products"]} & {p["id"] for p in second["products"]}


def test_the_merchant_decides_the_currency(catalog_client: TestClient) -> None:
    usd = search(catalog_client, query="running socks", context={"currency": "USD"})["products"][0]
    assert usd["variants"][0]["price"]["currency"] == "USD"
    # catalog/index.md: businesses determine the currency; one we do not sell in is answered in CNY.
    euro = search(
        catalog_client, query="running socks", context={"currency": "EUR"}, filters={"price": {"max": 1}}
    )
    assert euro["products"][0]["variants"][0]["price"]["currency"] == "CNY"
    assert codes(euro) == ["price_filter_ignored"]


def test_lookup_correlates_inputs_and_explains_misses(catalog_client: TestClient) -> None:
    found = catalog_client.post(
        "/catalog/lookup", json={"ids": ["socks-running-white-m", "gift-wrap", "no-such-thing"]}
    ).json()
    by_id = {p["id"]: p for p in found["products"]}
    assert by_id["socks-running"]["variants"][0]["inputs"] == [
        {"id": "socks-running-white-m", "match": "exact"}
    ]
    assert by_id["gift-wrap"]["variants"][0]["price"] == {"amount": 2000, "currency": "CNY"}
    assert [(m["type"], m["code"], m["path"]) for m in found["messages"]] == [
        ("info", "not_found", "$.ids[2]")
    ]


def test_product_detail_narrows_variants_and_says_not_found(catalog_client: TestClient) -> None:
    detail = catalog_client.post(
        "/catalog/product", json={"id": "rs-stride-lite", "selected": [{"name": "Size", "label": "42"}]}
    ).json()
    assert {
        option["label"]
        for v in detail["product"]["variants"]
        for option in v["options"]
        if option["name"] == "Size"
    } == {"42"}
    missing = catalog_client.post("/catalog/product", json={"id": "nope"})
    assert missing.status_code == 200
    assert (missing.json()["ucp"]["status"], codes(missing.json())) == ("error", ["not_found"])


@pytest.mark.parametrize("category", ["knives", "alcohol"])
def test_restricted_categories_say_so(catalog_client: TestClient, category: str) -> None:
    products = search(catalog_client, query="", filters={"categories": [category]})["products"]
    assert len(products) >= 2
    assert all(p["metadata"]["restricted"] is True for p in products)


def test_without_a_catalog_there_is_no_catalog_capability_and_checkout_still_works() -> None:
    platform = FakePlatform(NEW)
    http = TestClient(create_app(MerchantState(clock=Clock()), catalog=False, profile_fetcher=platform.fetch))
    http.auth = platform.auth()
    capabilities = http.get("/.well-known/ucp").json()["ucp"]["capabilities"]
    assert not {"dev.ucp.shopping.catalog.search", "dev.ucp.shopping.catalog.lookup"} & set(capabilities)
    assert http.post("/catalog/search", json={"query": "socks"}).status_code == 404
    assert http.post("/catalog/lookup", json={"ids": [SHOE_42]}).status_code == 404
    assert UcpShopper(http, NEW).ready()["status"] == "ready_for_complete"


def legacy_client(state: MerchantState) -> TestClient:
    platform = FakePlatform(OLD)
    http = TestClient(create_app(state, ucp_version=OLD, profile_fetcher=platform.fetch))
    http.auth = platform.auth()
    return http


def test_2026_01_11_has_no_catalog_routes(state: MerchantState) -> None:
    assert legacy_client(state).post("/catalog/search", json={"query": "socks"}).status_code == 404


def test_the_catalog_is_written_as_a_merchant_center_feed(tmp_path: Path) -> None:
    path = tmp_path / "feed.tsv"
    count = write_feed(path, build_catalog(), currency="CNY", base_url="http://127.0.0.1:8081")
    header, *rows = path.read_text(encoding="utf-8").splitlines()
    assert header.split("\t") == list(COLUMNS)
    assert len(rows) == count >= 500
    shoe = dict(zip(COLUMNS, next(r for r in rows if r.startswith(SHOE_42 + "\t")).split("\t"), strict=True))
    assert (shoe["price"], shoe["availability"], shoe["item_group_id"], shoe["size"], shoe["color"]) == (
        "499.00 CNY", "in_stock", "rs-stride-lite", "42", "black",
    )  # fmt: skip
    assert shoe["link"] == "http://127.0.0.1:8081/products/rs-stride-lite"
    usd = tmp_path / "usd.tsv"
    write_feed(usd, build_catalog(), currency="USD", base_url="http://x")
    assert "book-zh-tea-stories-paperback" not in usd.read_text(encoding="utf-8")  # sold in CNY only


# --- checkout ------------------------------------------------------------------------------------


def test_options_appear_only_after_a_destination_and_the_merchant_names_it(shopper: UcpShopper) -> None:
    created = shopper.create((SHOE_42, 1), (GIFT_WRAP, 1))
    assert created.status_code == 201
    session = created.json()
    assert session["status"] == "incomplete"
    assert session["line_items"][0]["item"] == {
        "id": SHOE_42, "title": "Stride Lite Running Shoe (Black / EU 42)", "price": 49900,
        "image_url": "http://testserver/media/rs-stride-lite.svg",
    }  # fmt: skip
    assert total(session, "subtotal") == total(session) == 51900
    assert "groups" not in method_of(session)
    assert codes(session) == ["missing"]
    assert session["continue_url"] == f"http://testserver/checkout/{session['id']}"

    ours = {**BEIJING, "id": "my-friend-in-beijing"}
    placed = shopper.update(session, destination=ours).json()
    method = method_of(placed)
    (destination,) = method["destinations"]
    assert destination["id"] != "my-friend-in-beijing"  # the merchant assigns destination ids
    assert method["selected_destination_id"] == destination["id"]
    options = {o["id"]: o for o in method["groups"][0]["options"]}
    assert set(options) == {"standard", "expedited"}
    assert options["standard"]["totals"][0]["amount"] == 0  # free from 99.00 CNY
    assert (options["standard"]["earliest_fulfillment_time"], options["standard"]["latest_fulfillment_time"]) == (
        "2026-01-31T10:00:00Z", "2026-02-03T10:00:00Z",
    )  # fmt: skip
    assert placed["status"] == "incomplete" and codes(placed) == ["missing"]

    chosen = shopper.update(placed, option="expedited").json()
    assert chosen["status"] == "ready_for_complete"
    assert method_of(chosen)["groups"][0]["selected_option_id"] == "expedited"
    assert total(chosen, "fulfillment") == 4500
    assert total(chosen) == 51900 + 4500


def test_an_option_is_refused_for_a_destination_the_merchant_did_not_name(shopper: UcpShopper) -> None:
    placed = shopper.update(shopper.create((SHOE_42, 1)).json(), destination=BEIJING).json()
    body = shopper.update_body(placed, option="standard")
    body["fulfillment"]["methods"][0]["selected_destination_id"] = "dest_made_up"
    answer = shopper.http.put(
        f"/checkout-sessions/{placed['id']}", json=body, headers={"Idempotency-Key": new_key()}
    ).json()
    assert answer["status"] == "incomplete"
    assert "invalid" in codes(answer)
    assert method_of(answer)["selected_destination_id"] is None


def test_abroad_there_is_an_economy_option_without_a_delivery_window(shopper: UcpShopper) -> None:
    placed = shopper.update(
        shopper.create((SHOE_42, 1), currency="USD").json(), destination=SAN_FRANCISCO
    ).json()
    options = {o["id"]: o for o in method_of(placed)["groups"][0]["options"]}
    assert set(options) == {"international-economy", "international-standard", "international-express"}
    economy = options["international-economy"]
    assert "earliest_fulfillment_time" not in economy and "latest_fulfillment_time" not in economy
    assert economy["totals"][0]["amount"] < options["international-standard"]["totals"][0]["amount"]
    assert options["international-standard"]["latest_fulfillment_time"].startswith("2026-02-12")
    ready = shopper.update(placed, option="international-economy").json()
    assert ready["status"] == "ready_for_complete"


def test_update_replaces_quantities_and_keeps_the_shipping_choice(shopper: UcpShopper) -> None:
    session = shopper.ready((SHOE_42, 1))
    line = session["line_items"][0]
    updated = shopper.update(session, quantities={line["id"]: 2}).json()
    assert [(li["id"], li["quantity"]) for li in updated["line_items"]] == [(line["id"], 2)]
    assert method_of(updated)["groups"][0]["selected_option_id"] == "standard"
    assert total(updated) == 2 * 49900


def test_completing_charges_once_and_the_order_is_in_the_versions_shape(
    shopper: UcpShopper, version: str
) -> None:
    session = shopper.ready()
    response = shopper.complete(session["id"], shopper.token())
    assert response.status_code == 200
    completed = response.json()
    assert completed["status"] == "completed"
    assert "continue_url" not in completed
    order_ref = completed["order"]
    assert order_ref["permalink_url"] == f"http://testserver/orders/{order_ref['id']}"

    (charge,) = shopper.ledger()["charges"]
    assert (charge["order_id"], charge["amount"], charge["payment_method_id"]) == (
        order_ref["id"],
        total(session),
        "pm_user1_visa",
    )
    paid = completed["payment"]
    instrument = paid["instruments"][0]
    assert "credential" not in instrument  # overview.md: credentials are never echoed
    if version == OLD:
        assert paid["handlers"] and paid["selected_instrument_id"] == instrument["id"]

    answer = shopper.http.get(f"/orders/{order_ref['id']}")
    if version == OLD:  # 2026-01-11 defines no order route: orders reach a platform by webhook
        assert answer.status_code == 404
        return
    order = answer.json()
    assert order["checkout_id"] == session["id"]
    assert total(order) == total(session)
    assert [line["item"]["id"] for line in order["line_items"]] == [SHOE_42, GIFT_WRAP]
    assert "currency" in order


def test_a_completed_session_stays_completed(shopper: UcpShopper, version: str) -> None:
    session = shopper.ready()
    assert shopper.complete(session["id"], shopper.token()).status_code == 200
    again = shopper.complete(session["id"], shopper.token())
    cancel = shopper.cancel(session["id"])
    assert refused_code(again, version) == refused_code(cancel, version) == "checkout_completed"
    assert len(shopper.ledger()["charges"]) == 1


def test_a_declined_card_charges_nothing_and_another_card_can_follow(
    shopper: UcpShopper, version: str
) -> None:
    session = shopper.ready()
    declined = shopper.complete(session["id"], shopper.token("pm_declined"))
    assert declined.status_code == 200
    body = declined.json()
    assert body["status"] == "ready_for_complete"
    assert codes(body)[-1] == ("payment_failed" if version == NEW else "payment_declined")
    assert shopper.ledger()["charges"] == []
    assert shopper.complete(session["id"], shopper.token("pm_user2_unionpay")).json()["status"] == "completed"


@pytest.mark.parametrize(
    ("credential", "handler"),
    [
        ("pm_user1_visa", "sandbox_tokenizer"),
        ("4111111111111111", "sandbox_tokenizer"),
        (None, "gpay"),
        (None, "no_such"),
    ],
    ids=["payment-method-id-as-token", "card-number", "google-pay", "unknown-handler"],
)
def test_only_tokens_from_our_tokenizer_are_charged(
    shopper: UcpShopper, credential: str | None, handler: str
) -> None:
    session = shopper.ready()
    answer = shopper.complete(session["id"], credential or shopper.token(), handler_id=handler)
    assert answer.status_code == 200
    assert answer.json()["status"] == "ready_for_complete"
    assert codes(answer.json())[-1] in {"payment_failed", "invalid"}
    assert shopper.ledger()["charges"] == []


def test_tokens_are_single_use_and_expire(shopper: UcpShopper, clock: Clock) -> None:
    first = shopper.ready()
    token = shopper.token()
    assert shopper.complete(first["id"], token).json()["status"] == "completed"
    second = shopper.ready()
    reused = shopper.complete(second["id"], token).json()
    assert "already been used" in reused["messages"][-1]["content"]
    stale = shopper.token()
    clock.now += timedelta(minutes=16)
    expired = shopper.complete(second["id"], stale).json()
    assert "expired" in expired["messages"][-1]["content"]
    assert len(shopper.ledger()["charges"]) == 1


def test_the_psp_refuses_unknown_payment_methods(client: TestClient) -> None:
    issued = client.post("/psp/tokens", json={"payment_method_id": "pm_user5_amex"})
    assert issued.status_code == 201
    assert issued.json()["card"] == {"brand": "amex", "last_digits": "0005"}
    assert issued.json()["expires_at"] == "2026-01-28T03:15:00Z"
    assert client.post("/psp/tokens", json={"payment_method_id": "card 4111"}).status_code == 400
    assert client.post("/psp/tokens", json={"payment_method_id": "pm_x", "extra": 1}).status_code == 400


def test_out_of_stock_is_a_business_outcome_and_unknown_items_create_nothing(
    shopper: UcpShopper, state: MerchantState, version: str
) -> None:
    sold_out = shopper.create(("rs-trailhawk-green-42", 1))
    assert sold_out.status_code == 201
    assert sold_out.json()["status"] == "incomplete" and "out_of_stock" in codes(sold_out.json())
    unknown = shopper.create(("no-such-sku", 1))
    assert refused_code(unknown, version) == "item_unavailable"
    assert len(state.sessions) == 1


def test_a_canceled_session_cannot_be_canceled_or_changed_again(shopper: UcpShopper, version: str) -> None:
    session = shopper.create((SHOE_42, 1)).json()
    canceled = shopper.cancel(session["id"]).json()
    assert canceled["status"] == "canceled" and "continue_url" not in canceled
    assert refused_code(shopper.cancel(session["id"]), version) == "checkout_canceled"
    assert refused_code(shopper.update(session), version) == "checkout_canceled"


def test_cancelling_an_order_refunds_its_charge_once(shopper: UcpShopper) -> None:
    session = shopper.ready()
    order_id = shopper.complete(session["id"], shopper.token()).json()["order"]["id"]
    first = shopper.http.post(f"/orders/{order_id}/cancel", headers={"Idempotency-Key": new_key()})
    second = shopper.http.post(f"/orders/{order_id}/cancel", headers={"Idempotency-Key": new_key()})
    assert first.status_code == second.status_code == 200
    assert [a["type"] for a in second.json()["adjustments"]] == ["cancellation", "refund"]
    books = shopper.ledger()
    (charge,), (refund,) = books["charges"], books["refunds"]
    assert (refund["charge_id"], refund["amount"]) == (charge["id"], charge["amount"])


def test_unknown_sessions_and_orders_are_not_found(client: TestClient, version: str) -> None:
    for response in (client.get("/checkout-sessions/chk_nope"), client.get("/orders/ord_nope")):
        assert refused_code(response, version) == "not_found"
        assert response.status_code == (200 if version == NEW else 404)


def test_an_escalation_hands_the_buyer_to_the_merchants_page(client: TestClient, shopper: UcpShopper) -> None:
    session = shopper.ready()
    assert client.post("/_sandbox/escalate", json={"times": 1}).json() == {"pending": 1}
    escalated = shopper.complete(session["id"], shopper.token()).json()
    assert escalated["status"] == "requires_escalation"
    error = next(m for m in escalated["messages"] if m["type"] == "error")
    assert (error["code"], error["severity"]) == ("buyer_verification_required", "requires_buyer_input")
    assert client.get(escalated["continue_url"].removeprefix("http://testserver")).status_code == 200
    assert shopper.ledger()["charges"] == []
    assert shopper.complete(session["id"], shopper.token()).json()["status"] == "requires_escalation"


def test_a_platform_without_fulfillment_is_sent_to_the_merchants_site(
    state: MerchantState, version: str
) -> None:
    platform = FakePlatform(version, capabilities=("dev.ucp.shopping.checkout", "dev.ucp.shopping.order"))
    http = TestClient(create_app(state, ucp_version=version, profile_fetcher=platform.fetch))
    http.auth = platform.auth()
    session = UcpShopper(http, version).create((SHOE_42, 1)).json()
    assert session["status"] == "requires_escalation"
    assert "fulfillment" not in session and session["continue_url"]


def test_2026_01_11_wants_the_currency_and_payment_on_create(state: MerchantState) -> None:
    body = {"line_items": [{"item": {"id": SHOE_42}, "quantity": 1}]}
    refused = legacy_client(state).post(
        "/checkout-sessions", json=body, headers={"Idempotency-Key": new_key()}
    )
    assert refused.status_code == 400
    assert "currency" in refused.json()["messages"][0]["content"]
    assert state.sessions == {}


@pytest.mark.parametrize("header", ["X-API-Key", "Authorization"])
def test_a_configured_api_key_is_required(state: MerchantState, version: str, header: str) -> None:
    platform = FakePlatform(version)
    http = TestClient(
        create_app(state, ucp_version=version, profile_fetcher=platform.fetch, api_key="s3cret")
    )
    http.auth = platform.auth()
    shopper = UcpShopper(http, version)
    assert shopper.http.get("/checkout-sessions/chk_1").status_code == 401
    wrong = http.get(
        "/checkout-sessions/chk_1", headers={header: "Bearer nope" if header == "Authorization" else "nope"}
    )
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == 'Bearer realm="ucp"'
    right = {header: "Bearer s3cret" if header == "Authorization" else "s3cret"}
    assert (
        http.post(
            "/checkout-sessions",
            json=shopper.create_body((SHOE_42, 1)),
            headers={**right, "Idempotency-Key": new_key()},
        ).status_code
        == 201
    )


# --- idempotency ---------------------------------------------------------------------------------


def test_a_replay_returns_the_stored_answer_and_does_nothing_again(
    shopper: UcpShopper, state: MerchantState
) -> None:
    first = shopper.create((SHOE_42, 1), key="k-same")
    again = shopper.create((SHOE_42, 1), key="k-same")
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert list(state.sessions) == [first.json()["id"]]


def test_replaying_a_completion_never_charges_twice(shopper: UcpShopper) -> None:
    session = shopper.ready()
    token = shopper.token()
    first = shopper.complete(session["id"], token, key="k-pay")
    second = shopper.complete(session["id"], token, key="k-pay")
    assert second.json() == first.json()
    assert len(shopper.ledger()["charges"]) == 1


def test_the_same_key_with_another_request_is_a_409(shopper: UcpShopper, version: str) -> None:
    shopper.create((SHOE_42, 1), key="k-create")
    reused = shopper.create((SHOE_42, 2), key="k-create")
    assert reused.status_code == 409
    body = reused.json()
    code = body["code"] if version == NEW else body["messages"][0]["code"]
    assert code == "idempotency_conflict"


def test_keys_are_scoped_per_route_and_required(shopper: UcpShopper) -> None:
    session = shopper.create((SHOE_42, 1), key="k-shared").json()
    assert shopper.cancel(session["id"], key="k-shared").json()["status"] == "canceled"
    missing = shopper.http.post("/checkout-sessions", json=shopper.create_body((SHOE_42, 1)))
    assert missing.status_code == 400


# --- faults --------------------------------------------------------------------------------------


def order_fault(client: TestClient, route: str, mode: str, **extra: Any) -> None:
    response = client.post("/_sandbox/faults", json={"route": route, "mode": mode, **extra})
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(("mode", "status"), [("error_500", 500), ("error_429", 429), ("error_400", 400)])
def test_error_faults_answer_before_doing_anything_then_run_out(
    client: TestClient, shopper: UcpShopper, state: MerchantState, mode: str, status: int
) -> None:
    order_fault(client, "POST /checkout-sessions", mode, times=2, retry_after=0)
    answers = [shopper.create((SHOE_42, 1), key="k-create") for _ in range(3)]
    assert [a.status_code for a in answers] == [status, status, 201]
    if mode == "error_429":
        assert answers[0].headers["Retry-After"] == "0"
    assert len(state.sessions) == 1


def test_a_fault_can_let_the_first_matching_requests_through(client: TestClient, shopper: UcpShopper) -> None:
    order_fault(client, "POST /checkout-sessions", "error_500", times=1, after=2)
    answers = [shopper.create((SHOE_42, 1), key=f"k-after-{n}") for n in range(4)]
    assert [a.status_code for a in answers] == [201, 201, 500, 201]


def test_faults_follow_the_openapi_route_templates(client: TestClient) -> None:
    order_fault(client, "GET /checkout-sessions/{id}", "error_500")
    assert client.get("/checkout-sessions/chk_nope").status_code == 500
    for unknown in ("POST /shipping/quote", "POST /checkout/{id}"):
        assert (
            client.post("/_sandbox/faults", json={"route": unknown, "mode": "error_500"}).status_code == 400
        )


def test_reset_empties_the_ledger_sessions_faults_and_keys(
    client: TestClient, shopper: UcpShopper, state: MerchantState
) -> None:
    shopper.complete(shopper.ready()["id"], shopper.token())
    order_fault(client, COMPLETE, "error_500", times=5)
    assert client.post("/_sandbox/reset").status_code == 200
    assert shopper.ledger() == {"orders": [], "charges": [], "refunds": []}
    assert state.sessions == {}
    assert client.get("/_sandbox/faults").json() == {"faults": []}


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, MerchantState, FakePlatform]]:
    platform = FakePlatform(NEW)
    state = MerchantState(clock=lambda: NOW)
    server = serve_in_thread(create_app(state, profile_fetcher=platform.fetch))
    try:
        yield server.url, state, platform
    finally:
        server.stop()


@pytest.fixture
def live(served: tuple[str, MerchantState, FakePlatform]) -> Iterator[tuple[UcpShopper, MerchantState]]:
    url, state, platform = served
    state.reset()
    with httpx.Client(base_url=url, timeout=5.0, auth=platform.auth()) as http:
        yield UcpShopper(http, NEW), state


def test_drop_response_after_commit_commits_but_the_caller_never_hears(
    live: tuple[UcpShopper, MerchantState],
) -> None:
    shopper, _ = live
    session = shopper.ready()
    token = shopper.token()
    shopper.http.post(
        "/_sandbox/faults",
        json={"route": COMPLETE, "mode": "drop_response_after_commit", "delay_seconds": 1.0},
    )
    with pytest.raises(httpx.ReadTimeout):
        shopper.http.post(f"/checkout-sessions/{session['id']}/complete", json=shopper.payment_body(token),
                          headers={"Idempotency-Key": "live-pay"}, timeout=0.2)  # fmt: skip
    assert len(shopper.ledger()["charges"]) == 1
    replay = shopper.complete(session["id"], token, key="live-pay")
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["status"] == "completed"


def test_a_duplicate_of_a_request_in_flight_is_told_to_retry(live: tuple[UcpShopper, MerchantState]) -> None:
    shopper, state = live
    session = shopper.ready()
    token = shopper.token()
    shopper.http.post(
        "/_sandbox/faults",
        json={"route": COMPLETE, "mode": "timeout", "delay_seconds": 0.5, "hold_idempotency_key": True},
    )
    first: dict[str, httpx.Response] = {}
    worker = threading.Thread(
        target=lambda: first.update(r=shopper.complete(session["id"], token, key="live-pay"))
    )
    worker.start()
    scope = f"{FakePlatform(NEW).url} {COMPLETE}"
    assert state.idempotency.wait_until_in_flight(scope, "live-pay", timeout=5.0)
    duplicate = shopper.complete(session["id"], token, key="live-pay")
    worker.join(10)
    # 409 means a reused key with another payload (overview.md); a duplicate in flight is retried.
    assert (duplicate.status_code, duplicate.headers["Retry-After"]) == (503, "1")
    assert first["r"].json()["status"] == "completed"
    assert len(shopper.ledger()["charges"]) == 1


def test_the_psp_repeats_a_token_for_a_repeated_idempotency_key(client: TestClient) -> None:
    """A platform retrying a completion asks again under the same key and must send the same token."""
    headers = {"Idempotency-Key": "tok-key-1"}
    first = client.post("/psp/tokens", json={"payment_method_id": "pm_user1_visa"}, headers=headers)
    again = client.post("/psp/tokens", json={"payment_method_id": "pm_user1_visa"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["token"] == again.json()["token"]

    other = client.post("/psp/tokens", json={"payment_method_id": "pm_user2_visa"}, headers=headers)
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    fresh = client.post("/psp/tokens", json={"payment_method_id": "pm_user1_visa"})
    assert fresh.json()["token"] != first.json()["token"]
