"""Paying through the merchant's handlers: which one the brand can fund, and the sandbox tokenizer's
credentials (tokens, never the saved payment method's id; the same key, the same token)."""

from __future__ import annotations

import json

import httpx
import pytest

from cartpilot.brands.config import BrandConfig, load_brand
from cartpilot.commerce.credentials import SandboxTokenizer, choose_handler, providers_for
from cartpilot.commerce.errors import MerchantRejected, MerchantUnavailable
from cartpilot.commerce.http import wire_idempotency_key
from cartpilot.commerce.ports import MerchantProfile, PaymentHandler

TOKENS_URL = "https://shop.example/psp/tokens"
SANDBOX = PaymentHandler(
    name="com.cartpilot.sandbox_tokenizer", id="sandbox_tokenizer", instrumentTypes=("card",),
    config={"tokenization_url": TOKENS_URL},
)  # fmt: skip
GOOGLE_PAY = PaymentHandler(name="com.google.pay", id="gpay", instrumentTypes=("card",))
SHOP_PAY = PaymentHandler(name="dev.shopify.shop_pay", id="shop_pay", instrumentTypes=("shop_pay",))


def merchant_taking(*handlers: PaymentHandler) -> MerchantProfile:
    return MerchantProfile(
        merchantUrl="https://shop.example", version="2026-04-08", endpoint="https://shop.example/ucp",
        capabilities=("dev.ucp.shopping.checkout",), paymentHandlers=handlers,
    )  # fmt: skip


@pytest.fixture
def brand() -> BrandConfig:
    return load_brand("sandbox")


# --- choosing a handler ---------------------------------------------------------------------------


def test_the_handler_chosen_is_one_the_brand_funds_among_those_the_merchant_takes(brand: BrandConfig) -> None:
    assert choose_handler(merchant_taking(GOOGLE_PAY, SANDBOX, SHOP_PAY), brand) == SANDBOX


def test_a_merchant_whose_handlers_the_brand_cannot_fund_is_refused_with_both_lists(
    brand: BrandConfig,
) -> None:
    with pytest.raises(MerchantRejected) as refused:
        choose_handler(merchant_taking(GOOGLE_PAY, SHOP_PAY), brand)

    assert refused.value.code == "payment_handler_unsupported"
    message = str(refused.value)
    assert "com.google.pay, dev.shopify.shop_pay" in message and "com.cartpilot.sandbox_tokenizer" in message


def test_a_handler_of_the_right_name_but_without_a_tokenizer_cannot_be_funded(brand: BrandConfig) -> None:
    configless = SANDBOX.model_copy(update={"config": {}})
    with pytest.raises(MerchantRejected):
        choose_handler(merchant_taking(configless), brand)


def test_a_handler_whose_tokenizer_is_off_https_is_not_chosen_at_planning(brand: BrandConfig) -> None:
    """The payment method would go to that URL at payment: refused before anyone approves."""
    plain = SANDBOX.model_copy(update={"config": {"tokenization_url": "http://psp.example/tokens"}})
    with pytest.raises(MerchantRejected) as refused:
        choose_handler(merchant_taking(plain), brand)
    assert refused.value.code == "payment_handler_unsupported"


def test_providers_come_from_the_brands_handler_map(brand: BrandConfig) -> None:
    providers = providers_for(brand)
    assert set(providers) == {"com.cartpilot.sandbox_tokenizer"}
    assert isinstance(providers["com.cartpilot.sandbox_tokenizer"], SandboxTokenizer)

    unknown = brand.model_copy(update={"paymentHandlers": {"com.google.pay": "wallet-of-dreams"}})
    with pytest.raises(ValueError, match="wallet-of-dreams"):
        providers_for(unknown)


# --- the sandbox tokenizer ------------------------------------------------------------------------


class ScriptedTokenizer:
    def __init__(self, *replies: httpx.Response) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


