"""The UCP adapter against the real sandbox merchant over loopback HTTP, in both UCP versions.

What a shopper would notice: a purchase goes through in either version with the merchant's own
prices, options and delivery windows; retries never charge twice; a merchant that asks for the
buyer hands over its page; and every refusal (no version in common, no handler the brand can fund,
a key reused, a profile the merchant cannot fetch, missing credentials) is definite, in the
merchant's words, with nothing charged. Every message is checked against the version's schemas.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from cartpilot.brands.config import BrandConfig, MerchantConfig, MerchantCredentials, load_brand
from cartpilot.commerce.credentials import SandboxTokenizer, choose_handler
from cartpilot.commerce.errors import (
    IdempotencyKeyReused,
    MerchantEscalation,
    MerchantOutcomeUnknown,
    MerchantRejected,
    MerchantUnavailable,
)
from cartpilot.commerce.http import MerchantAuth, RetryPolicy, Timeouts
from cartpilot.commerce.ports import Address, Buyer, CartLine, Order, Recipient
from cartpilot.commerce.ucp import UcpMerchant
from tests.contract.merchant_backends import SANDBOX_VERSIONS, ServedSandbox, served_sandbox
from tests.fakes.merchant import cny
from tests.fakes.platform import LocalPlatform

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


@pytest.fixture(scope="module", params=SANDBOX_VERSIONS)
def sandbox(request: pytest.FixtureRequest) -> Iterator[ServedSandbox]:
    with served_sandbox(request.param, clock=lambda: NOW) as served:
        yield served


def admin(sandbox: ServedSandbox, path: str, body: dict[str, Any] | None = None) -> Any:
    with sandbox.admin() as client:
        response = client.get(path) if body is None else client.post(path, json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()


def charges(sandbox: ServedSandbox) -> list[dict[str, Any]]:
    return list(admin(sandbox, "/_sandbox/ledger")["charges"])


@pytest.fixture
def shop(sandbox: ServedSandbox) -> Iterator[UcpMerchant]:
    admin(sandbox, "/_sandbox/reset", {})
    # Short timeouts and no real waiting between attempts keep fault tests fast.
    merchant = UcpMerchant(
        sandbox.url,
        identity=sandbox.platform.identity(),
        timeouts=Timeouts(connect=1.0, read=0.5),
        retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02),
    )
    TOKENIZERS[merchant] = SandboxTokenizer()
    yield merchant
    merchant.close()
    del TOKENIZERS[merchant]
    assert admin(sandbox, "/_sandbox/conformance")["violations"] == []


def pay(shop: UcpMerchant, session_id: str, key: str, payment_method_id: str = "pm_user1_visa") -> Order:
    """As the executor pays: a token for the saved card under a key derived from the step's, then complete."""
    handler = choose_handler(shop.profile(), load_brand("sandbox"))
    credential = TOKENIZERS[shop].credential(handler, payment_method_id, f"{key}.credential")
    return shop.payments.complete(session_id, credential, key)


# One tokenizer per merchant under test: it remembers credentials by key, as a warm container does.
TOKENIZERS: dict[UcpMerchant, SandboxTokenizer] = {}


def ready_session(shop: UcpMerchant, prefix: str = "g1") -> str:
    session = shop.checkout.create([CartLine(itemId=SHOE_42, quantity=1)], BUYER, "CNY", f"{prefix}-create")
    shop.checkout.add_items(session.id, [CartLine(itemId=GIFT_WRAP, quantity=1)], f"{prefix}-wrap")
    standard = shop.fulfillment.quote(
        [CartLine(itemId=SHOE_42, quantity=1)], FRIEND_IN_BEIJING, "CNY"
    ).options[0]
    shop.fulfillment.select(session.id, FRIEND_IN_BEIJING, standard, f"{prefix}-ship")
    return session.id


# --- discovery ------------------------------------------------------------------------------------


def test_discovery_negotiates_the_sandboxs_version_and_reads_its_endpoint_and_handlers(
    shop: UcpMerchant, sandbox: ServedSandbox
) -> None:
    profile = shop.profile()

    assert (profile.version, profile.endpoint) == (sandbox.version, sandbox.url)
    assert profile.offers("dev.ucp.shopping.checkout") and profile.offers("com.cartpilot.order_cancel")
    # 2026-01-11 has no catalog capability: the planner reads a product feed there.
    assert profile.offers("dev.ucp.shopping.catalog.search") is (sandbox.version == "2026-04-08")
    names = {handler.name for handler in profile.paymentHandlers}
    assert {"com.cartpilot.sandbox_tokenizer", "com.google.pay"} <= names


