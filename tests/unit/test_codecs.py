"""The wire codecs of UCP 2026-04-08 and 2026-01-11, held to the published specification.

Every request body a codec builds is validated against that version's JSON Schemas (with the
``ucp_request`` annotations of the operation applied), and the specification's own examples
(``docs/specification/*.md``) are read back into domain objects.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from cartpilot.commerce.codecs import WireCodec, codec_for
from cartpilot.commerce.codecs.wire import (
    CheckoutUpdate,
    LineUpdate,
    MalformedAnswer,
    MethodUpdate,
    destination_body,
    kept_lines,
    order_from_completed,
    read_checkout,
    refusal_of,
)
from cartpilot.commerce.discovery import platform_capabilities
from cartpilot.commerce.errors import MerchantEscalation, MerchantRejected
from cartpilot.commerce.ports import (
    Address,
    Buyer,
    CartLine,
    PaymentCredential,
    PaymentHandler,
    Recipient,
    SearchQuery,
)
from cartpilot.kernel.money import Money
from cartpilot_local.merchant.specs import SpecLibrary, library, specs_root
from tests.fakes.merchant import cny

VERSIONS = ("2026-04-08", "2026-01-11")
CURRENT, LEGACY = VERSIONS
RECIPIENT = Recipient(
    name="Zhang Min",
    phone="+86 139 1088 2266",
    address=Address(
        line1="7 Gongti North Road", city="Beijing", region="BJ", postalCode="100027", country="CN"
    ),
)
TOKENIZER = PaymentHandler(
    name="com.cartpilot.sandbox_tokenizer",
    id="sandbox_tokenizer",
    instrumentTypes=("card",),
    config={"tokenization_url": "https://shop.example/psp/tokens"},
)
CREDENTIAL = PaymentCredential(
    handler=TOKENIZER, token=SecretStr("sbxtok_Zm9v"), display={"brand": "visa", "last_digits": "4242"}
)
SAVED_PAYMENT_METHOD = "pm_user1_visa"


# --- the specification's own text -----------------------------------------------------------------


def spec_text(version: str, name: str) -> str:
    return (specs_root() / f"ucp-{version}" / "docs" / "specification" / name).read_text(encoding="utf-8")


def examples(version: str, name: str) -> Iterator[Any]:
    """The JSON examples of a spec page, as a reader takes them: the HTTP lines before a body, ``//``
    comments and trailing commas left out, ``{{ ucp_version }}`` filled in."""
    for block in re.findall(r"```[a-z]*\n(.*?)```", spec_text(version, name), flags=re.S):
        text = block.replace("{{ ucp_version }}", version)
        start = text.find("{")
        if start < 0:
            continue
        text = re.sub(r"(?m)\s*//[^\n\"]*$", "", text[start:])
        text = re.sub(r",(\s*[}\]])", r"\1", text)
        try:
            yield json.loads(text)
        except ValueError:
            continue  # fragments with "..." are prose, not examples


def example_where(version: str, name: str, **match: Any) -> dict[str, Any]:
    for found in examples(version, name):
        if isinstance(found, dict) and all(found.get(key) == value for key, value in match.items()):
            return found
    raise LookupError(f"no example in {version} {name} with {match}")


# --- request bodies, validated against the schemas ------------------------------------------------


def schema_problems(version: str, body: Any, operation: str) -> list[tuple[str, str]]:
    """What the version's schemas say is wrong with a request body of ``operation`` (checkout with the
    fulfillment extension, as negotiated; 2026-01-11's completion has a body of its own)."""
    spec: SpecLibrary = library(version)
    if version == LEGACY and operation == "complete":
        schema = {
            "$ref": "https://ucp.dev/services/shopping/openapi.json#/paths/~1checkout-sessions~1{id}~1complete"
            "/post/requestBody/content/application~1json/schema"
        }
    elif operation in {"search", "lookup"}:
        schema = {
            "$ref": f"https://ucp.dev/services/shopping/rest.openapi.json#/components/schemas/catalog_{operation}_request"
        }
    else:
        root = "dev.ucp.shopping.checkout" if version == CURRENT else "checkout"
        schema = {"$ref": f"https://ucp.dev/schemas/shopping/fulfillment.json#/$defs/{root}"}
    return spec.problems(body, schema, "request", operation)