def issued(token: str = "sbxtok_first") -> httpx.Response:
    return httpx.Response(
        201,
        json={
            "token": token,
            "expires_at": "2026-11-25T12:15:00Z",
            "card": {"brand": "visa", "last_digits": "4242"},
        },
    )


def test_a_token_is_asked_for_the_saved_payment_method_under_the_callers_key() -> None:
    psp = ScriptedTokenizer(issued())

    credential = SandboxTokenizer(transport=httpx.MockTransport(psp)).credential(
        SANDBOX, "pm_user1_visa", "cp-s4.credential"
    )

    (request,) = psp.requests
    assert (request.method, str(request.url)) == ("POST", TOKENS_URL)
    assert json.loads(request.content) == {"payment_method_id": "pm_user1_visa"}
    assert request.headers["Idempotency-Key"] == wire_idempotency_key("cp-s4.credential")
    assert credential.token.get_secret_value() == "sbxtok_first"
    assert (credential.handler, credential.instrumentType, credential.expiresAt) == (
        SANDBOX,
        "card",
        "2026-11-25T12:15:00Z",
    )
    assert credential.display == {"brand": "visa", "last_digits": "4242"}
    assert "pm_user1_visa" not in repr(credential)


def test_the_same_key_gives_the_same_credential_without_asking_again() -> None:
    psp = ScriptedTokenizer(issued("sbxtok_first"), issued("sbxtok_second"))
    tokenizer = SandboxTokenizer(transport=httpx.MockTransport(psp))

    first = tokenizer.credential(SANDBOX, "pm_user1_visa", "cp-s4.credential")
    again = tokenizer.credential(SANDBOX, "pm_user1_visa", "cp-s4.credential")
    other = tokenizer.credential(SANDBOX, "pm_user1_visa", "cp-s9.credential")

    assert again == first and other.token.get_secret_value() == "sbxtok_second"
    assert len(psp.requests) == 2


def test_a_tokenizer_hiccup_is_retried_under_the_same_key() -> None:
    psp = ScriptedTokenizer(httpx.Response(503), issued())
    credential = SandboxTokenizer(transport=httpx.MockTransport(psp)).credential(
        SANDBOX, "pm_user1_visa", "k"
    )
    assert credential.token.get_secret_value() == "sbxtok_first"
    assert (
        len({request.headers["Idempotency-Key"] for request in psp.requests}) == 1 and len(psp.requests) == 2
    )


def test_a_tokenizer_that_stays_down_is_a_transient_failure() -> None:
    psp = ScriptedTokenizer(httpx.Response(503))
    with pytest.raises(MerchantUnavailable):
        SandboxTokenizer(transport=httpx.MockTransport(psp)).credential(SANDBOX, "pm_user1_visa", "k")


def test_an_unknown_payment_method_is_refused() -> None:
    psp = ScriptedTokenizer(
        httpx.Response(400, json={"code": "unknown_payment_method", "content": "no such"})
    )
    with pytest.raises(MerchantRejected) as refused:
        SandboxTokenizer(transport=httpx.MockTransport(psp)).credential(SANDBOX, "pm_nobody", "k")
    assert (refused.value.status_code, refused.value.code) == (400, "tokenization_failed")


def test_a_tokenizer_off_https_is_refused_unless_on_loopback() -> None:
    psp = ScriptedTokenizer(issued())
    tokenizer = SandboxTokenizer(transport=httpx.MockTransport(psp))
    plain = SANDBOX.model_copy(update={"config": {"tokenization_url": "http://psp.example/tokens"}})
    with pytest.raises(MerchantRejected):
        tokenizer.credential(plain, "pm_user1_visa", "k")
    local = SANDBOX.model_copy(update={"config": {"tokenization_url": "http://127.0.0.1:8081/psp/tokens"}})
    assert tokenizer.credential(local, "pm_user1_visa", "k").token.get_secret_value() == "sbxtok_first"
    assert len(psp.requests) == 1