def test_our_agent_profile_names_the_version_we_speak(shop: UcpMerchant, sandbox: ServedSandbox) -> None:
    shop.checkout.create([CartLine(itemId=SHOE_42, quantity=1)], BUYER, "CNY", "g1-create")

    expected = "/.well-known/ucp" if sandbox.version == "2026-04-08" else "/.well-known/ucp/2026-01-11"
    assert sandbox.platform.fetched and sandbox.platform.fetched[-1].endswith(expected)


# --- the purchase ---------------------------------------------------------------------------------


def test_the_quote_has_the_merchants_prices_and_delivery_windows_from_its_clock(shop: UcpMerchant) -> None:
    quote = shop.fulfillment.quote(
        [CartLine(itemId=SHOE_42, quantity=1), CartLine(itemId=GIFT_WRAP, quantity=1)],
        FRIEND_IN_BEIJING,
        "CNY",
    )

    assert quote.unit_price(SHOE_42) == cny("499.00") and quote.unit_price(GIFT_WRAP) == cny("20.00")
    by_title = {option.title: option for option in quote.options}
    standard, expedited = by_title["Standard Shipping"], by_title["Expedited Shipping"]
    assert standard.price == cny("0.00")
    assert (standard.earliestDelivery, standard.latestDelivery) == (date(2026, 1, 31), date(2026, 2, 3))
    assert expedited.price == cny("45.00")
    assert (expedited.earliestDelivery, expedited.latestDelivery) == (date(2026, 1, 29), date(2026, 1, 30))


def test_create_add_select_complete_and_read_the_order(shop: UcpMerchant, sandbox: ServedSandbox) -> None:
    session = shop.checkout.create([CartLine(itemId=SHOE_42, quantity=1)], BUYER, "CNY", "g1-create")
    assert (session.status, session.total, session.orderId) == ("incomplete", cny("499.00"), None)

    session = shop.checkout.add_items(session.id, [CartLine(itemId=GIFT_WRAP, quantity=1)], "g1-wrap")
    assert [line.itemId for line in session.lines] == [SHOE_42, GIFT_WRAP]
    assert session.total == cny("519.00")

    expedited = next(
        option
        for option in shop.fulfillment.quote(
            [CartLine(itemId=SHOE_42, quantity=1)], FRIEND_IN_BEIJING, "CNY"
        ).options
        if option.title == "Expedited Shipping"
    )
    session = shop.fulfillment.select(session.id, FRIEND_IN_BEIJING, expedited, "g1-ship")
    assert (session.status, session.selectedShippingOptionId) == ("ready_for_complete", expedited.id)
    assert session.total == cny("564.00")

    order = pay(shop, session.id, "g1-pay")
    assert (order.checkoutId, order.status, order.total) == (session.id, "confirmed", cny("564.00"))
    assert order.permalinkUrl == f"{sandbox.url}/orders/{order.id}"

    assert shop.checkout.get(session.id).orderId == order.id
    # 2026-01-11 has no order route: the order is read back from its completed checkout.
    assert shop.orders.get(order.id, session.id) == order
    (charge,) = charges(sandbox)
    assert (charge["order_id"], charge["amount"], charge["payment_method_id"]) == (
        order.id,
        56400,
        "pm_user1_visa",
    )


def test_repeating_every_step_with_its_key_changes_nothing(shop: UcpMerchant, sandbox: ServedSandbox) -> None:
    session = shop.checkout.create([CartLine(itemId=SHOE_42, quantity=1)], BUYER, "CNY", "g1-create")
    assert (
        shop.checkout.create([CartLine(itemId=SHOE_42, quantity=1)], BUYER, "CNY", "g1-create").id
        == session.id
    )

    wrapped = shop.checkout.add_items(session.id, [CartLine(itemId=GIFT_WRAP, quantity=1)], "g1-wrap")
    rewrapped = shop.checkout.add_items(session.id, [CartLine(itemId=GIFT_WRAP, quantity=1)], "g1-wrap")
    assert rewrapped == wrapped and [line.itemId for line in rewrapped.lines].count(GIFT_WRAP) == 1

    standard = shop.fulfillment.quote(
        [CartLine(itemId=SHOE_42, quantity=1)], FRIEND_IN_BEIJING, "CNY"
    ).options[0]
    first_pick = shop.fulfillment.select(session.id, FRIEND_IN_BEIJING, standard, "g1-ship")
    assert shop.fulfillment.select(session.id, FRIEND_IN_BEIJING, standard, "g1-ship") == first_pick

    first = pay(shop, session.id, "g1-pay")
    assert pay(shop, session.id, "g1-pay") == first
    assert len(charges(sandbox)) == 1


