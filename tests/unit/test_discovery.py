"""Discovery and negotiation against scripted merchants (httpx.MockTransport): which version CartPilot
speaks with a merchant, where, with what, for how long it trusts the answer, and when it refuses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from cartpilot.commerce.discovery import MerchantDiscovery, max_age, negotiate_version
from cartpilot.commerce.errors import MerchantRejected, MerchantUnavailable
from cartpilot.commerce.ports import Buyer, CartLine
from cartpilot.commerce.ucp import UcpMerchant
from tests.fakes.platform import LocalPlatform

MERCHANT = "https://shop.example"
OURS = ("2026-04-08", "2026-01-11")


def current_profile(version: str = "2026-04-08", **ucp: Any) -> dict[str, Any]:
    """A 2026-04-08 business profile, as overview.md "Business Profile" shows one."""
    base = f"https://ucp.dev/{version}"
    return {
        "ucp": {
            "version": version,
            "services": {
                "dev.ucp.shopping": [
                    {"version": version, "spec": f"{base}/specification/overview", "transport": "mcp",
                     "endpoint": "https://shop.example/ucp/mcp", "schema": f"{base}/services/shopping/mcp.openrpc.json"},
                    {"version": version, "spec": f"{base}/specification/overview", "transport": "rest",
                     "endpoint": "https://shop.example/ucp/v1", "schema": f"{base}/services/shopping/rest.openapi.json"},
                ]
            },
            "capabilities": {
                "dev.ucp.shopping.checkout": [{"version": version, "spec": f"{base}/specification/checkout",
                                               "schema": f"{base}/schemas/shopping/checkout.json"}],
                "dev.ucp.shopping.fulfillment": [{"version": version, "spec": f"{base}/specification/fulfillment",
                                                  "schema": f"{base}/schemas/shopping/fulfillment.json",
                                                  "extends": "dev.ucp.shopping.checkout"}],
                "dev.ucp.shopping.discount": [{"version": version, "spec": f"{base}/specification/discount",
                                               "schema": f"{base}/schemas/shopping/discount.json",
                                               "extends": "dev.ucp.shopping.checkout"}],
            },
            "payment_handlers": {
                "com.cartpilot.sandbox_tokenizer": [
                    {"id": "tok_1", "version": version, "available_instruments": [{"type": "card"}],
                     "config": {"tokenization_url": "https://shop.example/psp/tokens"}}
                ],
                "com.google.pay": [{"id": "gpay_1234", "version": "2024-12-03"}],
            },
            **ucp,
        },
        "signing_keys": [],
    }  # fmt: skip


def legacy_profile(version: str = "2026-01-11") -> dict[str, Any]:
    """A 2026-01-11 business profile, as that version's overview.md shows one."""
    return {
        "ucp": {
            "version": version,
            "services": {
                "dev.ucp.shopping": {
                    "version": version,
                    "spec": "https://ucp.dev/specification/overview",
                    "rest": {"schema": "https://ucp.dev/services/shopping/rest.openapi.json",
                             "endpoint": "https://shop.example/legacy/ucp"},
                }
            },
            "capabilities": [
                {"name": "dev.ucp.shopping.checkout", "version": version,
                 "spec": "https://ucp.dev/specification/checkout", "schema": "https://ucp.dev/schemas/shopping/checkout.json"},
                {"name": "dev.ucp.shopping.fulfillment", "version": version,
                 "spec": "https://ucp.dev/specification/fulfillment",
                 "schema": "https://ucp.dev/schemas/shopping/fulfillment.json", "extends": "dev.ucp.shopping.checkout"},
            ],
        },
        "payment": {
            "handlers": [
                {"id": "business_tokenizer", "name": "com.example.business_tokenizer", "version": version,
                 "spec": "https://example.com/specs/payments/business_tokenizer",
                 "config_schema": "https://example.com/specs/payments/merchant_tokenizer.json",
                 "instrument_schemas": ["https://ucp.dev/schemas/shopping/types/card_payment_instrument.json"],
                 "config": {"type": "CARD"}},
            ]
        },
    }  # fmt: skip