def a_checkout_answer(version: str, *, with_destination: bool) -> dict[str, Any]:
    """A merchant's checkout after creation, with its shipping method (and destination and group)."""
    method: dict[str, Any] = {"id": "shipping_1", "type": "shipping", "line_item_ids": ["li_1"]}
    if with_destination:
        method |= {
            "destinations": [{"id": "dest_7", **destination_body(RECIPIENT)}],
            "selected_destination_id": "dest_7",
            "groups": [{"id": "package_1", "line_item_ids": ["li_1"], "selected_option_id": None,
                        "options": [{"id": "standard", "title": "Standard", "totals": [{"type": "total", "amount": 0}]}]}],
        }  # fmt: skip
    return {
        "ucp": {"version": version, "capabilities": {}},
        "id": "chk_1",
        "status": "incomplete",
        "currency": "CNY",
        "buyer": {"first_name": "Lin", "last_name": "Wei", "email": "lin.wei@example.com"},
        "line_items": [{"id": "li_1", "item": {"id": "sku-1", "title": "Shoe", "price": 49900}, "quantity": 1,
                        "totals": [{"type": "subtotal", "amount": 49900}, {"type": "total", "amount": 49900}]}],
        "totals": [{"type": "subtotal", "amount": 49900}, {"type": "total", "amount": 49900}],
        "links": [],
        "fulfillment": {"methods": [method]},
    }  # fmt: skip


def every_body(codec: WireCodec) -> Iterator[tuple[str, str, Any]]:
    """(what, operation, body) for each request body the adapters build."""
    version = codec.version
    lines = [CartLine(itemId="sku-1", quantity=1), CartLine(itemId="sku-2", quantity=3)]
    buyer = Buyer(fullName="Lin Wei", email="lin.wei@example.com", phone="+86 139 0000 0000")
    yield "create", "create", codec.create_checkout(lines, buyer, "CNY", shipping=True)
    yield "pricing session", "create", codec.create_checkout(lines, None, "CNY", shipping=True)
    created = codec.read_checkout(a_checkout_answer(version, with_destination=False))
    yield (
        "add items",
        "update",
        codec.update_checkout(
            created,
            CheckoutUpdate(lines=(*kept_lines(created), LineUpdate(item_id="gift-wrap", quantity=1))),
        ),
    )
    yield (
        "destination",
        "update",
        codec.update_checkout(
            created,
            CheckoutUpdate(
                lines=kept_lines(created),
                method=MethodUpdate(
                    id="shipping_1", line_item_ids=("li_1",), destination=destination_body(RECIPIENT)
                ),
            ),
        ),
    )
    destined = codec.read_checkout(a_checkout_answer(version, with_destination=True))
    yield "option", "update", codec.update_checkout(
        destined,
        CheckoutUpdate(
            lines=kept_lines(destined),
            method=MethodUpdate(
                id="shipping_1", line_item_ids=("li_1",), destination={**destination_body(RECIPIENT), "id": "dest_7"},
                selected_destination_id="dest_7", group_choices=(("package_1", "standard"),),
            ),
        ),
    )  # fmt: skip
    yield "complete", "complete", codec.complete_checkout("chk_1", CREDENTIAL)
    if version == CURRENT:
        yield (
            "search",
            "search",
            codec.search_request(
                SearchQuery(
                    text="running shoes",
                    currency="CNY",
                    category="running-shoes",
                    size="42",
                    maxPrice=cny("800.00"),
                )
            ),
        )
        yield "lookup", "lookup", codec.lookup_request(["sku-1", "shoe-a"], "CNY")


BODIES = [
    pytest.param(version, what, operation, body, id=f"{version} {what}")
    for version in VERSIONS
    for what, operation, body in every_body(codec_for(version))
]