def test_a_sold_out_size_is_refused_in_the_merchants_words(shop: UcpMerchant, sandbox: ServedSandbox) -> None:
    with pytest.raises(MerchantRejected) as refused:
        shop.checkout.create(
            [CartLine(itemId="rs-trailhawk-green-42", quantity=1)], BUYER, "CNY", "g1-create"
        )

    assert refused.value.code == "out_of_stock"
    assert "out of stock" in str(refused.value)
    assert charges(sandbox) == []


# --- what the merchant asks of the shopper, and definite refusals ----------------------------------


def test_an_escalated_completion_hands_over_the_continue_url_and_charges_nothing(
    shop: UcpMerchant, sandbox: ServedSandbox
) -> None:
    session_id = ready_session(shop)
    admin(
        sandbox,
        "/_sandbox/escalate",
        {"times": 1, "code": "requires_3ds", "content": "Confirm with your bank."},
    )

    with pytest.raises(MerchantEscalation) as escalated:
        pay(shop, session_id, "g1-pay")

    assert escalated.value.continue_url.startswith(sandbox.url)
    assert "Confirm with your bank." in str(escalated.value)
    assert escalated.value.code == "requires_3ds"
    assert charges(sandbox) == []
    assert shop.checkout.get(session_id).status == "requires_escalation"


def test_a_key_reused_with_another_body_is_a_definite_refusal(
    shop: UcpMerchant, sandbox: ServedSandbox
) -> None:
    shop.checkout.create([CartLine(itemId=SHOE_42, quantity=1)], BUYER, "CNY", "g1-create")

    with pytest.raises(IdempotencyKeyReused) as reused:
        shop.checkout.create([CartLine(itemId=SHOE_42, quantity=2)], BUYER, "CNY", "g1-create")

    assert reused.value.status_code == 409
    assert not isinstance(reused.value, MerchantOutcomeUnknown)
    assert charges(sandbox) == []


def test_a_merchant_whose_handlers_the_brand_cannot_fund_is_refused_and_charged_nothing() -> None:
    with served_sandbox("2026-04-08", payment_handlers=["com.google.pay"]) as sandbox:
        merchant = UcpMerchant(sandbox.url, identity=sandbox.platform.identity())
        try:
            with pytest.raises(MerchantRejected) as refused:
                choose_handler(merchant.profile(), load_brand("sandbox"))
        finally:
            merchant.close()
        assert refused.value.code == "payment_handler_unsupported"
        assert "com.google.pay" in str(refused.value) and "com.cartpilot.sandbox_tokenizer" in str(
            refused.value
        )
        assert admin(sandbox, "/_sandbox/ledger") == {"orders": [], "charges": [], "refunds": []}


def test_a_merchant_that_cannot_fetch_our_profile_refuses_before_creating_anything() -> None:
    published = LocalPlatform()
    elsewhere = LocalPlatform(base_url="https://elsewhere.test/v1", keys=published.keys)
    with served_sandbox("2026-04-08", platform=published) as sandbox:
        merchant = UcpMerchant(sandbox.url, identity=elsewhere.identity())
        try:
            with pytest.raises(MerchantRejected) as refused:
                merchant.checkout.create([CartLine(itemId=SHOE_42, quantity=1)], BUYER, "CNY", "g1-create")
        finally:
            merchant.close()
    assert (refused.value.status_code, refused.value.code) == (424, "profile_unreachable")


def test_the_brands_credentials_are_presented_as_configured() -> None:
    with served_sandbox("2026-01-11", api_key="merchant-issued-key") as sandbox:
        without = UcpMerchant(sandbox.url, identity=sandbox.platform.identity())
        with_key = UcpMerchant(
            sandbox.url, identity=sandbox.platform.identity(),
            auth=MerchantAuth(header="X-API-Key", scheme=None, secret=lambda: "merchant-issued-key"),
        )  # fmt: skip
        try:
            with pytest.raises(MerchantRejected) as refused:
                without.checkout.create([CartLine(itemId=SHOE_42, quantity=1)], BUYER, "CNY", "k1")
            created = with_key.checkout.create([CartLine(itemId=SHOE_42, quantity=1)], BUYER, "CNY", "k2")
        finally:
            without.close()
            with_key.close()
    assert (refused.value.status_code, refused.value.code) == (401, "unauthorized")
    assert created.status == "incomplete"


