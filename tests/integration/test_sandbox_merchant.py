"""The sandbox merchant as a UCP client sees it: catalog, shipping, checkout, orders, idempotency, faults."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from cartpilot_local.merchant.app import create_app
from cartpilot_local.merchant.catalog import CATALOG_SEED, build_catalog
from cartpilot_local.merchant.state import MerchantState
from cartpilot_local.servers import RunningServer
from tests.conftest import SandboxMerchant

NOW = datetime(2026, 1, 28, 3, 0, tzinfo=UTC)
COMPLETE = "POST /checkout-sessions/{id}/complete"
BEIJING = {
    "id": "dest_bj",
    "street_address": "7 Gongti North Road, Building 3",
    "address_locality": "Beijing",
    "address_region": "BJ",
    "postal_code": "100027",
    "address_country": "CN",
    "first_name": "Zhang",
    "last_name": "Min",
    "phone_number": "+86 139 1088 2266",
}
SHOE_42 = "rs-stride-lite-black-42"
PAY = {
    "payment": {
        "instruments": [
            {
                "id": "instrument_1",
                "handler_id": "sandbox_token",
                "type": "card",
                "credential": {"type": "token", "token": "pm_user1_visa"},
                "selected": True,
            }
        ]
    }
}


@pytest.fixture
def state() -> MerchantState:
    return MerchantState(clock=lambda: NOW)


@pytest.fixture
def client(state: MerchantState) -> TestClient:
    return TestClient(create_app(state))


def key(name: str) -> dict[str, str]:
    return {"Idempotency-Key": name}


def lines(*items: tuple[str, int]) -> list[dict[str, Any]]:
    return [{"item": {"id": item_id}, "quantity": quantity} for item_id, quantity in items]


def create(client: TestClient, *items: tuple[str, int], idem: str = "k-create", currency: str = "CNY") -> Any:
    response = client.post(
        "/checkout-sessions",
        json={
            "line_items": lines(*items),
            "buyer": {"first_name": "Lin", "last_name": "Wei"},
            "context": {"currency": currency},
        },
        headers=key(idem),
    )
    assert response.status_code == 201, response.text
    return response.json()


def ship(client: TestClient, session: dict[str, Any], option: str = "standard", idem: str = "k-ship") -> Any:
    body = {
        "line_items": [
            {"id": line["id"], "item": {"id": line["item"]["id"]}, "quantity": line["quantity"]}
            for line in session["line_items"]
        ],
        "fulfillment": {
            "methods": [
                {
                    "id": "shipping_1",
                    "type": "shipping",
                    "destinations": [BEIJING],
                    "selected_destination_id": "dest_bj",
                    "groups": [{"id": "package_1", "selected_option_id": option}],
                }
            ]
        },
    }
    response = client.put(f"/checkout-sessions/{session['id']}", json=body, headers=key(idem))
    assert response.status_code == 200, response.text
    return response.json()


def complete(
    client: TestClient, session_id: str, idem: str = "k-pay", token: str = "pm_user1_visa"
) -> httpx.Response:
    body = {
        "payment": {
            "instruments": [
                {**PAY["payment"]["instruments"][0], "credential": {"type": "token", "token": token}}
            ]
        }
    }
    return client.post(f"/checkout-sessions/{session_id}/complete", json=body, headers=key(idem))


def total(body: dict[str, Any], kind: str = "total") -> int:
    return next(entry["amount"] for entry in body["totals"] if entry["type"] == kind)


def ready_session(client: TestClient) -> Any:
    return ship(client, create(client, (SHOE_42, 1), ("gift-wrap-standard", 1)))


def ledger(client: TestClient) -> Any:
    return client.get("/_sandbox/ledger").json()


def search(client: TestClient, **body: Any) -> Any:
    response = client.post("/catalog/search", json=body)
    assert response.status_code == 200, response.text
    return response.json()


# --- catalog -------------------------------------------------------------------------------------


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


def test_running_shoes_come_in_eu_38_to_46_and_size_42_is_stocked_at_a_fair_price(client: TestClient) -> None:
    found = search(client, query="", filters={"categories": ["running-shoes"]}, pagination={"limit": 50})
    shoes = found["products"]
    assert len(shoes) >= 4
    sizes = {
        option["label"]
        for p in shoes
        for v in p["variants"]
        for option in v["options"]
        if option["name"] == "Size"
    }
    assert sizes == {str(size) for size in range(38, 47)}

    in_stock_42 = search(
        client,
        query="running shoes",
        filters={"categories": ["running-shoes"], "size": "42", "in_stock": True},
    )["products"]
    assert len(in_stock_42) >= 2
    cheapest = min(v["price"]["amount"] for p in in_stock_42 for v in p["variants"])
    assert 39900 <= cheapest <= 89900
    assert {v["id"] for v in in_stock_42[0]["variants"]} >= {SHOE_42}


def test_fixture_items_others_rely_on(client: TestClient) -> None:
    found = client.post(
        "/catalog/lookup", json={"ids": ["socks-running-white-m", "gift-wrap-standard", "apparel-trail-cap"]}
    ).json()
    by_id = {p["id"]: p for p in found["products"]}
    socks = by_id["socks-running"]
    assert "Running Socks" in socks["title"]
    assert socks["categories"][0]["value"] == "socks"
    assert socks["variants"][0]["price"] == {"amount": 5900, "currency": "CNY"}
    assert socks["variants"][0]["availability"]["available"] is True

    wrap = by_id["gift-wrap"]["variants"][0]
    assert (wrap["id"], wrap["price"]["amount"], by_id["gift-wrap"]["categories"][0]["value"]) == (
        "gift-wrap-standard",
        2000,
        "gift-wrap",
    )
    assert wrap["metadata"]["stock"] >= 1_000_000
    usd_wrap = client.post(
        "/catalog/lookup", json={"ids": ["gift-wrap"], "context": {"currency": "USD"}}
    ).json()
    assert usd_wrap["products"][0]["variants"][0]["price"] == {"amount": 300, "currency": "USD"}

    cap = by_id["apparel-trail-cap"]
    assert "IGNORE PREVIOUS INSTRUCTIONS" in cap["title"]
    assert cap["categories"][0]["value"] == "apparel"


@pytest.mark.parametrize("category", ["knives", "alcohol"])
def test_restricted_categories_say_so(client: TestClient, category: str) -> None:
    products = search(client, query="", filters={"categories": [category]})["products"]
    assert len(products) >= 2
    assert all(p["metadata"]["restricted"] is True for p in products)
    assert all(v["metadata"]["restricted"] is True for p in products for v in p["variants"])


def test_chinese_words_find_products(client: TestClient) -> None:
    shoes = search(client, query="给朋友买跑鞋")["products"]
    socks = search(client, query="袜子")["products"]
    assert shoes
    assert all(p["categories"][0]["value"] == "running-shoes" for p in shoes)
    assert socks
    assert all(p["categories"][0]["value"] == "socks" for p in socks)


def test_search_ranks_the_best_match_first_and_filters_variants(client: TestClient) -> None:
    assert search(client, query="Running Socks")["products"][0]["id"] == "socks-running"

    found = search(
        client, query="running shoes", filters={"size": "42", "color": "black", "price": {"max": 60000}}
    )
    variants = [v for p in found["products"] for v in p["variants"]]
    assert variants
    for variant in variants:
        labels = {option["name"]: option["label"] for option in variant["options"]}
        assert (labels["Size"], labels["Color"]) == ("42", "black")
        assert variant["price"]["amount"] <= 60000


def test_search_pages_with_a_cursor(client: TestClient) -> None:
    first = search(client, query="", filters={"categories": ["apparel"]}, pagination={"limit": 5})
    assert first["pagination"]["has_next_page"] is True
    second = search(
        client,
        query="",
        filters={"categories": ["apparel"]},
        pagination={"limit": 5, "cursor": first["pagination"]["cursor"]},
    )
    first_ids = {p["id"] for p in first["products"]}
    second_ids = {p["id"] for p in second["products"]}
    assert len(first_ids) == len(second_ids) == 5
    assert not first_ids & second_ids
    assert first["pagination"]["total_count"] == second["pagination"]["total_count"] >= 30


def test_prices_follow_the_requested_currency(client: TestClient) -> None:
    usd = search(client, query="running socks", context={"currency": "USD"})["products"][0]
    assert usd["variants"][0]["price"]["currency"] == "USD"
    refused = client.post("/catalog/search", json={"query": "socks", "context": {"currency": "EUR"}})
    assert refused.status_code == 422
    assert refused.json()["messages"][0]["code"] == "currency_unsupported"


def test_lookup_explains_ids_it_cannot_serve(client: TestClient) -> None:
    found = client.post(
        "/catalog/lookup",
        json={"ids": ["no-such-thing", "book-zh-tea-stories-paperback"], "context": {"currency": "USD"}},
    ).json()
    assert found["products"] == []
    assert [(m["code"], m["path"]) for m in found["messages"]] == [
        ("not_found", "$.ids[0]"),
        ("currency_unavailable", "$.ids[1]"),
    ]


def test_profile_advertises_our_capabilities(client: TestClient) -> None:
    profile = client.get("/.well-known/ucp").json()["ucp"]
    assert profile["version"] == "2026-04-08"
    (rest,) = profile["services"]["dev.ucp.shopping"]
    assert rest["transport"] == "rest"
    assert rest["endpoint"] == "http://testserver"
    assert {
        "dev.ucp.shopping.checkout",
        "dev.ucp.shopping.fulfillment",
        "dev.ucp.shopping.catalog.search",
        "dev.ucp.shopping.catalog.lookup",
        "com.cartpilot.shipping_quote",
    } <= set(profile["capabilities"])
    assert (
        profile["capabilities"]["com.cartpilot.shipping_quote"][0]["extends"]
        == "dev.ucp.shopping.fulfillment"
    )
    assert profile["payment_handlers"]


# --- shipping quotes -----------------------------------------------------------------------------


def quote(
    client: TestClient, destination: dict[str, str], *items: tuple[str, int], currency: str = "CNY"
) -> Any:
    return client.post(
        "/shipping/quote",
        json={"currency": currency, "line_items": lines(*items), "destination": destination},
    )


def test_quote_to_beijing_offers_standard_and_expedited_with_dates(client: TestClient) -> None:
    options = {o["id"]: o for o in quote(client, BEIJING, (SHOE_42, 1)).json()["options"]}
    standard, expedited = options["standard"], options["expedited"]
    assert standard["totals"][0]["amount"] == 0  # free from 99.00 CNY
    assert (standard["earliest_fulfillment_time"], standard["latest_fulfillment_time"]) == (
        "2026-01-31T10:00:00Z",
        "2026-02-03T10:00:00Z",
    )
    assert expedited["totals"][0]["amount"] == 4500
    assert expedited["earliest_fulfillment_time"].startswith("2026-01-29")
    assert expedited["latest_fulfillment_time"].startswith("2026-01-30")
    assert standard["carrier"]
    assert expedited["carrier"]


def test_small_orders_pay_for_standard_shipping(client: TestClient) -> None:
    options = {o["id"]: o for o in quote(client, BEIJING, ("gift-wrap-standard", 1)).json()["options"]}
    assert options["standard"]["totals"][0]["amount"] == 1000


def test_abroad_ships_international_in_the_asked_currency(client: TestClient) -> None:
    destination = {"address_locality": "San Francisco", "address_region": "CA", "address_country": "US"}
    answer = quote(client, destination, (SHOE_42, 1), currency="USD").json()
    options = {o["id"]: o for o in answer["options"]}
    assert set(options) == {"international-standard", "international-express"}
    assert options["international-standard"]["totals"][0]["amount"] == 1500
    assert options["international-standard"]["latest_fulfillment_time"].startswith("2026-02-12")  # 15 days
    assert options["international-express"]["earliest_fulfillment_time"].startswith("2026-01-31")  # 3 days


def test_restricted_items_and_unknown_places_are_undeliverable(client: TestClient) -> None:
    abroad = quote(client, {"address_locality": "Tokyo", "address_country": "JP"}, ("knife-chef-8in-std", 1))
    nowhere = quote(client, {"address_locality": "Nowhere", "address_country": "Atlantis"}, (SHOE_42, 1))
    for refused in (abroad, nowhere):
        assert refused.status_code == 422
        assert refused.json()["messages"][0]["code"] == "address_undeliverable"


# --- checkout lifecycle --------------------------------------------------------------------------


def test_a_new_session_is_incomplete_until_shipping_is_chosen(client: TestClient) -> None:
    session = create(client, (SHOE_42, 1), ("gift-wrap-standard", 1))
    assert session["status"] == "incomplete"
    assert session["currency"] == "CNY"
    assert [line["item"]["id"] for line in session["line_items"]] == [SHOE_42, "gift-wrap-standard"]
    assert session["line_items"][0]["item"]["price"] == 49900
    assert total(session, "subtotal") == total(session) == 51900
    assert session["links"]
    assert session["ucp"]["payment_handlers"]
    assert session["messages"][0]["code"] == "fulfillment_required"

    shipped = ship(client, session, option="expedited")
    assert shipped["status"] == "ready_for_complete"
    assert total(shipped, "fulfillment") == 4500
    assert total(shipped) == 51900 + 4500
    group = shipped["fulfillment"]["methods"][0]["groups"][0]
    assert group["selected_option_id"] == "expedited"
    assert {o["id"] for o in group["options"]} == {"standard", "expedited"}


def test_update_replaces_the_line_items_it_is_given(client: TestClient) -> None:
    session = create(client, (SHOE_42, 1), ("gift-wrap-standard", 1))
    shoe_line = session["line_items"][0]
    body = {"line_items": [{"id": shoe_line["id"], "item": {"id": SHOE_42}, "quantity": 2}]}
    updated = client.put(f"/checkout-sessions/{session['id']}", json=body, headers=key("k-update")).json()
    assert [(line["id"], line["quantity"]) for line in updated["line_items"]] == [(shoe_line["id"], 2)]
    assert total(updated) == 2 * 49900


def test_completing_charges_once_and_names_the_order(client: TestClient) -> None:
    session = ready_session(client)
    response = complete(client, session["id"])
    assert response.status_code == 200
    completed = response.json()
    assert completed["status"] == "completed"
    order_ref = completed["order"]
    assert order_ref["permalink_url"].endswith(f"/orders/{order_ref['id']}")

    books = ledger(client)
    assert [o["id"] for o in books["orders"]] == [order_ref["id"]]
    (charge,) = books["charges"]
    assert (charge["order_id"], charge["checkout_id"], charge["amount"], charge["currency"]) == (
        order_ref["id"],
        session["id"],
        total(session),
        "CNY",
    )

    order = client.get(f"/orders/{order_ref['id']}").json()
    assert order["checkout_id"] == session["id"]
    assert total(order) == total(session)
    assert [line["item"]["id"] for line in order["line_items"]] == [SHOE_42, "gift-wrap-standard"]


def test_a_completed_session_cannot_be_completed_or_canceled_again(client: TestClient) -> None:
    session = ready_session(client)
    assert complete(client, session["id"]).status_code == 200
    again = complete(client, session["id"], idem="k-pay-again")
    cancel = client.post(f"/checkout-sessions/{session['id']}/cancel", headers=key("k-cancel"))
    for refused in (again, cancel):
        assert refused.status_code == 422
        assert refused.json()["messages"][0]["code"] == "checkout_completed"
    assert len(ledger(client)["charges"]) == 1


def test_completing_needs_a_shipping_choice_and_a_payment_token(client: TestClient) -> None:
    session = create(client, (SHOE_42, 1))
    unshipped = complete(client, session["id"])
    assert (unshipped.status_code, unshipped.json()["messages"][0]["code"]) == (422, "fulfillment_required")

    shipped = ship(client, session)
    bad_token = complete(client, shipped["id"], idem="k-pay-2", token="4111111111111111")
    assert (bad_token.status_code, bad_token.json()["messages"][0]["code"]) == (422, "payment_invalid")
    assert ledger(client)["charges"] == []


def test_a_declined_payment_charges_nothing_and_another_method_can_follow(client: TestClient) -> None:
    session = ready_session(client)
    declined = complete(client, session["id"], idem="k-declined", token="pm_declined")
    assert declined.status_code == 402
    assert declined.json()["messages"][0]["code"] == "payment_failed"
    assert ledger(client)["charges"] == []
    assert client.get(f"/checkout-sessions/{session['id']}").json()["status"] == "ready_for_complete"

    assert complete(client, session["id"], idem="k-other-card").status_code == 200
    assert len(ledger(client)["charges"]) == 1


def test_out_of_stock_and_unknown_items_are_refused(client: TestClient) -> None:
    sold_out = client.post(
        "/checkout-sessions", json={"line_items": lines(("rs-trailhawk-green-42", 1))}, headers=key("a")
    )
    unknown = client.post(
        "/checkout-sessions", json={"line_items": lines(("no-such-sku", 1))}, headers=key("b")
    )
    cny_only = client.post(
        "/checkout-sessions",
        json={"line_items": lines(("book-zh-tea-stories-paperback", 1)), "context": {"currency": "USD"}},
        headers=key("c"),
    )
    assert (sold_out.status_code, sold_out.json()["messages"][0]["code"]) == (422, "out_of_stock")
    assert (unknown.status_code, unknown.json()["messages"][0]["code"]) == (422, "item_unavailable")
    assert (cny_only.status_code, cny_only.json()["messages"][0]["code"]) == (422, "item_unavailable")


def test_a_canceled_session_stays_canceled(client: TestClient) -> None:
    session = create(client, (SHOE_42, 1))
    canceled = client.post(f"/checkout-sessions/{session['id']}/cancel", headers=key("k-cancel"))
    assert canceled.json()["status"] == "canceled"
    again = client.post(f"/checkout-sessions/{session['id']}/cancel", headers=key("k-cancel-2"))
    assert again.status_code == 200
    assert again.json()["status"] == "canceled"
    update = client.put(
        f"/checkout-sessions/{session['id']}", json={"line_items": lines((SHOE_42, 2))}, headers=key("k-upd")
    )
    assert (update.status_code, update.json()["messages"][0]["code"]) == (422, "checkout_canceled")


def test_cancelling_an_order_refunds_its_charge_once(client: TestClient) -> None:
    session = ready_session(client)
    order_id = complete(client, session["id"]).json()["order"]["id"]

    first = client.post(f"/orders/{order_id}/cancel", headers=key("k-undo"))
    second = client.post(f"/orders/{order_id}/cancel", headers=key("k-undo-again"))
    assert first.status_code == second.status_code == 200
    order = second.json()
    assert [a["type"] for a in order["adjustments"]] == ["cancellation", "refund"]
    assert {line["status"] for line in order["line_items"]} == {"removed"}

    books = ledger(client)
    (charge,) = books["charges"]
    (refund,) = books["refunds"]
    assert (refund["order_id"], refund["charge_id"], refund["amount"]) == (
        order_id,
        charge["id"],
        charge["amount"],
    )
    assert books["orders"][0]["status"] == "canceled"


def test_unknown_sessions_and_orders_are_404(client: TestClient) -> None:
    for response in (client.get("/checkout-sessions/chk_nope"), client.get("/orders/ord_nope")):
        assert response.status_code == 404
        body = response.json()
        assert body["ucp"]["status"] == "error"
        assert body["messages"][0]["code"] == "not_found"


def test_bad_input_is_a_400_in_ucp_shape(client: TestClient) -> None:
    response = client.post("/checkout-sessions", json={"line_items": []}, headers=key("k"))
    assert response.status_code == 400
    assert response.json()["messages"][0]["code"] == "invalid_request"


# --- idempotency ---------------------------------------------------------------------------------


def test_mutations_need_an_idempotency_key(client: TestClient) -> None:
    response = client.post("/checkout-sessions", json={"line_items": lines((SHOE_42, 1))})
    assert response.status_code == 400
    assert response.json()["messages"][0]["code"] == "idempotency_key_required"


def test_a_replay_returns_the_stored_answer_and_does_nothing_again(
    client: TestClient, state: MerchantState
) -> None:
    first = create(client, (SHOE_42, 1), idem="k-same")
    again = client.post(
        "/checkout-sessions",
        json={
            "context": {"currency": "CNY"},
            "buyer": {"last_name": "Wei", "first_name": "Lin"},
            "line_items": lines((SHOE_42, 1)),
        },
        headers=key("k-same"),
    )
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first
    assert list(state.sessions) == [first["id"]]


def test_replaying_a_completion_never_charges_twice(client: TestClient) -> None:
    session = ready_session(client)
    first = complete(client, session["id"], idem="k-pay")
    second = complete(client, session["id"], idem="k-pay")
    assert second.status_code == 200
    assert second.json() == first.json()
    assert len(ledger(client)["charges"]) == 1


def test_a_refusal_is_replayed_too(client: TestClient) -> None:
    session = ready_session(client)
    first = complete(client, session["id"], idem="k-declined", token="pm_declined")
    second = complete(client, session["id"], idem="k-declined", token="pm_declined")
    assert first.status_code == second.status_code == 402
    assert second.headers["Idempotent-Replayed"] == "true"


def test_the_same_key_with_a_different_request_is_refused(client: TestClient) -> None:
    session = create(client, (SHOE_42, 1), idem="k-create")
    other_body = client.post(
        "/checkout-sessions", json={"line_items": lines((SHOE_42, 2))}, headers=key("k-create")
    )
    assert other_body.status_code == 422
    assert other_body.json()["messages"][0]["code"] == "idempotency_conflict"

    other = create(client, (SHOE_42, 1), idem="k-other")
    client.post(f"/checkout-sessions/{session['id']}/cancel", headers=key("k-cancel"))
    other_session = client.post(f"/checkout-sessions/{other['id']}/cancel", headers=key("k-cancel"))
    assert other_session.status_code == 422
    assert client.get(f"/checkout-sessions/{other['id']}").json()["status"] == "incomplete"


def test_keys_are_scoped_per_route(client: TestClient) -> None:
    session = create(client, (SHOE_42, 1), idem="k-shared")
    canceled = client.post(f"/checkout-sessions/{session['id']}/cancel", headers=key("k-shared"))
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"


# --- faults (in process) -------------------------------------------------------------------------


def order_fault(client: TestClient, route: str, mode: str, **extra: Any) -> None:
    response = client.post("/_sandbox/faults", json={"route": route, "mode": mode, **extra})
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(("mode", "status"), [("error_500", 500), ("error_429", 429), ("error_400", 400)])
def test_error_faults_answer_before_doing_anything_then_run_out(
    client: TestClient, state: MerchantState, mode: str, status: int
) -> None:
    order_fault(client, "POST /checkout-sessions", mode, times=2, retry_after=0)
    body = {"line_items": lines((SHOE_42, 1))}
    answers = [client.post("/checkout-sessions", json=body, headers=key("k-create")) for _ in range(3)]
    assert [a.status_code for a in answers] == [status, status, 201]
    assert answers[0].json()["ucp"]["status"] == "error"
    if mode == "error_429":
        assert answers[0].headers["Retry-After"] == "0"
    assert len(state.sessions) == 1


def test_faults_only_touch_their_route(client: TestClient) -> None:
    order_fault(client, "GET /orders/{id}", "error_500")
    assert client.post("/catalog/search", json={"query": "socks"}).status_code == 200
    assert client.get("/orders/ord_nope").status_code == 500
    assert client.get("/orders/ord_nope").status_code == 404


def test_a_fault_for_an_unknown_route_is_refused(client: TestClient) -> None:
    response = client.post("/_sandbox/faults", json={"route": "POST /checkout/{id}", "mode": "error_500"})
    assert response.status_code == 400
    assert client.get("/_sandbox/faults").json() == {"faults": []}


def test_reset_empties_ledger_sessions_and_faults_but_keeps_the_catalog(
    client: TestClient, state: MerchantState
) -> None:
    complete(client, ready_session(client)["id"])
    order_fault(client, COMPLETE, "error_500", times=5)
    assert client.post("/_sandbox/reset").status_code == 200

    assert ledger(client) == {"orders": [], "charges": [], "refunds": []}
    assert state.sessions == {}
    assert client.get("/_sandbox/faults").json() == {"faults": []}
    assert len(search(client, query="", pagination={"limit": 50})["products"]) == 50
    # Keys are forgotten too: the same key now creates a fresh session.
    assert create(client, (SHOE_42, 1), idem="k-create")["id"] in state.sessions


# --- faults over a real socket -------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(sandbox_merchant: SandboxMerchant) -> Iterator[tuple[RunningServer, MerchantState]]:
    with sandbox_merchant.frozen_at(NOW) as sandbox:
        yield sandbox.server, sandbox.state


@pytest.fixture
def live(served: tuple[RunningServer, MerchantState]) -> Iterator[tuple[httpx.Client, MerchantState]]:
    server, state = served
    state.reset()
    with httpx.Client(base_url=server.url, timeout=5.0) as http:
        yield http, state


def live_ready_session(http: httpx.Client) -> str:
    created = http.post(
        "/checkout-sessions", json={"line_items": lines((SHOE_42, 1))}, headers=key("live-create")
    ).json()
    body = {
        "line_items": [{"id": created["line_items"][0]["id"], "item": {"id": SHOE_42}, "quantity": 1}],
        "fulfillment": {
            "methods": [
                {
                    "type": "shipping",
                    "destinations": [BEIJING],
                    "groups": [{"selected_option_id": "standard"}],
                }
            ]
        },
    }
    shipped = http.put(f"/checkout-sessions/{created['id']}", json=body, headers=key("live-ship"))
    assert shipped.json()["status"] == "ready_for_complete"
    return str(created["id"])


def test_drop_response_after_commit_commits_but_the_caller_never_hears(
    live: tuple[httpx.Client, MerchantState],
) -> None:
    http, _ = live
    session_id = live_ready_session(http)
    http.post(
        "/_sandbox/faults",
        json={"route": COMPLETE, "mode": "drop_response_after_commit", "delay_seconds": 1.0},
    )

    with pytest.raises(httpx.ReadTimeout):
        http.post(f"/checkout-sessions/{session_id}/complete", json=PAY, headers=key("live-pay"), timeout=0.2)

    assert len(http.get("/_sandbox/ledger").json()["charges"]) == 1
    replay = http.post(f"/checkout-sessions/{session_id}/complete", json=PAY, headers=key("live-pay"))
    assert replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["order"]["id"] == http.get("/_sandbox/ledger").json()["orders"][0]["id"]
    assert len(http.get("/_sandbox/ledger").json()["charges"]) == 1


def test_timeout_stalls_first_then_the_work_still_happens(live: tuple[httpx.Client, MerchantState]) -> None:
    http, state = live
    session_id = live_ready_session(http)
    http.post("/_sandbox/faults", json={"route": COMPLETE, "mode": "timeout", "delay_seconds": 1.0})

    with pytest.raises(httpx.ReadTimeout):
        http.post(f"/checkout-sessions/{session_id}/complete", json=PAY, headers=key("live-pay"), timeout=0.2)

    # Like a slow merchant, the stalled request is processed late; its outcome was unknown to the caller.
    assert state.idempotency.wait_until_answered(COMPLETE, "live-pay", timeout=5.0)
    assert len(http.get("/_sandbox/ledger").json()["charges"]) == 1
    replay = http.post(f"/checkout-sessions/{session_id}/complete", json=PAY, headers=key("live-pay"))
    assert replay.status_code == 200
    assert replay.json()["status"] == "completed"


def test_a_duplicate_of_a_request_in_flight_gets_409(live: tuple[httpx.Client, MerchantState]) -> None:
    http, state = live
    session_id = live_ready_session(http)
    http.post(
        "/_sandbox/faults",
        json={"route": COMPLETE, "mode": "timeout", "delay_seconds": 0.5, "hold_idempotency_key": True},
    )
    url = f"/checkout-sessions/{session_id}/complete"
    first: dict[str, httpx.Response] = {}
    worker = threading.Thread(
        target=lambda: first.update(r=http.post(url, json=PAY, headers=key("live-pay")))
    )
    worker.start()
    try:
        assert state.idempotency.wait_until_in_flight(COMPLETE, "live-pay", timeout=5.0)
        duplicate = http.post(url, json=PAY, headers=key("live-pay"))
    finally:
        worker.join(10)
    assert duplicate.status_code == 409
    assert duplicate.json()["messages"][0]["code"] == "idempotency_in_flight"
    assert first["r"].status_code == 200
    assert http.post(url, json=PAY, headers=key("live-pay")).json() == first["r"].json()
    assert len(http.get("/_sandbox/ledger").json()["charges"]) == 1
