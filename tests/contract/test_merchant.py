"""The merchant port, as the planner, executor and compensation rely on it: the fake and the UCP adapter agree.

Every test runs against the in-memory ``FakeMerchant`` and against ``UcpMerchant`` talking over HTTP to
the sandbox merchant in each UCP version (emptied before each test, every message it receives and
sends checked against that version's schemas). The item ids differ per catalog, so each backend names
them; the test bodies only speak the port.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cartpilot.commerce.errors import IdempotencyKeyReused, MerchantEscalation, MerchantRejected
from cartpilot.commerce.ports import Buyer, CartLine, CheckoutSession, Quote, SearchQuery, ShippingOption
from tests.contract.merchant_backends import (
    SANDBOX_VERSIONS,
    FakeMerchantBackend,
    MerchantBackend,
    SandboxMerchantBackend,
    ServedSandbox,
    served_sandbox,
)

BUYER = Buyer(fullName="Zhang San", email="zhang.san@example.com")


@pytest.fixture(scope="session")
def sandboxes() -> Iterator[dict[str, ServedSandbox]]:
    with served_sandbox(SANDBOX_VERSIONS[0]) as current, served_sandbox(SANDBOX_VERSIONS[1]) as legacy:
        yield {current.version: current, legacy.version: legacy}


@pytest.fixture(params=["fake", *(f"sandbox {version}" for version in SANDBOX_VERSIONS)])
def shop(request: pytest.FixtureRequest) -> Iterator[MerchantBackend]:
    if request.param == "fake":
        yield FakeMerchantBackend()
        return
    sandbox = request.getfixturevalue("sandboxes")[request.param.removeprefix("sandbox ")]
    backend = SandboxMerchantBackend(sandbox)
    try:
        yield backend
        # Whatever the test did, every request we sent and every answer we read kept to the schemas.
        assert backend.violations() == []
    finally:
        backend.close()


def _shoe(shop: MerchantBackend, quantity: int = 1) -> list[CartLine]:
    return [CartLine(itemId=shop.a_shoe_id, quantity=quantity)]


def _open_session(shop: MerchantBackend, key: str = "create-1", quantity: int = 1) -> CheckoutSession:
    return shop.merchant.checkout.create(_shoe(shop, quantity), BUYER, shop.currency, key)


def _quote(shop: MerchantBackend) -> Quote:
    return shop.merchant.fulfillment.quote(_shoe(shop), shop.recipient, shop.currency)


def _ready_session(shop: MerchantBackend) -> CheckoutSession:
    """A session with a shoe, shipping to the recipient by the first quoted option."""
    session = _open_session(shop)
    return shop.merchant.fulfillment.select(session.id, shop.recipient, _quote(shop).options[0], "select-1")


# --- reading the catalog (a merchant without one says so) ----------------------------------------


def test_search_finds_variants_priced_in_the_requested_currency(shop: MerchantBackend) -> None:
    query = SearchQuery(text=shop.search_text, currency=shop.currency, category="running-shoes")
    if not shop.has_catalog:
        with pytest.raises(MerchantRejected) as refused:
            shop.merchant.catalog.search(query)
        assert refused.value.code == "catalog_unsupported"
        return

    products = shop.merchant.catalog.search(query)

    variants = [variant for product in products for variant in product.variants]
    assert shop.a_shoe_id in {variant.id for variant in variants}
    assert {variant.price.currency for variant in variants} == {shop.currency}
    assert all(variant.category == "running-shoes" for variant in variants)


def test_lookup_returns_the_asked_variants_in_order_and_skips_unknown_ids(shop: MerchantBackend) -> None:
    asked = [shop.gift_wrap_id, "no-such-item", shop.a_shoe_id]
    if not shop.has_catalog:
        with pytest.raises(MerchantRejected) as refused:
            shop.merchant.catalog.lookup(asked, shop.currency)
        assert refused.value.code == "catalog_unsupported"
        return

    variants = shop.merchant.catalog.lookup(asked, shop.currency)

    assert [variant.id for variant in variants] == [shop.gift_wrap_id, shop.a_shoe_id]
    assert all(
        variant.price.currency == shop.currency and variant.price.amount_minor > 0 for variant in variants
    )
    assert variants[1].in_stock


# --- a quote: a pricing session that leaves nothing behind -------------------------------------------


def test_a_quote_gives_the_merchants_prices_and_options_and_charges_nothing(shop: MerchantBackend) -> None:
    quote = shop.merchant.fulfillment.quote(_shoe(shop, 2), shop.recipient, shop.currency)

    assert quote.currency == shop.currency
    assert [(line.itemId, line.quantity) for line in quote.lines] == [(shop.a_shoe_id, 2)]
    price = quote.unit_price(shop.a_shoe_id)
    assert price is not None and price.amount_minor > 0 and price.currency == shop.currency
    assert quote.options and {option.price.currency for option in quote.options} == {shop.currency}
    assert all(option.earliestDelivery is not None for option in quote.options)
    assert shop.charges() == []


def test_the_pricing_session_is_not_left_open(shop: MerchantBackend) -> None:
    quote = _quote(shop)

    # Canceled, or gone: either way it is no session anyone could pay.
    try:
        status = shop.merchant.checkout.get(quote.sessionId).status
    except MerchantRejected as gone:
        status = gone.code or ""
    assert status in {"canceled", "not_found"}


# --- checkout sessions ---------------------------------------------------------------------------


def test_a_created_session_reads_back_with_its_lines_and_total(shop: MerchantBackend) -> None:
    price = _quote(shop).unit_price(shop.a_shoe_id)
    assert price is not None

    created = _open_session(shop, quantity=2)
    read = shop.merchant.checkout.get(created.id)

    assert created.currency == read.currency == shop.currency
    assert [(line.itemId, line.quantity, line.unitPrice) for line in read.lines] == [
        (shop.a_shoe_id, 2, price)
    ]
    assert created.total == read.total == price.times(2)
    assert read.status not in {"completed", "canceled"} and read.orderId is None


def test_creating_again_with_the_same_key_returns_the_same_session(shop: MerchantBackend) -> None:
    first = _open_session(shop, key="create-again")
    again = _open_session(shop, key="create-again")

    assert again.id == first.id and again.total == first.total


def test_creating_with_an_unknown_item_is_refused(shop: MerchantBackend) -> None:
    with pytest.raises(MerchantRejected):
        shop.merchant.checkout.create(
            [CartLine(itemId="no-such-item", quantity=1)], BUYER, shop.currency, "k"
        )


def test_adding_items_extends_the_session_and_its_total(shop: MerchantBackend) -> None:
    session = _open_session(shop)
    wrap = shop.merchant.fulfillment.quote(
        [CartLine(itemId=shop.gift_wrap_id, quantity=1)], shop.recipient, shop.currency
    ).unit_price(shop.gift_wrap_id)
    assert wrap is not None

    added = shop.merchant.checkout.add_items(
        session.id, [CartLine(itemId=shop.gift_wrap_id, quantity=1)], "add-1"
    )
    replayed = shop.merchant.checkout.add_items(
        session.id, [CartLine(itemId=shop.gift_wrap_id, quantity=1)], "add-1"
    )

    assert [line.itemId for line in added.lines] == [shop.a_shoe_id, shop.gift_wrap_id]
    assert added.total == session.total + wrap
    assert replayed.total == added.total and len(replayed.lines) == 2
    assert shop.merchant.checkout.get(session.id).total == added.total


def test_selecting_a_quoted_option_sets_shipping_and_adds_its_price(shop: MerchantBackend) -> None:
    session = _open_session(shop)
    chosen = _quote(shop).options[-1]

    selected = shop.merchant.fulfillment.select(session.id, shop.recipient, chosen, "select-1")

    assert selected.selectedShippingOptionId == chosen.id
    assert chosen.id in {option.id for option in selected.shippingOptions}
    assert selected.total == session.total + chosen.price
    assert selected.status == "ready_for_complete"  # a destination and an option: it can be paid
    assert shop.merchant.checkout.get(session.id).total == selected.total


def test_a_planned_option_is_found_by_title_and_price_when_its_id_changed(shop: MerchantBackend) -> None:
    session = _open_session(shop)
    quoted = _quote(shop).options[-1]
    planned = quoted.model_copy(update={"id": "an-id-from-another-session"})

    selected = shop.merchant.fulfillment.select(session.id, shop.recipient, planned, "select-1")

    assert selected.selectedShippingOptionId == quoted.id
    assert selected.total == session.total + quoted.price


def test_selecting_an_option_the_merchant_does_not_offer_is_refused(shop: MerchantBackend) -> None:
    session = _open_session(shop)
    teleport = ShippingOption(id="teleport", title="Teleport", price=session.total)

    with pytest.raises(MerchantRejected) as refused:
        shop.merchant.fulfillment.select(session.id, shop.recipient, teleport, "select-bad")

    assert refused.value.code == "fulfillment_option_unavailable"
    assert shop.merchant.checkout.get(session.id).selectedShippingOptionId != "teleport"
    assert shop.charges() == []


# --- payment -------------------------------------------------------------------------------------


def test_completing_charges_the_session_total_once_and_returns_its_order(shop: MerchantBackend) -> None:
    session = _ready_session(shop)

    order = shop.pay(session.id, "pay-1")

    assert order.checkoutId == session.id
    assert order.total == session.total
    assert order.status == "confirmed"
    assert [line.itemId for line in order.lines] == [shop.a_shoe_id]
    assert shop.charges() == [(order.id, session.total.amount_minor)]
    after = shop.merchant.checkout.get(session.id)
    assert after.status == "completed" and after.orderId == order.id and after.total == session.total
    placed = shop.merchant.orders.get(order.id, session.id)
    assert (placed.id, placed.checkoutId, placed.total, placed.status) == (
        order.id,
        session.id,
        session.total,
        "confirmed",
    )


def test_completing_again_with_the_same_key_returns_the_same_order(shop: MerchantBackend) -> None:
    session = _ready_session(shop)
    order = shop.pay(session.id, "pay-1")

    again = shop.pay(session.id, "pay-1")

    assert again.id == order.id and again.total == order.total
    assert len(shop.charges()) == 1


def test_completing_a_completed_session_with_another_key_is_refused(shop: MerchantBackend) -> None:
    session = _ready_session(shop)
    order = shop.pay(session.id, "pay-1")

    with pytest.raises(MerchantRejected) as refused:
        shop.pay(session.id, "pay-2")

    assert refused.value.code == "checkout_completed"
    assert shop.charges() == [(order.id, session.total.amount_minor)]


def test_completing_a_canceled_session_is_refused_and_charges_nothing(shop: MerchantBackend) -> None:
    session = _ready_session(shop)
    canceled = shop.merchant.checkout.cancel(session.id, "cancel-1")
    assert canceled.status == "canceled"

    with pytest.raises(MerchantRejected) as refused:
        shop.pay(session.id, "pay-1")

    assert refused.value.code == "checkout_canceled"
    assert shop.charges() == []
    assert shop.merchant.checkout.get(session.id).orderId is None


def test_completing_before_shipping_is_chosen_is_refused(shop: MerchantBackend) -> None:
    session = _open_session(shop)

    with pytest.raises(MerchantRejected) as refused:
        shop.pay(session.id, "pay-1")

    assert refused.value.code == "missing"
    assert shop.charges() == []


def test_a_declined_payment_is_refused_the_same_way_on_a_replay(shop: MerchantBackend) -> None:
    session = _ready_session(shop)

    for _ in range(2):
        with pytest.raises(MerchantRejected) as refused:
            shop.pay(session.id, "pay-declined", payment_method_id="pm_declined")
        # 2026-04-08's standard error is payment_failed; 2026-01-11's message_error names payment_declined.
        assert refused.value.code in {"payment_failed", "payment_declined"}

    assert shop.charges() == []
    assert shop.merchant.checkout.get(session.id).orderId is None


def test_a_completion_the_merchant_escalates_hands_over_its_continue_url(shop: MerchantBackend) -> None:
    session = _ready_session(shop)
    shop.escalate_next_completion("verify")

    with pytest.raises(MerchantEscalation) as escalated:
        shop.pay(session.id, "pay-1")

    assert escalated.value.continue_url.startswith(("https://", "http://127.0.0.1"))
    assert str(escalated.value)  # the merchant's words, for the shopper
    assert shop.charges() == []
    assert shop.merchant.checkout.get(session.id).status not in {"completed", "canceled"}


# --- undo ----------------------------------------------------------------------------------------


def test_canceling_an_order_refunds_it_once(shop: MerchantBackend) -> None:
    session = _ready_session(shop)
    order = shop.pay(session.id, "pay-1")

    canceled = shop.merchant.orders.cancel(order.id, "undo-1")
    again = shop.merchant.orders.cancel(order.id, "undo-1")
    other_key = shop.merchant.orders.cancel(order.id, "undo-2")

    assert canceled.status == again.status == other_key.status == "canceled"
    assert canceled.id == order.id and canceled.total == order.total
    assert shop.refunds() == [(order.id, order.total.amount_minor)]
    if shop.has_order_route:  # 2026-01-11 tells a platform of a canceled order by webhook only
        assert shop.merchant.orders.get(order.id).status == "canceled"


def test_canceling_an_open_session_twice_is_harmless(shop: MerchantBackend) -> None:
    session = _open_session(shop)

    first = shop.merchant.checkout.cancel(session.id, "cancel-1")
    again = shop.merchant.checkout.cancel(session.id, "cancel-1")
    other_key = shop.merchant.checkout.cancel(session.id, "cancel-2")

    assert first.status == again.status == other_key.status == "canceled"
    assert shop.merchant.checkout.get(session.id).status == "canceled"


def test_a_completed_session_cannot_be_canceled_its_order_can(shop: MerchantBackend) -> None:
    session = _ready_session(shop)
    order = shop.pay(session.id, "pay-1")

    with pytest.raises(MerchantRejected) as refused:
        shop.merchant.checkout.cancel(session.id, "cancel-1")

    assert refused.value.code == "checkout_completed"
    assert shop.merchant.checkout.get(session.id).orderId == order.id
    assert shop.refunds() == []


def test_a_closed_session_takes_no_more_items_or_shipping(shop: MerchantBackend) -> None:
    session = _ready_session(shop)
    option = session.shippingOptions[0]
    shop.merchant.checkout.cancel(session.id, "cancel-1")

    with pytest.raises(MerchantRejected) as adding:
        shop.merchant.checkout.add_items(
            session.id, [CartLine(itemId=shop.gift_wrap_id, quantity=1)], "add-1"
        )
    with pytest.raises(MerchantRejected) as selecting:
        shop.merchant.fulfillment.select(session.id, shop.recipient, option, "s-2")

    assert adding.value.code == selecting.value.code == "checkout_canceled"


# --- unknown ids ---------------------------------------------------------------------------------

UNKNOWN = "does-not-exist"
STANDARD = ShippingOption.model_validate(
    {"id": "standard", "title": "Standard", "price": {"amount_minor": 0, "currency": "CNY"}}
)

ON_UNKNOWN: dict[str, Callable[[MerchantBackend], Any]] = {
    "checkout.get": lambda shop: shop.merchant.checkout.get(UNKNOWN),
    "checkout.add_items": lambda shop: shop.merchant.checkout.add_items(
        UNKNOWN, [CartLine(itemId=shop.gift_wrap_id, quantity=1)], "k-add"
    ),
    "checkout.cancel": lambda shop: shop.merchant.checkout.cancel(UNKNOWN, "k-cancel"),
    "fulfillment.select": lambda shop: shop.merchant.fulfillment.select(
        UNKNOWN, shop.recipient, STANDARD, "k-s"
    ),
    "payments.complete": lambda shop: shop.pay(UNKNOWN, "k-pay"),
    "orders.get": lambda shop: shop.merchant.orders.get(UNKNOWN, UNKNOWN),
    "orders.cancel": lambda shop: shop.merchant.orders.cancel(UNKNOWN, "k-undo"),
}


@pytest.mark.parametrize("operation", list(ON_UNKNOWN))
def test_an_unknown_session_or_order_is_rejected_as_not_found(shop: MerchantBackend, operation: str) -> None:
    with pytest.raises(MerchantRejected) as refused:
        ON_UNKNOWN[operation](shop)

    # 404, or (2026-04-08) an error_response: "the requested resource no longer exists" (checkout.md).
    assert refused.value.code == "not_found"
    assert shop.charges() == [] and shop.refunds() == []


# --- idempotency keys ----------------------------------------------------------------------------


def test_a_create_key_reused_with_other_lines_is_refused_as_reused(shop: MerchantBackend) -> None:
    _open_session(shop, key="create-1", quantity=1)

    with pytest.raises(IdempotencyKeyReused):
        _open_session(shop, key="create-1", quantity=2)


def test_an_add_items_key_reused_with_other_lines_is_refused_as_reused(shop: MerchantBackend) -> None:
    session = _open_session(shop)
    shop.merchant.checkout.add_items(session.id, [CartLine(itemId=shop.gift_wrap_id, quantity=1)], "add-1")

    with pytest.raises(IdempotencyKeyReused):
        shop.merchant.checkout.add_items(
            session.id, [CartLine(itemId=shop.gift_wrap_id, quantity=3)], "add-1"
        )

    assert [line.quantity for line in shop.merchant.checkout.get(session.id).lines] == [1, 1]


def test_a_payment_key_reused_on_another_session_is_refused_as_reused(shop: MerchantBackend) -> None:
    first = _ready_session(shop)
    shop.pay(first.id, "pay-1")
    second = _open_session(shop, key="create-2")

    with pytest.raises(IdempotencyKeyReused):
        shop.pay(second.id, "pay-1")

    assert len(shop.charges()) == 1
    assert shop.merchant.checkout.get(second.id).orderId is None


def test_keys_of_different_operations_do_not_collide(shop: MerchantBackend) -> None:
    session = shop.merchant.checkout.create(_shoe(shop), BUYER, shop.currency, "same-key")
    selected = shop.merchant.fulfillment.select(
        session.id, shop.recipient, _quote(shop).options[0], "same-key"
    )

    order = shop.pay(session.id, "same-key")

    assert order.checkoutId == session.id and order.total == selected.total