@pytest.mark.parametrize(("version", "what", "operation", "body"), BODIES)
def test_every_request_body_conforms_to_the_versions_schemas(
    version: str, what: str, operation: str, body: Any
) -> None:
    assert schema_problems(version, body, operation) == []


@pytest.mark.parametrize(("version", "what", "operation", "body"), BODIES)
def test_no_body_carries_the_saved_payment_method_id(
    version: str, what: str, operation: str, body: Any
) -> None:
    assert SAVED_PAYMENT_METHOD not in json.dumps(body)


def test_the_schemas_catch_a_body_of_the_other_version() -> None:
    # The check can fail: 2026-01-11 wants currency and payment on a create; 2026-04-08's body has neither.
    current = codec_for(CURRENT).create_checkout(
        [CartLine(itemId="sku-1", quantity=1)], None, "CNY", shipping=False
    )
    assert schema_problems(LEGACY, current, "create")
    legacy_complete = codec_for(LEGACY).complete_checkout("chk_1", CREDENTIAL)
    assert schema_problems(CURRENT, legacy_complete, "complete")


def test_2026_01_11_asks_for_currency_payment_and_the_checkouts_id() -> None:
    codec = codec_for(LEGACY)
    created = codec.create_checkout([CartLine(itemId="sku-1", quantity=1)], None, "USD", shipping=True)
    assert (created["currency"], created["payment"]) == ("USD", {})
    answer = codec.read_checkout(a_checkout_answer(LEGACY, with_destination=False))
    updated = codec.update_checkout(answer, CheckoutUpdate(lines=kept_lines(answer)))
    assert (updated["id"], updated["currency"]) == ("chk_1", "CNY")


def test_2026_04_08_leaves_the_currency_to_the_merchant_and_hints_at_it() -> None:
    created = codec_for(CURRENT).create_checkout(
        [CartLine(itemId="sku-1", quantity=1)], None, "USD", shipping=False
    )
    assert "currency" not in created and created["context"] == {"currency": "USD"}


def test_each_version_builds_its_own_instrument_with_the_token() -> None:
    current = codec_for(CURRENT).complete_checkout("chk_1", CREDENTIAL)
    (instrument,) = current["payment"]["instruments"]
    assert instrument["handler_id"] == "sandbox_tokenizer" and instrument["selected"] is True
    assert instrument["credential"] == {"type": "token", "token": "sbxtok_Zm9v"}
    assert instrument["display"] == {"brand": "visa", "last_digits": "4242"}

    legacy = codec_for(LEGACY).complete_checkout("chk_1", CREDENTIAL)
    data = legacy["payment_data"]
    assert (data["handler_id"], data["type"], data["brand"], data["last_digits"]) == (
        "sandbox_tokenizer", "card", "visa", "4242",
    )  # fmt: skip
    assert data["credential"] == {"type": "token", "token": "sbxtok_Zm9v"}
    assert legacy["risk_signals"]


def test_the_same_step_builds_the_same_body_every_time() -> None:
    for version in VERSIONS:
        assert list(every_body(codec_for(version))) == list(every_body(codec_for(version)))


# --- the specification's examples, read -----------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_the_update_fulfillment_example_gives_the_options_and_the_merchants_ids(version: str) -> None:
    answer = example_where(version, "checkout-rest.md", status="incomplete", id="chk_1234567890")
    while "fulfillment" not in answer:  # the first incomplete example is the buyer update
        answer = next(
            found for found in examples(version, "checkout-rest.md")
            if isinstance(found, dict) and found.get("status") == "incomplete" and "fulfillment" in found
        )  # fmt: skip

    checkout = codec_for(version).read_checkout(answer)

    session = checkout.session()
    assert (session.id, session.currency, session.total.amount_minor) == ("chk_1234567890", "USD", 5400)
    assert [(o.id, o.title, o.price.amount_minor) for o in session.shippingOptions] == [
        ("standard", "Standard Shipping", 500),
        ("express", "Express Shipping", 1000),
    ]
    # No delivery window in the example: the options are kept, and claim no arrival date.
    assert all(o.earliestDelivery is None and o.latestDelivery is None for o in session.shippingOptions)
    method = checkout.shipping
    assert method is not None
    assert (method.id, method.selected_destination_id, method.groups[0].id) == (
        "shipping_1",
        "dest_home",
        "package_1",
    )
    assert [
        (line.id, line.item_id, line.quantity, line.unit_price.amount_minor) for line in checkout.lines
    ] == [("li_1", "item_123", 2, 2500)]