class ScriptedMerchant:
    """Serves profile documents by path and records every request it receives."""

    def __init__(self, documents: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self.documents = documents
        self.headers = headers if headers is not None else {"Cache-Control": "public, max-age=300"}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        document = self.documents.get(request.url.path)
        if isinstance(document, httpx.Response):
            return document
        if document is None:
            return httpx.Response(404, json={"code": "not_found", "content": "no such page"})
        return httpx.Response(200, json=document, headers=self.headers)

    @property
    def paths(self) -> list[str]:
        return [(request.method, request.url.path)[1] for request in self.requests]


def discovery(merchant: ScriptedMerchant, clock: Callable[[], float] = lambda: 0.0) -> MerchantDiscovery:
    return MerchantDiscovery(transport=httpx.MockTransport(merchant), clock=clock)


# --- negotiation ----------------------------------------------------------------------------------


def test_a_2026_04_08_merchant_is_spoken_to_at_its_rest_endpoint_with_the_capabilities_both_use() -> None:
    merchant = ScriptedMerchant({"/.well-known/ucp": current_profile()})

    profile = discovery(merchant).profile(MERCHANT)

    assert (profile.version, profile.endpoint) == ("2026-04-08", "https://shop.example/ucp/v1")
    # discount is the merchant's, not ours: out of the intersection.
    assert profile.capabilities == ("dev.ucp.shopping.checkout", "dev.ucp.shopping.fulfillment")
    handlers = {handler.name: handler for handler in profile.paymentHandlers}
    assert handlers["com.cartpilot.sandbox_tokenizer"].id == "tok_1"
    assert handlers["com.cartpilot.sandbox_tokenizer"].instrumentTypes == ("card",)
    assert handlers["com.cartpilot.sandbox_tokenizer"].config == {
        "tokenization_url": "https://shop.example/psp/tokens"
    }
    assert merchant.paths == ["/.well-known/ucp"]


def test_the_highest_version_both_speak_wins() -> None:
    merchant = ScriptedMerchant({
        "/.well-known/ucp": current_profile(supported_versions={"2026-01-11": "https://shop.example/.well-known/ucp/2026-01-11"}),
    })  # fmt: skip
    assert discovery(merchant).profile(MERCHANT).version == "2026-04-08"
    assert merchant.paths == ["/.well-known/ucp"]


def test_a_newer_merchant_is_spoken_to_through_the_profile_its_supported_versions_name() -> None:
    leaf = current_profile()
    leaf["ucp"]["services"]["dev.ucp.shopping"][1]["endpoint"] = "https://shop.example/ucp/2026-04-08"
    merchant = ScriptedMerchant({
        "/.well-known/ucp": current_profile("2026-09-01", supported_versions={
            "2026-04-08": "https://shop.example/.well-known/ucp/2026-04-08",
            "2026-01-11": "https://shop.example/.well-known/ucp/2026-01-11",
        }),
        "/.well-known/ucp/2026-04-08": leaf,
    })  # fmt: skip

    profile = discovery(merchant).profile(MERCHANT)

    assert (profile.version, profile.endpoint) == ("2026-04-08", "https://shop.example/ucp/2026-04-08")
    assert merchant.paths == ["/.well-known/ucp", "/.well-known/ucp/2026-04-08"]


def test_a_2026_01_11_merchant_is_read_in_its_own_shape() -> None:
    merchant = ScriptedMerchant({"/.well-known/ucp": legacy_profile()})

    profile = discovery(merchant).profile(MERCHANT)

    assert (profile.version, profile.endpoint) == ("2026-01-11", "https://shop.example/legacy/ucp")
    assert profile.capabilities == ("dev.ucp.shopping.checkout", "dev.ucp.shopping.fulfillment")
    (handler,) = profile.paymentHandlers
    assert (handler.name, handler.id, handler.instrumentTypes) == (
        "com.example.business_tokenizer",
        "business_tokenizer",
        ("card",),
    )


def test_a_business_of_the_2026_01_11_rule_serves_the_versions_up_to_its_own() -> None:
    # 2026-01-11, "Version Negotiation": a business serves platforms whose version is <= its own.
    assert negotiate_version(MERCHANT, "2026-02-15", {}, OURS) == ("2026-01-11", None)
    # Since 2026-04-08 a business lists what it serves: an unlisted older version is not served.
    with pytest.raises(MerchantRejected):
        negotiate_version(MERCHANT, "2026-06-01", {}, ("2026-01-11",))


def test_no_version_in_common_is_refused_naming_both_sides_and_nothing_else_is_sent() -> None:
    merchant = ScriptedMerchant({"/.well-known/ucp": current_profile("2027-03-01")})
    shop = UcpMerchant(MERCHANT, identity=LocalPlatform().identity(), transport=httpx.MockTransport(merchant))

    with pytest.raises(MerchantRejected) as refused:
        shop.checkout.create([CartLine(itemId="sku-1", quantity=1)], Buyer(fullName="Li Wei"), "CNY", "k-1")

    assert refused.value.code == "version_unsupported"
    assert "2027-03-01" in str(refused.value) and "2026-04-08 and 2026-01-11" in str(refused.value)
    assert merchant.paths == ["/.well-known/ucp"]  # nothing was created
    assert {request.method for request in merchant.requests} == {"GET"}


def test_an_older_merchant_than_any_we_speak_is_refused_too() -> None:
    merchant = ScriptedMerchant({"/.well-known/ucp": legacy_profile("2025-10-01")})
    with pytest.raises(MerchantRejected) as refused:
        discovery(merchant).profile(MERCHANT)
    assert refused.value.code == "version_unsupported"
    assert "2025-10-01" in str(refused.value)


def test_a_profile_for_another_version_than_its_link_promised_is_refused() -> None:
    merchant = ScriptedMerchant({
        "/.well-known/ucp": current_profile("2026-09-01", supported_versions={
            "2026-04-08": "https://shop.example/.well-known/ucp/old"}),
        "/.well-known/ucp/old": current_profile("2026-05-01"),
    })  # fmt: skip
    with pytest.raises(MerchantRejected) as refused:
        discovery(merchant).profile(MERCHANT)
    assert refused.value.code == "profile_malformed"


# --- capabilities ---------------------------------------------------------------------------------


def test_extensions_without_their_parent_and_dev_ucp_capabilities_specified_elsewhere_are_dropped() -> None:
    document = current_profile()
    capabilities = document["ucp"]["capabilities"]
    capabilities["dev.ucp.shopping.checkout"][0]["spec"] = "https://impostor.example/checkout"
    capabilities["com.cartpilot.order_cancel"] = [
        {
            "version": "2026-04-08",
            "spec": "https://cartpilot.com/ucp/order_cancel",
            "extends": "dev.ucp.shopping.order",
        }
    ]
    capabilities["dev.ucp.shopping.order"] = [
        {"version": "2026-04-08", "spec": "https://ucp.dev/2026-04-08/specification/order"}
    ]
    merchant = ScriptedMerchant({"/.well-known/ucp": document})

    # overview.md "Spec URL Binding": a dev.ucp checkout specified at impostor.example is not UCP's.
    with pytest.raises(MerchantRejected) as refused:
        discovery(merchant).profile(MERCHANT)
    assert refused.value.code == "capabilities_incompatible"

    capabilities["dev.ucp.shopping.checkout"][0]["spec"] = "https://ucp.dev/2026-04-08/specification/checkout"
    del capabilities["dev.ucp.shopping.order"]
    profile = discovery(merchant).profile(MERCHANT)
    # The cancel extension's parent (order) is not offered: the extension goes with it.
    assert not profile.offers("com.cartpilot.order_cancel")
    assert profile.offers("dev.ucp.shopping.fulfillment")


def test_a_capability_in_a_version_we_do_not_speak_is_left_out() -> None:
    document = current_profile()
    document["ucp"]["capabilities"]["dev.ucp.shopping.fulfillment"][0]["version"] = "2026-06-01"
    profile = discovery(ScriptedMerchant({"/.well-known/ucp": document})).profile(MERCHANT)
    assert not profile.offers("dev.ucp.shopping.fulfillment")


def test_a_merchant_without_a_rest_binding_is_refused() -> None:
    document = current_profile()
    document["ucp"]["services"]["dev.ucp.shopping"] = document["ucp"]["services"]["dev.ucp.shopping"][:1]
    with pytest.raises(MerchantRejected) as refused:
        discovery(ScriptedMerchant({"/.well-known/ucp": document})).profile(MERCHANT)
    assert refused.value.code == "transport_unsupported"


def test_an_endpoint_that_is_not_https_is_refused_unless_on_loopback() -> None:
    document = current_profile()
    document["ucp"]["services"]["dev.ucp.shopping"][1]["endpoint"] = "http://shop.example/ucp"
    with pytest.raises(MerchantRejected) as refused:
        discovery(ScriptedMerchant({"/.well-known/ucp": document})).profile(MERCHANT)
    assert refused.value.code == "insecure_url"

    document["ucp"]["services"]["dev.ucp.shopping"][1]["endpoint"] = "http://127.0.0.1:8081"
    assert discovery(ScriptedMerchant({"/.well-known/ucp": document})).profile(MERCHANT).endpoint == (
        "http://127.0.0.1:8081"
    )


# --- fetching and caching -------------------------------------------------------------------------


def test_a_profile_is_cached_as_long_as_its_max_age_says() -> None:
    merchant = ScriptedMerchant(
        {"/.well-known/ucp": current_profile()}, {"Cache-Control": "public, max-age=600"}
    )
    now = {"t": 0.0}
    found = discovery(merchant, clock=lambda: now["t"])

    found.profile(MERCHANT)
    now["t"] = 599.0
    found.profile(MERCHANT)
    assert len(merchant.requests) == 1
    now["t"] = 601.0
    found.profile(MERCHANT)
    assert len(merchant.requests) == 2


@pytest.mark.parametrize("cache_control", ["public, max-age=5", "no-store", None])
def test_a_profile_is_cached_for_at_least_sixty_seconds(cache_control: str | None) -> None:
    headers = {"Cache-Control": cache_control} if cache_control else {}
    merchant = ScriptedMerchant({"/.well-known/ucp": current_profile()}, headers)
    now = {"t": 0.0}
    found = discovery(merchant, clock=lambda: now["t"])

    found.profile(MERCHANT)
    now["t"] = 59.0
    found.profile(MERCHANT)
    now["t"] = 61.0
    found.profile(MERCHANT)
    assert len(merchant.requests) == 2


def test_max_age_is_read_from_cache_control() -> None:
    assert max_age("public, max-age=300") == 300.0
    assert max_age('max-age="60", public') == 60.0
    assert max_age("public") is None and max_age(None) is None


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (
            httpx.Response(301, headers={"Location": "https://elsewhere.example/.well-known/ucp"}),
            "profile_unreachable",
        ),
        (httpx.Response(404, text="not here"), "profile_unreachable"),
        (httpx.Response(200, text="<html>a shop</html>"), "profile_malformed"),
        (httpx.Response(200, json={"ucp": {"services": {}}}), "profile_malformed"),
    ],
)
def test_a_merchant_without_a_readable_profile_is_refused(reply: httpx.Response, code: str) -> None:
    merchant = ScriptedMerchant({"/.well-known/ucp": reply})
    with pytest.raises(MerchantRejected) as refused:
        discovery(merchant).profile(MERCHANT)
    assert refused.value.code == code
    assert len(merchant.requests) == 1  # redirects are not followed (overview.md "Fetching")


def test_a_profile_that_cannot_be_fetched_now_is_a_transient_failure() -> None:
    merchant = ScriptedMerchant({"/.well-known/ucp": httpx.Response(503)})
    with pytest.raises(MerchantUnavailable):
        discovery(merchant).profile(MERCHANT)


def test_a_merchant_url_that_is_not_https_is_refused_unless_on_loopback() -> None:
    merchant = ScriptedMerchant({"/.well-known/ucp": current_profile()})
    with pytest.raises(MerchantRejected) as refused:
        discovery(merchant).profile("http://shop.example")
    assert refused.value.code == "insecure_url" and merchant.requests == []