# --- faults ---------------------------------------------------------------------------------------


def test_a_lost_reply_is_recovered_by_replaying_the_key(shop: UcpMerchant, sandbox: ServedSandbox) -> None:
    session_id = ready_session(shop)
    admin(sandbox, "/_sandbox/faults", {
        "route": "POST /checkout-sessions/{id}/complete", "mode": "drop_response_after_commit", "delay_seconds": 1.5,
    })  # fmt: skip

    order = pay(shop, session_id, "g1-pay")

    assert shop.checkout.get(session_id).orderId == order.id
    assert [charge["order_id"] for charge in charges(sandbox)] == [order.id]


def test_when_no_reply_ever_comes_the_outcome_is_unknown_until_replayed(
    shop: UcpMerchant, sandbox: ServedSandbox
) -> None:
    session_id = ready_session(shop)
    admin(sandbox, "/_sandbox/faults", {
        "route": "POST /checkout-sessions/{id}/complete", "mode": "drop_response_after_commit", "delay_seconds": 1.5,
        "times": 3,
    })  # fmt: skip
    with pytest.raises(MerchantOutcomeUnknown):
        pay(shop, session_id, "g1-pay")
    assert len(charges(sandbox)) == 1

    # The step runs again (the same key, so the same token): the merchant replays, it does not charge.
    order = pay(shop, session_id, "g1-pay")
    assert [charge["order_id"] for charge in charges(sandbox)] == [order.id]


def test_rate_limits_and_server_errors_are_retried(shop: UcpMerchant, sandbox: ServedSandbox) -> None:
    admin(sandbox, "/_sandbox/faults", {"route": "POST /checkout-sessions", "mode": "error_500", "times": 2})
    admin(
        sandbox,
        "/_sandbox/faults",
        {"route": "GET /checkout-sessions/{id}", "mode": "error_429", "retry_after": 0},
    )

    session = shop.checkout.create([CartLine(itemId=SHOE_42, quantity=1)], BUYER, "CNY", "g1-create")

    assert shop.checkout.get(session.id).status == "incomplete"


def test_a_merchant_that_keeps_failing_is_unavailable(shop: UcpMerchant, sandbox: ServedSandbox) -> None:
    admin(
        sandbox, "/_sandbox/faults", {"route": "GET /checkout-sessions/{id}", "mode": "error_500", "times": 3}
    )
    with pytest.raises(MerchantUnavailable):
        shop.checkout.get("chk_anything")


def test_a_400_fault_is_a_refusal_with_the_merchants_code(shop: UcpMerchant, sandbox: ServedSandbox) -> None:
    admin(sandbox, "/_sandbox/faults", {"route": "POST /checkout-sessions", "mode": "error_400"})
    with pytest.raises(MerchantRejected) as refused:
        shop.checkout.create([CartLine(itemId=SHOE_42, quantity=1)], BUYER, "CNY", "g1-create")
    assert (refused.value.status_code, refused.value.code) == (400, "invalid_request")


# --- wiring: the brand's merchants ----------------------------------------------------------------


def _brand_with(url: str, *, credentials: MerchantCredentials | None = None) -> BrandConfig:
    brand = load_brand("sandbox")
    merchants = [
        MerchantConfig(id="sandbox-merchant", url=url, credentials=credentials),
        MerchantConfig(id="second-shop", url="https://second-shop.example"),
    ]
    return brand.model_copy(update={"merchants": merchants})


def test_a_brand_merchant_is_built_once_per_container_with_merchant_url_standing_in_for_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cartpilot.wiring.merchants import merchant_for, reset_merchant_cache

    monkeypatch.setenv("PUBLIC_API_URL", "https://cartpilot.test/v1")
    monkeypatch.setenv("MERCHANT_READ_TIMEOUT", "0.75")
    with served_sandbox("2026-01-11") as sandbox:
        monkeypatch.setenv("MERCHANT_URL", sandbox.url)
        reset_merchant_cache()
        try:
            brand = _brand_with("https://configured.example")
            first = merchant_for(brand)
            assert merchant_for(brand, "sandbox-merchant") is first
            assert first.merchant_url == sandbox.url  # MERCHANT_URL stands in for the default merchant
            assert merchant_for(brand, "second-shop").merchant_url == "https://second-shop.example"
            # Our profile URL comes from PUBLIC_API_URL, for the version negotiated.
            session = first.checkout.create([CartLine(itemId=SHOE_42, quantity=1)], BUYER, "CNY", "k1")
            assert session.status == "incomplete"
            assert sandbox.platform.fetched[-1] == "https://cartpilot.test/v1/.well-known/ucp/2026-01-11"
        finally:
            reset_merchant_cache()