@pytest.mark.parametrize("version", VERSIONS)
def test_the_complete_checkout_example_names_its_order(version: str) -> None:
    answer = example_where(version, "checkout-rest.md", status="completed")

    order = order_from_completed(codec_for(version).read_checkout(answer), "complete")

    assert (order.id, order.checkoutId, order.status) == ("ord_99887766", answer["id"], "confirmed")
    assert (
        order.total.amount_minor == 5400 and order.permalinkUrl == "https://merchant.com/orders/ord_99887766"
    )


def test_the_no_resource_example_is_a_refusal_in_the_merchants_words() -> None:
    answer = example_where(CURRENT, "checkout-rest.md", continue_url="https://merchant.com/")

    with pytest.raises(MerchantRejected) as refused:
        codec_for(CURRENT).read_checkout(answer)

    assert refused.value.code == "out_of_stock"
    assert "All requested items are currently out of stock" in str(refused.value)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_challenge_example_hands_the_buyer_to_the_continue_url(version: str) -> None:
    answer = example_where(
        version, "overview.md", status="requires_escalation", continue_url="https://psp.com/challenge/123"
    )

    with pytest.raises(MerchantEscalation) as escalated:
        codec_for(version).read_checkout(answer)

    assert escalated.value.continue_url == "https://psp.com/challenge/123"
    assert escalated.value.code == "requires_3ds" and "bank requires verification." in str(escalated.value)


def test_the_2026_01_11_error_example_is_a_refusal() -> None:
    answer = {
        "status": "requires_escalation",
        "messages": [{"type": "error", "code": "invalid_cart_items", "content": "One or more cart items are invalid",
                      "severity": "requires_buyer_input"}],
    }  # fmt: skip
    with pytest.raises(MerchantRejected) as refused:
        codec_for(LEGACY).read_checkout(answer)
    assert not isinstance(refused.value, MerchantEscalation)
    assert refused.value.code == "invalid_cart_items"


def test_a_2026_01_11_order_is_priced_in_its_checkouts_currency() -> None:
    answer = example_where(LEGACY, "order.md", id="order_abc123")
    assert "currency" not in answer

    order = codec_for(LEGACY).read_order(answer, "USD")

    assert (order.id, order.checkoutId, order.total.amount_minor, order.total.currency) == (
        "order_abc123", "checkout_xyz789", 15342, "USD",
    )  # fmt: skip
    assert order.status == "partial"  # one line fulfilled, one processing
    assert [(line.itemId, line.quantity) for line in order.lines] == [("prod_shoes", 3), ("prod_shirts", 2)]


def test_a_2026_04_08_order_carries_its_own_currency() -> None:
    order = codec_for(CURRENT).read_order(example_where(CURRENT, "order.md", id="order_abc123"), None)
    assert (order.total.amount_minor, order.total.currency, order.status) == (15342, "USD", "partial")


def test_the_order_not_found_example_is_a_refusal() -> None:
    answer = example_where(CURRENT, "order-rest.md", messages=[
        {"type": "error", "code": "not_found", "severity": "unrecoverable", "content": "Order not found."}])  # fmt: skip
    with pytest.raises(MerchantRejected) as refused:
        codec_for(CURRENT).read_order(answer, None)
    assert refused.value.code == "not_found"


