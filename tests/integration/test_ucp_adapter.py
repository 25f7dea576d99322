"""The UCP adapters against the real sandbox merchant, served over loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest

from cartpilot.commerce.errors import MerchantOutcomeUnknown, MerchantRejected, MerchantUnavailable
from cartpilot.commerce.http import MerchantClient, RetryPolicy, Timeouts
from cartpilot.commerce.ports import Address, Buyer, CartLine, Recipient, SearchQuery
from cartpilot.commerce.ucp import UcpMerchant
from cartpilot.kernel.errors import MissingSetting
from cartpilot.wiring.merchants import merchant_from_env, reset_merchant_cache
from cartpilot_local.merchant.state import MerchantState
from cartpilot_local.servers import RunningServer
from tests.conftest import SandboxMerchant
from tests.fakes.merchant import cny, usd

NOW = datetime(2026, 1, 28, 3, 0, tzinfo=UTC)
SHOE_42 = "rs-stride-lite-black-42"
GIFT_WRAP = "gift-wrap-standard"
FRIEND_IN_BEIJING = Recipient(
    name="Zhang Min",
    phone="+86 139 1088 2266",
    address=Address(
        line1="7 Gongti North Road, Building 3",
        city="Beijing",
        region="BJ",
        postalCode="100027",
        country="CN",
    ),
)
BUYER = Buyer(fullName="Lin Wei", email="lin.wei@example.com")


@pytest.fixture(scope="module")
def served(sandbox_merchant: SandboxMerchant) -> Iterator[tuple[RunningServer, MerchantState]]:
    with sandbox_merchant.frozen_at(NOW) as sandbox:
        yield sandbox.server, sandbox.state


@pytest.fixture
def state(served: tuple[RunningServer, MerchantState]) -> MerchantState:
    served[1].reset()
    return served[1]


@pytest.fixture
def server(served: tuple[RunningServer, MerchantState], state: MerchantState) -> RunningServer:
    return served[0]


@pytest.fixture
def shop(server: RunningServer) -> Iterator[UcpMerchant]:
    # Short timeouts and no real waiting between attempts keep fault tests fast.
    merchant = UcpMerchant.for_url(
        server.url,
        timeouts=Timeouts(connect=1.0, read=0.5),
        retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02),
    )
    yield merchant
    merchant.close()


def admin(server: RunningServer, path: str, body: dict[str, Any] | None = None) -> Any:
    if body is None:
        return httpx.get(f"{server.url}{path}").json()
    response = httpx.post(f"{server.url}{path}", json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()


def charges(server: RunningServer) -> list[dict[str, Any]]:
    return list(admin(server, "/_sandbox/ledger")["charges"])


def ready_session(shop: UcpMerchant, prefix: str = "g1") -> str:
    session = shop.checkout.create([CartLine(itemId=SHOE_42, quantity=1)], BUYER, "CNY", f"{prefix}-create")
    shop.checkout.add_items(session.id, [CartLine(itemId=GIFT_WRAP, quantity=1)], f"{prefix}-wrap")
    shop.fulfillment.select(session.id, FRIEND_IN_BEIJING, "standard", f"{prefix}-ship")
    return session.id


# --- read-only ports ------------------------------------------------------------------------------


def test_search_finds_size_42_running_shoes_in_stock(shop: UcpMerchant) -> None:
    products = shop.catalog.search(
        SearchQuery(text="running shoes", currency="CNY", category="running-shoes", size="42", color="black")
    )
    variants = [v for p in products for v in p.variants]
    assert variants
    assert {(v.size, v.color, v.category) for v in variants} == {("42", "black", "running-shoes")}
    cheapest = min((v for v in variants if v.in_stock), key=lambda v: v.price.amount_minor)
    assert cheapest.id == SHOE_42
    assert cheapest.price == cny("499.00")
    assert cheapest.title == "Stride Lite Running Shoe (Black / EU 42)"
    assert cheapest.imageUrl is not None
    assert cheapest.imageUrl.endswith("/media/rs-stride-lite.svg")


def test_search_honours_a_price_cap_and_chinese_words(shop: UcpMerchant) -> None:
    capped = shop.catalog.search(SearchQuery(text="跑鞋", currency="CNY", maxPrice=cny("500.00"), limit=50))
    assert capped
    assert all(v.price.amount_minor <= 50000 for p in capped for v in p.variants)
    assert {p.category for p in capped} == {"running-shoes"}


def test_lookup_returns_variants_in_the_asked_currency(shop: UcpMerchant) -> None:
    variants = shop.catalog.lookup([GIFT_WRAP, "socks-running-white-m", "no-such-item"], "USD")
    assert [v.id for v in variants] == [GIFT_WRAP, "socks-running-white-m"]
    assert variants[0].price == usd("3.00")
    assert variants[1].stock > 0
    assert variants[1].size == "M"


def test_lookup_by_product_id_gives_all_its_variants(shop: UcpMerchant) -> None:
    variants = shop.catalog.lookup(["knife-chef-8in"], "CNY")
    assert [v.id for v in variants] == ["knife-chef-8in-std"]
    assert variants[0].category == "knives"


def test_quote_to_beijing_has_delivery_windows_from_the_merchants_clock(shop: UcpMerchant) -> None:
    options = shop.fulfillment.quote(
        [CartLine(itemId=SHOE_42, quantity=1), CartLine(itemId=GIFT_WRAP, quantity=1)],
        FRIEND_IN_BEIJING.address,
        "CNY",
    )
    by_id = {o.id: o for o in options}
    assert by_id["standard"].price == cny("0.00")
    assert (by_id["standard"].earliestDelivery, by_id["standard"].latestDelivery) == (
        date(2026, 1, 31),
        date(2026, 2, 3),
    )
    assert by_id["expedited"].price == cny("45.00")
    assert (by_id["expedited"].earliestDelivery, by_id["expedited"].latestDelivery) == (
        date(2026, 1, 29),
        date(2026, 1, 30),
    )


def test_the_merchant_server_fixture_serves_on_loopback(merchant_server: RunningServer) -> None:
    assert merchant_server.url.startswith("http://127.0.0.1:")
    with MerchantClient(merchant_server.url) as client:
        profile = client.get("/.well-known/ucp")
    assert profile["ucp"]["services"]["dev.ucp.shopping"][0]["endpoint"] == merchant_server.url


# --- the purchase ---------------------------------------------------------------------------------


def test_create_add_select_complete_and_read_the_order(shop: UcpMerchant, server: RunningServer) -> None:
    session = shop.checkout.create([CartLine(itemId=SHOE_42, quantity=1)], BUYER, "CNY", "g1-create")
    assert (session.status, session.total, session.orderId) == ("incomplete", cny("499.00"), None)

    session = shop.checkout.add_items(session.id, [CartLine(itemId=GIFT_WRAP, quantity=1)], "g1-wrap")
    assert [line.itemId for line in session.lines] == [SHOE_42, GIFT_WRAP]
    assert session.total == cny("519.00")

    session = shop.fulfillment.select(session.id, FRIEND_IN_BEIJING, "standard", "g1-ship")
    assert session.status == "ready_for_complete"
    assert session.selectedShippingOptionId == "standard"
    assert {o.id for o in session.shippingOptions} == {"standard", "expedited"}
    assert session.total == cny("519.00")

    order = shop.payments.complete(session.id, "pm_user1_visa", "g1-pay")
    assert order.checkoutId == session.id
    assert order.status == "confirmed"
    assert order.total == cny("519.00")
    assert order.permalinkUrl == f"{server.url}/orders/{order.id}"

    assert shop.checkout.get(session.id).orderId == order.id
    assert shop.orders.get(order.id) == order
    (charge,) = charges(server)
    assert (charge["order_id"], charge["amount"]) == (order.id, 51900)


def test_repeating_a_step_with_its_key_changes_nothing(shop: UcpMerchant, server: RunningServer) -> None:
    session = shop.checkout.create([CartLine(itemId=SHOE_42, quantity=1)], BUYER, "CNY", "g1-create")
    again = shop.checkout.create([CartLine(itemId=SHOE_42, quantity=1)], BUYER, "CNY", "g1-create")
    assert again.id == session.id

    wrapped = shop.checkout.add_items(session.id, [CartLine(itemId=GIFT_WRAP, quantity=1)], "g1-wrap")
    rewrapped = shop.checkout.add_items(session.id, [CartLine(itemId=GIFT_WRAP, quantity=1)], "g1-wrap")
    assert rewrapped == wrapped
    assert [line.itemId for line in rewrapped.lines].count(GIFT_WRAP) == 1

    shop.fulfillment.select(session.id, FRIEND_IN_BEIJING, "standard", "g1-ship")
    first = shop.payments.complete(session.id, "pm_user1_visa", "g1-pay")
    second = shop.payments.complete(session.id, "pm_user1_visa", "g1-pay")
    assert second == first
    assert len(charges(server)) == 1


def test_completing_again_with_a_new_key_is_refused_and_charges_nothing(
    shop: UcpMerchant, server: RunningServer
) -> None:
    session_id = ready_session(shop)
    shop.payments.complete(session_id, "pm_user1_visa", "g1-pay")
    with pytest.raises(MerchantRejected) as refused:
        shop.payments.complete(session_id, "pm_user1_visa", "g2-pay")
    assert (refused.value.status_code, refused.value.code) == (422, "checkout_completed")
    assert len(charges(server)) == 1


def test_a_declined_card_is_a_rejection_without_a_charge(shop: UcpMerchant, server: RunningServer) -> None:
    session_id = ready_session(shop)
    with pytest.raises(MerchantRejected) as declined:
        shop.payments.complete(session_id, "pm_declined", "g1-pay")
    assert (declined.value.status_code, declined.value.code) == (402, "payment_failed")
    assert charges(server) == []


def test_cancel_a_session(shop: UcpMerchant) -> None:
    session = shop.checkout.create([CartLine(itemId=SHOE_42, quantity=1)], BUYER, "CNY", "g1-create")
    assert shop.checkout.cancel(session.id, "g1-undo").status == "canceled"
    assert shop.checkout.get(session.id).status == "canceled"


def test_cancel_an_order_refunds_once(shop: UcpMerchant, server: RunningServer) -> None:
    order = shop.payments.complete(ready_session(shop), "pm_user1_visa", "g1-pay")
    canceled = shop.orders.cancel(order.id, "g1-undo")
    assert canceled.status == "canceled"
    assert shop.orders.cancel(order.id, "g1-undo-again").status == "canceled"
    assert shop.orders.get(order.id).status == "canceled"
    refunds = admin(server, "/_sandbox/ledger")["refunds"]
    assert [(r["order_id"], r["amount"]) for r in refunds] == [(order.id, 51900)]


def test_a_sold_out_size_is_rejected_with_the_merchants_code(shop: UcpMerchant) -> None:
    with pytest.raises(MerchantRejected) as refused:
        shop.checkout.create(
            [CartLine(itemId="rs-trailhawk-green-42", quantity=1)], BUYER, "CNY", "g1-create"
        )
    assert (refused.value.status_code, refused.value.code) == (422, "out_of_stock")


# --- faults ---------------------------------------------------------------------------------------


def test_a_lost_reply_is_recovered_by_replaying_the_key(shop: UcpMerchant, server: RunningServer) -> None:
    session_id = ready_session(shop)
    admin(
        server,
        "/_sandbox/faults",
        {
            "route": "POST /checkout-sessions/{id}/complete",
            "mode": "drop_response_after_commit",
            "delay_seconds": 1.5,
        },
    )
    order = shop.payments.complete(session_id, "pm_user1_visa", "g1-pay")

    assert shop.checkout.get(session_id).orderId == order.id
    (charge,) = charges(server)
    assert charge["order_id"] == order.id


def test_when_no_reply_ever_comes_the_outcome_is_unknown_until_replayed(
    shop: UcpMerchant, server: RunningServer
) -> None:
    session_id = ready_session(shop)
    admin(
        server,
        "/_sandbox/faults",
        {
            "route": "POST /checkout-sessions/{id}/complete",
            "mode": "drop_response_after_commit",
            "delay_seconds": 1.5,
            "times": 3,
        },
    )
    with pytest.raises(MerchantOutcomeUnknown):
        shop.payments.complete(session_id, "pm_user1_visa", "g1-pay")
    assert len(charges(server)) == 1

    order = shop.payments.complete(session_id, "pm_user1_visa", "g1-pay")
    assert len(charges(server)) == 1
    assert charges(server)[0]["order_id"] == order.id


def test_rate_limits_and_server_errors_are_retried(shop: UcpMerchant, server: RunningServer) -> None:
    admin(
        server, "/_sandbox/faults", {"route": "POST /catalog/search", "mode": "error_429", "retry_after": 0}
    )
    admin(server, "/_sandbox/faults", {"route": "POST /checkout-sessions", "mode": "error_500", "times": 2})
    assert shop.catalog.search(SearchQuery(text="running socks", currency="CNY"))
    session = shop.checkout.create([CartLine(itemId=SHOE_42, quantity=1)], BUYER, "CNY", "g1-create")
    assert session.status == "incomplete"


def test_a_merchant_that_keeps_failing_is_unavailable(shop: UcpMerchant, server: RunningServer) -> None:
    admin(server, "/_sandbox/faults", {"route": "GET /orders/{id}", "mode": "error_500", "times": 3})
    with pytest.raises(MerchantUnavailable):
        shop.orders.get("ord_anything")


def test_a_400_fault_is_a_rejection(shop: UcpMerchant, server: RunningServer) -> None:
    admin(server, "/_sandbox/faults", {"route": "POST /checkout-sessions", "mode": "error_400"})
    with pytest.raises(MerchantRejected) as refused:
        shop.checkout.create([CartLine(itemId=SHOE_42, quantity=1)], BUYER, "CNY", "g1-create")
    assert refused.value.status_code == 400


# --- configuration --------------------------------------------------------------------------------


def test_merchant_from_env_is_built_once_per_url(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    reset_merchant_cache()
    monkeypatch.setenv("MERCHANT_URL", server.url)
    monkeypatch.setenv("MERCHANT_READ_TIMEOUT", "0.75")
    try:
        first = merchant_from_env()
        assert merchant_from_env() is first
        assert first.http.timeouts.read == 0.75
        assert first.http.timeouts.connect == 2.0
        assert first.catalog.lookup([GIFT_WRAP], "CNY")[0].price == cny("20.00")
    finally:
        reset_merchant_cache()


def test_merchant_from_env_needs_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MERCHANT_URL", raising=False)
    with pytest.raises(MissingSetting, match="MERCHANT_URL"):
        merchant_from_env()