def test_a_merchant_credential_is_read_from_secrets_manager(
    aws_tables: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    from cartpilot.wiring.merchants import merchant_for, reset_merchant_cache

    secret = boto3.client("secretsmanager").create_secret(
        Name="cartpilot/sandbox/merchant", SecretString="k-81"
    )
    monkeypatch.setenv("PUBLIC_API_URL", "https://cartpilot.test/v1")
    with served_sandbox("2026-01-11", api_key="k-81") as sandbox:
        monkeypatch.setenv("MERCHANT_URL", sandbox.url)
        monkeypatch.setenv("MERCHANT_CREDENTIALS_SECRET_ID", secret["ARN"])
        reset_merchant_cache()
        try:
            brand = _brand_with(
                sandbox.url, credentials=MerchantCredentials(secretId="unused", header="Authorization")
            )
            session = merchant_for(brand).checkout.create(
                [CartLine(itemId=SHOE_42, quantity=1)], BUYER, "CNY", "k"
            )
        finally:
            reset_merchant_cache()
    assert session.status == "incomplete"


def test_nothing_is_fetched_until_the_merchant_is_used() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(503)

    merchant = UcpMerchant(
        "https://merchant.test", identity=LocalPlatform().identity(), transport=httpx.MockTransport(record)
    )
    assert seen == []
    with pytest.raises(MerchantUnavailable):
        merchant.profile()
    assert [request.url.path for request in seen] == ["/.well-known/ucp"]


def test_the_product_source_is_the_catalog_where_offered_else_the_brands_feed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the price check reads items from: the merchant's catalog, or (none offered) the feed the
    deployment names for the default merchant; with neither, a refusal that says so."""
    from cartpilot import wiring
    from cartpilot.commerce.feed import FeedSource
    from cartpilot.commerce.ucp import UcpCatalog

    monkeypatch.setenv("PUBLIC_API_URL", "https://cartpilot.test/v1")
    monkeypatch.delenv("MERCHANT_FEED", raising=False)
    feed = Path(__file__).resolve().parents[1] / "fixtures" / "feeds" / "sandbox.tsv"
    try:
        with served_sandbox("2026-04-08") as with_catalog:
            monkeypatch.setenv("MERCHANT_URL", with_catalog.url)
            wiring.reset()
            assert isinstance(wiring.products(), UcpCatalog)
        with served_sandbox("2026-01-11") as without:
            monkeypatch.setenv("MERCHANT_URL", without.url)
            wiring.reset()
            with pytest.raises(MerchantRejected, match=r"no catalog and brand\.yaml names no product feed"):
                wiring.products()
            monkeypatch.setenv("MERCHANT_FEED", str(feed))
            wiring.reset()
            assert wiring.merchant_config().feed == str(feed)
            source = wiring.products("sandbox-merchant")
            assert isinstance(source, FeedSource)
            assert [variant.id for variant in source.lookup([SHOE_42], "CNY")] == [SHOE_42]
    finally:
        wiring.reset()


def test_the_stacks_credential_is_sent_as_told_when_the_brand_names_no_header(
    aws_tables: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cartpilot local --merchant-api-key-env`: the stack's secret, sent as an X-API-Key."""
    import boto3

    from cartpilot.wiring.merchants import merchant_for, reset_merchant_cache

    secret = boto3.client("secretsmanager").create_secret(
        Name="cartpilot/sandbox/local-key", SecretString="k-9"
    )
    monkeypatch.setenv("PUBLIC_API_URL", "https://cartpilot.test/v1")
    with served_sandbox("2026-01-11", api_key="k-9") as sandbox:
        monkeypatch.setenv("MERCHANT_URL", sandbox.url)
        monkeypatch.setenv("MERCHANT_CREDENTIALS_SECRET_ID", secret["ARN"])
        reset_merchant_cache()
        try:
            brand = _brand_with(sandbox.url)
            with pytest.raises(MerchantRejected, match="401"):
                merchant_for(brand).checkout.create(
                    [CartLine(itemId=SHOE_42, quantity=1)], BUYER, "CNY", "k0"
                )
            monkeypatch.setenv("MERCHANT_CREDENTIALS_HEADER", "X-API-Key")
            reset_merchant_cache()
            session = merchant_for(brand).checkout.create(
                [CartLine(itemId=SHOE_42, quantity=1)], BUYER, "CNY", "k1"
            )
        finally:
            reset_merchant_cache()
    assert session.status == "incomplete"