def business_profile_example(version: str) -> dict[str, Any]:
    """overview.md's "Business Profile" example: the first profile that binds a REST endpoint."""
    for found in examples(version, "overview.md"):
        service = (
            found.get("ucp", {}).get("services", {}).get("dev.ucp.shopping")
            if isinstance(found, dict)
            else None
        )
        bindings = (
            service
            if isinstance(service, list)
            else [service.get("rest")]
            if isinstance(service, dict)
            else []
        )
        if any(isinstance(b, dict) and b.get("endpoint") for b in bindings):
            return found
    raise LookupError(f"no business profile example in {version} overview.md")


def test_the_business_profile_examples_are_read() -> None:
    current = codec_for(CURRENT).read_profile(business_profile_example(CURRENT))
    assert (current.version, current.rest_endpoint) == (CURRENT, "https://business.example.com/ucp/v1")
    assert codec_for(CURRENT).offers(current, platform_capabilities(CURRENT)) == (
        "dev.ucp.shopping.checkout",
        "dev.ucp.shopping.fulfillment",
    )
    assert [(h.name, h.id, h.instrumentTypes) for h in current.payment_handlers] == [
        ("com.example.processor_tokenizer", "processor_tokenizer", ("card",))
    ]

    legacy = codec_for(LEGACY).read_profile(business_profile_example(LEGACY))
    assert (legacy.version, legacy.rest_endpoint) == (LEGACY, "https://business.example.com/ucp/v1")
    assert codec_for(LEGACY).offers(legacy, platform_capabilities(LEGACY)) == (
        "dev.ucp.shopping.checkout",
        "dev.ucp.shopping.fulfillment",
    )
    assert [(h.name, h.id, h.instrumentTypes) for h in legacy.payment_handlers] == [
        ("com.example.business_tokenizer", "business_tokenizer", ("card",))
    ]


def test_a_session_still_being_filled_in_is_not_refused_for_what_the_next_step_supplies() -> None:
    answer = example_where(CURRENT, "checkout-rest.md", status="incomplete")  # "Buyer email is required"
    checkout = read_checkout(answer)
    assert checkout.errors() and refusal_of(checkout, "create", blocking_only=True) is None
    refused = refusal_of(checkout, "complete", blocking_only=False)
    assert refused is not None and refused.code == "missing"


def test_the_spec_examples_are_where_these_tests_read_them() -> None:
    for version in VERSIONS:
        assert Path(specs_root() / f"ucp-{version}" / "docs" / "specification" / "checkout-rest.md").is_file()
        assert sum(1 for _ in examples(version, "checkout-rest.md")) >= 5


@pytest.mark.parametrize("version", [CURRENT, LEGACY])
def test_a_checkouts_tax_is_read_and_discounts_may_be_negative(version: str) -> None:
    answer = a_checkout_answer(version, with_destination=True)
    answer["totals"] = [
        {"type": "subtotal", "amount": 49900},
        {"type": "discount", "amount": -1500},
        {"type": "tax", "amount": 3146},
        {"type": "total", "amount": 51546},
    ]
    checkout = codec_for(version).read_checkout(answer)
    assert checkout.tax == Money(amount_minor=3146, currency="CNY")
    assert checkout.total == Money(amount_minor=51546, currency="CNY")
    assert codec_for(version).read_checkout(a_checkout_answer(version, with_destination=True)).tax is None


@pytest.mark.parametrize("version", [CURRENT, LEGACY])
@pytest.mark.parametrize("where", ["item price", "option", "total"])
def test_a_negative_price_or_charge_is_a_malformed_answer(version: str, where: str) -> None:
    """amount.json: a price is at least 0; a merchant asking -5.00 is not believed."""
    answer = a_checkout_answer(version, with_destination=True)
    if where == "item price":
        answer["line_items"][0]["item"]["price"] = -500
    elif where == "option":
        group = answer["fulfillment"]["methods"][0]["groups"][0]
        group["options"][0]["totals"] = [{"type": "total", "amount": -500}]
    else:
        answer["totals"] = [{"type": "total", "amount": -500}]
    with pytest.raises(MalformedAnswer, match="negative"):
        codec_for(version).read_checkout(answer)
