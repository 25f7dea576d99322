"""MerchantClient against scripted merchants (httpx.MockTransport): headers, signatures, retries and
the error envelopes of both UCP versions."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from cartpilot.commerce.errors import (
    IdempotencyKeyReused,
    MerchantOutcomeUnknown,
    MerchantRejected,
    MerchantUnavailable,
)
from cartpilot.commerce.http import (
    MerchantAuth,
    MerchantClient,
    RequestSigner,
    RetryPolicy,
    Timeouts,
    wire_idempotency_key,
)

Reply = httpx.Response | Exception
AGENT_PROFILE = "https://agent.test/.well-known/ucp"


def ucp_error(status: int, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {
        "ucp": {"version": "2026-04-08", "status": "error"},
        "messages": [{"type": "error", "code": code, "content": "no", "severity": "recoverable"}],
    }
    return httpx.Response(status, json=body, headers=headers)


class ScriptedMerchant:
    """Answers requests from a script, one reply per request, and keeps what it was sent."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, Exception):
            raise reply
        return reply

    @property
    def keys(self) -> list[str | None]:
        return [r.headers.get("Idempotency-Key") for r in self.requests]


def sent(key: str) -> str:
    """The Idempotency-Key header for the caller's key (a UUID derived from it)."""
    return wire_idempotency_key(key)


def ok(body: dict[str, object] | None = None) -> httpx.Response:
    return httpx.Response(200, json=body if body is not None else {"id": "chk_1", "status": "incomplete"})


def make_client(
    merchant: ScriptedMerchant,
    *,
    attempts: int = 3,
    random: Callable[[], float] = lambda: 1.0,
    sleeps: list[float] | None = None,
    timeouts: Timeouts | None = None,
    signer: RequestSigner | None = None,
    auth: MerchantAuth | None = None,
) -> MerchantClient:
    recorded = sleeps if sleeps is not None else []
    return MerchantClient(
        "http://merchant.test/ucp",
        agent_profile_url=AGENT_PROFILE,
        signer=signer,
        auth=auth,
        transport=httpx.MockTransport(merchant),
        retry=RetryPolicy(attempts=attempts, base_delay=0.2, max_delay=2.0, max_retry_after=10.0),
        timeouts=timeouts,
        sleep=recorded.append,
        random=random,
        new_request_id=lambda: "req-1",
    )


def read_timeout(request_url: str = "http://merchant.test/ucp/checkout-sessions") -> httpx.ReadTimeout:
    return httpx.ReadTimeout("timed out", request=httpx.Request("POST", request_url))


# --- what every call carries ---------------------------------------------------------------------


def test_a_read_carries_the_ucp_headers_but_no_idempotency_key() -> None:
    merchant = ScriptedMerchant(ok({"id": "chk 1/2"}))
    body = make_client(merchant).get("/checkout-sessions/{id}", path={"id": "chk 1/2"})

    assert body == {"id": "chk 1/2"}
    (request,) = merchant.requests
    assert request.method == "GET"
    assert request.url.raw_path == b"/ucp/checkout-sessions/chk%201%2F2"
    assert request.headers["UCP-Agent"] == 'profile="https://agent.test/.well-known/ucp"'
    assert request.headers["Request-Id"] == "req-1"
    assert "Idempotency-Key" not in request.headers


def test_a_mutation_sends_the_callers_key_and_a_json_body() -> None:
    merchant = ScriptedMerchant(ok())
    make_client(merchant).mutate(
        "POST",
        "/checkout-sessions",
        {"line_items": [{"item": {"id": "sku-1"}, "quantity": 1}]},
        idempotency_key="cp-1",
    )

    (request,) = merchant.requests
    assert request.headers["Idempotency-Key"] == sent("cp-1")
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {"line_items": [{"item": {"id": "sku-1"}, "quantity": 1}]}


def test_the_brands_credentials_go_in_the_header_it_configures() -> None:
    bearer = ScriptedMerchant(ok())
    make_client(bearer, auth=MerchantAuth("Authorization", "Bearer", lambda: "tok-1\n")).get(
        "/orders/{id}", path={"id": "o"}
    )
    api_key = ScriptedMerchant(ok())
    make_client(api_key, auth=MerchantAuth("X-API-Key", None, lambda: "key-2")).get(
        "/orders/{id}", path={"id": "o"}
    )

    assert bearer.requests[0].headers["Authorization"] == "Bearer tok-1"
    assert api_key.requests[0].headers["X-API-Key"] == "key-2"
    assert "Authorization" not in api_key.requests[0].headers


def test_a_replaced_credential_is_sent_from_the_next_request_on() -> None:
    merchant = ScriptedMerchant(ok())
    secret = {"value": "old"}
    client = make_client(merchant, auth=MerchantAuth("X-API-Key", None, lambda: secret["value"]))
    client.get("/orders/{id}", path={"id": "o"})
    secret["value"] = "new"
    client.get("/orders/{id}", path={"id": "o"})
    assert [r.headers["X-API-Key"] for r in merchant.requests] == ["old", "new"]


class RecordingSigner:
    """Signs by naming what it was shown: the merchant can check the fields cover the bytes it got."""

    def __init__(self) -> None:
        self.calls: list[dict[str, object]] = []

    def __call__(
        self, *, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> dict[str, str]:
        self.calls.append({"method": method, "url": url, "headers": dict(headers), "body": body})
        return {"Signature-Input": f'sig1=("@method");keyid="k{len(self.calls)}"', "Signature": "sig1=:AAAA:"}


def test_a_signed_request_is_signed_over_the_url_headers_and_bytes_it_is_sent_with() -> None:
    merchant = ScriptedMerchant(ucp_error(503, "unavailable"), ok())
    signer = RecordingSigner()
    make_client(merchant, signer=signer).mutate(
        "PUT", "/checkout-sessions/{id}", {"line_items": [{"item": {"id": "sku 1"}, "quantity": 1}]},
        idempotency_key="cp-1", path={"id": "chk 1"},
    )  # fmt: skip

    first, second = merchant.requests
    assert len(signer.calls) == 2  # every attempt signs afresh
    for request, call in zip(merchant.requests, signer.calls, strict=True):
        assert call["url"] == str(request.url) == "http://merchant.test/ucp/checkout-sessions/chk%201"
        assert call["body"] == request.content
        shown = {name.lower(): value for name, value in call["headers"].items()}  # type: ignore[union-attr]
        assert shown["ucp-agent"] == request.headers["UCP-Agent"]
        assert shown["idempotency-key"] == request.headers["Idempotency-Key"]
        assert shown["content-type"] == "application/json"
    assert (first.headers["Signature-Input"], second.headers["Signature-Input"]) == (
        'sig1=("@method");keyid="k1"',
        'sig1=("@method");keyid="k2"',
    )
    assert first.content == second.content


def test_an_unsigned_client_sends_no_signature_fields() -> None:
    merchant = ScriptedMerchant(ok())
    make_client(merchant).mutate("POST", "/checkout-sessions", {}, idempotency_key="cp-1")
    assert not {"Signature", "Signature-Input", "Content-Digest"} & set(merchant.requests[0].headers)


def test_a_mutation_without_a_key_is_refused_before_sending() -> None:
    merchant = ScriptedMerchant(ok())
    with pytest.raises(ValueError, match="Idempotency-Key"):
        make_client(merchant).mutate("POST", "/checkout-sessions", {}, idempotency_key="")
    assert merchant.requests == []


def test_every_request_has_explicit_timeouts() -> None:
    merchant = ScriptedMerchant(ok())
    client = make_client(merchant, timeouts=Timeouts(connect=1.5, read=4.0, write=3.0, pool=0.5))
    client.query("/catalog/search", {"query": "socks"})

    assert merchant.requests[0].extensions["timeout"] == {
        "connect": 1.5,
        "read": 4.0,
        "write": 3.0,
        "pool": 0.5,
    }


def test_default_timeouts_are_two_seconds_to_connect_and_five_to_read() -> None:
    merchant = ScriptedMerchant(ok())
    make_client(merchant).get("/orders/{id}", path={"id": "ord_1"})

    timeout = merchant.requests[0].extensions["timeout"]
    assert (timeout["connect"], timeout["read"]) == (2.0, 5.0)


# --- retries -------------------------------------------------------------------------------------


def test_5xx_is_retried_with_the_same_key_and_bytes_until_it_succeeds() -> None:
    merchant = ScriptedMerchant(ucp_error(500, "internal_error"), ucp_error(503, "unavailable"), ok())
    sleeps: list[float] = []
    body = make_client(merchant, sleeps=sleeps).mutate(
        "POST",
        "/checkout-sessions/{id}/complete",
        {"payment": {}},
        idempotency_key="cp-pay",
        path={"id": "chk_1"},
    )

    assert body["id"] == "chk_1"
    assert merchant.keys == [sent("cp-pay")] * 3
    assert len({r.content for r in merchant.requests}) == 1
    assert {r.headers["Request-Id"] for r in merchant.requests} == {"req-1"}
    assert len(sleeps) == 2


def test_backoff_doubles_and_is_fully_jittered() -> None:
    merchant = ScriptedMerchant(ucp_error(500, "internal_error"))
    sleeps: list[float] = []
    with pytest.raises(MerchantUnavailable):
        make_client(merchant, attempts=5, sleeps=sleeps, random=lambda: 1.0).get(
            "/orders/{id}", path={"id": "o"}
        )
    # base 0.2 doubling, capped at max_delay 2.0; random()=1.0 takes the whole window
    assert sleeps == pytest.approx([0.2, 0.4, 0.8, 1.6])

    jittered: list[float] = []
    with pytest.raises(MerchantUnavailable):
        make_client(merchant, attempts=3, sleeps=jittered, random=lambda: 0.25).get(
            "/orders/{id}", path={"id": "o"}
        )
    assert jittered == pytest.approx([0.05, 0.1])


def test_5xx_that_never_clears_raises_unavailable_after_the_attempts() -> None:
    merchant = ScriptedMerchant(ucp_error(502, "bad_gateway"))
    with pytest.raises(MerchantUnavailable):
        make_client(merchant, attempts=3).get("/orders/{id}", path={"id": "ord_1"})
    assert len(merchant.requests) == 3


def test_429_waits_at_least_as_long_as_retry_after_says() -> None:
    merchant = ScriptedMerchant(ucp_error(429, "rate_limited", {"Retry-After": "3"}), ok({"products": []}))
    sleeps: list[float] = []
    body = make_client(merchant, sleeps=sleeps, random=lambda: 0.5).query(
        "/catalog/search", {"query": "socks"}
    )

    assert body == {"products": []}
    assert sleeps == [3.0]


def test_retry_after_as_an_http_date_is_honoured() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    merchant = ScriptedMerchant(ucp_error(503, "unavailable", {"Retry-After": later}), ok())
    sleeps: list[float] = []
    client = MerchantClient(
        "http://merchant.test",
        agent_profile_url=AGENT_PROFILE,
        transport=httpx.MockTransport(merchant),
        retry=RetryPolicy(attempts=2, max_retry_after=60.0),
        sleep=sleeps.append,
        random=lambda: 0.0,
    )
    client.get("/orders/{id}", path={"id": "o"})
    assert 20.0 < sleeps[0] <= 30.0


def test_a_retry_after_longer_than_we_wait_gives_up_at_once() -> None:
    merchant = ScriptedMerchant(ucp_error(429, "rate_limited", {"Retry-After": "120"}), ok())
    sleeps: list[float] = []
    with pytest.raises(MerchantUnavailable):
        make_client(merchant, sleeps=sleeps).query("/catalog/search", {"query": "socks"})
    assert len(merchant.requests) == 1
    assert sleeps == []


def test_a_connection_that_never_opened_is_retried_and_is_not_ambiguous() -> None:
    refused = httpx.ConnectError("refused", request=httpx.Request("POST", "http://merchant.test"))
    merchant = ScriptedMerchant(refused)
    with pytest.raises(MerchantUnavailable) as raised:
        make_client(merchant).mutate("POST", "/checkout-sessions", {}, idempotency_key="cp-create")
    assert not isinstance(raised.value, MerchantOutcomeUnknown)
    assert merchant.keys == [sent("cp-create")] * 3


def test_a_read_timeout_on_a_mutation_is_replayed_with_the_same_key() -> None:
    merchant = ScriptedMerchant(read_timeout(), ok({"id": "chk_1", "status": "completed"}))
    body = make_client(merchant).mutate(
        "POST",
        "/checkout-sessions/{id}/complete",
        {"payment": {}},
        idempotency_key="cp-pay",
        path={"id": "chk_1"},
    )
    assert body["status"] == "completed"
    assert merchant.keys == [sent("cp-pay")] * 2


def test_a_mutation_that_never_gets_an_answer_has_an_unknown_outcome() -> None:
    merchant = ScriptedMerchant(read_timeout())
    with pytest.raises(MerchantOutcomeUnknown, match="replay the same Idempotency-Key"):
        make_client(merchant).mutate(
            "POST", "/checkout-sessions/{id}/complete", {}, idempotency_key="cp-pay", path={"id": "chk_1"}
        )
    assert merchant.keys == [sent("cp-pay")] * 3


def test_a_dropped_connection_after_sending_a_mutation_is_ambiguous_too() -> None:
    dropped = httpx.RemoteProtocolError("server disconnected", request=httpx.Request("POST", "http://m.test"))
    merchant = ScriptedMerchant(dropped, ucp_error(503, "unavailable"), ucp_error(503, "unavailable"))
    with pytest.raises(MerchantOutcomeUnknown):
        make_client(merchant).mutate(
            "PUT", "/checkout-sessions/{id}", {}, idempotency_key="k", path={"id": "c"}
        )
    assert len(merchant.requests) == 3


def test_a_read_timeout_on_a_read_is_just_unavailable() -> None:
    merchant = ScriptedMerchant(read_timeout())
    with pytest.raises(MerchantUnavailable) as raised:
        make_client(merchant).query("/catalog/search", {"query": "socks"})
    assert not isinstance(raised.value, MerchantOutcomeUnknown)
    assert len(merchant.requests) == 3


# --- idempotency -------------------------------------------------------------------------------


def test_the_idempotency_key_is_a_uuid_derived_from_the_callers_key() -> None:
    merchant = ScriptedMerchant(ok())
    make_client(merchant).mutate("POST", "/checkout-sessions", {}, idempotency_key="cp-step-1")

    key = merchant.keys[0]
    assert key is not None and str(uuid.UUID(key)) == key
    assert key == sent("cp-step-1") != sent("cp-step-2")
    # A caller that already holds a UUID sends it as it is.
    assert sent("0b6d5c2a-4f0e-4a5e-9c1e-2d7f3a9b8c61") == "0b6d5c2a-4f0e-4a5e-9c1e-2d7f3a9b8c61"


def test_a_key_reused_with_another_body_is_a_definite_refusal_at_once() -> None:
    # overview.md, "Protocol Errors": 409 is the key reused with a different payload.
    merchant = ScriptedMerchant(
        httpx.Response(409, json={"code": "idempotency_conflict", "content": "key reused"}), ok()
    )
    sleeps: list[float] = []
    with pytest.raises(IdempotencyKeyReused) as raised:
        make_client(merchant, sleeps=sleeps).mutate(
            "POST", "/checkout-sessions/{id}/complete", {}, idempotency_key="cp-pay", path={"id": "chk_1"}
        )
    assert (raised.value.status_code, raised.value.code) == (409, "idempotency_conflict")
    assert not isinstance(raised.value, MerchantOutcomeUnknown)
    assert len(merchant.requests) == 1 and sleeps == []


def test_a_bare_409_is_still_a_reused_key() -> None:
    merchant = ScriptedMerchant(httpx.Response(409))
    with pytest.raises(IdempotencyKeyReused) as raised:
        make_client(merchant).mutate("POST", "/checkout-sessions", {}, idempotency_key="cp-create")
    assert raised.value.code == "idempotency_key_reused"
    assert len(merchant.requests) == 1


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "invalid_request"), (402, "payment_failed"), (404, "not_found"), (422, "out_of_stock")],
)
def test_a_refusal_is_final_and_keeps_its_status_and_ucp_code(status: int, code: str) -> None:
    merchant = ScriptedMerchant(ucp_error(status, code), ok())
    sleeps: list[float] = []
    with pytest.raises(MerchantRejected) as raised:
        make_client(merchant, sleeps=sleeps).mutate(
            "POST", "/checkout-sessions/{id}/complete", {}, idempotency_key="cp-pay", path={"id": "chk_1"}
        )
    assert (raised.value.status_code, raised.value.code) == (status, code)
    assert len(merchant.requests) == 1
    assert sleeps == []


@pytest.mark.parametrize(
    ("envelope", "code", "words"),
    [
        pytest.param(  # 2026-04-08 error_response
            {"ucp": {"version": "2026-04-08", "status": "error"},
             "messages": [{"type": "error", "code": "not_found", "content": "checkout chk_9 does not exist",
                           "severity": "unrecoverable"}]},
            "not_found", "checkout chk_9 does not exist", id="2026-04-08 error_response",
        ),
        pytest.param(  # 2026-01-11 error: status and messages with content
            {"status": "requires_escalation",
             "messages": [{"type": "error", "code": "invalid_cart_items",
                           "content": "One or more cart items are invalid", "severity": "requires_buyer_input"}]},
            "invalid_cart_items", "One or more cart items are invalid", id="2026-01-11 messages",
        ),
        pytest.param(  # 2026-01-11's negotiation example writes "message"
            {"status": "requires_escalation",
             "messages": [{"type": "error", "code": "version_unsupported",
                           "message": "Version 2026-01-12 is not supported.", "severity": "requires_buyer_input"}]},
            "version_unsupported", "Version 2026-01-12 is not supported.", id="2026-01-11 message",
        ),
        pytest.param(  # negotiation and signature errors: code and content
            {"code": "profile_unreachable", "content": "Unable to fetch agent profile: connection timeout",
             "continue_url": "https://merchant.com/cart"},
            "profile_unreachable", "Unable to fetch agent profile", id="transport error",
        ),
        pytest.param(  # the MCP binding's JSON-RPC error
            {"jsonrpc": "2.0", "id": 1, "error": {"code": -32001, "message": "Protocol version not supported",
             "data": {"code": "version_unsupported", "content": "Protocol version 2026-01-12 is not supported."}}},
            "version_unsupported", "Protocol version 2026-01-12 is not supported.", id="json-rpc error",
        ),
    ],
)  # fmt: skip
def test_every_documented_error_envelope_gives_its_code_and_the_merchants_words(
    envelope: dict[str, object], code: str, words: str
) -> None:
    merchant = ScriptedMerchant(httpx.Response(422, json=envelope))
    with pytest.raises(MerchantRejected) as raised:
        make_client(merchant).mutate("POST", "/checkout-sessions", {}, idempotency_key="cp-create")
    assert (raised.value.status_code, raised.value.code) == (422, code)
    assert words in str(raised.value)


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(403, text="forbidden"),
        httpx.Response(400, json={"detail": [{"loc": ["body"], "msg": "field required"}]}),
        httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="ucp"'}),
    ],
)
def test_an_unknown_error_envelope_is_a_clear_refusal_never_a_missing_code(reply: httpx.Response) -> None:
    merchant = ScriptedMerchant(reply)
    with pytest.raises(MerchantRejected) as raised:
        make_client(merchant).get("/orders/{id}", path={"id": "ord_1"})
    assert (raised.value.status_code, raised.value.code) == (reply.status_code, "unknown_error")
    assert f"HTTP {reply.status_code}" in str(raised.value)


def test_a_success_without_json_after_a_mutation_has_an_unknown_outcome() -> None:
    merchant = ScriptedMerchant(httpx.Response(200, text="<html>ok</html>"))
    with pytest.raises(MerchantOutcomeUnknown):
        make_client(merchant).mutate("POST", "/checkout-sessions", {}, idempotency_key="cp-create")


# --- what reaches the logs -----------------------------------------------------------------------


def test_logs_name_the_route_and_status_but_never_the_body(caplog: pytest.LogCaptureFixture) -> None:
    merchant = ScriptedMerchant(ucp_error(503, "unavailable"), ok())
    secret_phone = "+86 139 1088 2266"
    with caplog.at_level(logging.INFO, logger="cartpilot.commerce.http"):
        make_client(merchant).mutate(
            "PUT",
            "/checkout-sessions/{id}",
            {"fulfillment": {"methods": [{"destinations": [{"phone_number": secret_phone}]}]}},
            idempotency_key="cp-select",
            path={"id": "chk_secret_id"},
        )
    text = caplog.text
    assert "PUT /checkout-sessions/{id} -> 503 (attempt 1" in text
    assert "PUT /checkout-sessions/{id} -> 200 (attempt 2" in text
    assert secret_phone not in text
    assert "chk_secret_id" not in text


def test_nothing_is_opened_until_the_first_call() -> None:
    merchant = ScriptedMerchant(ok())
    client = make_client(merchant)
    assert merchant.requests == []
    client.close()  # closing an unused client is harmless
    client.get("/orders/{id}", path={"id": "ord_1"})
    assert len(merchant.requests) == 1


def test_circuit_opens_after_repeated_failures_and_fails_fast() -> None:
    from cartpilot.commerce.breaker import BreakerPolicy

    sent: list[str] = []

    def down(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return httpx.Response(503)

    client = MerchantClient(
        "http://merchant.test",
        agent_profile_url=AGENT_PROFILE,
        transport=httpx.MockTransport(down),
        sleep=lambda _: None,
        retry=RetryPolicy(attempts=1),
        breakers=BreakerPolicy(fail_max=3, reset_timeout=60),
    )
    for _ in range(3):
        with pytest.raises(MerchantUnavailable):
            client.get("/orders/{id}", path={"id": "o-1"})
    assert client.breakers.state("GET", "/orders/{id}") == "open"
    with pytest.raises(MerchantUnavailable, match="circuit open") as fast:
        client.get("/orders/{id}", path={"id": "o-2"})
    assert "503" in str(fast.value), "an open circuit says what opened it"
    assert len(sent) == 3, "an open circuit must not send"
    # Other endpoints of the same merchant keep their own breaker.
    with pytest.raises(MerchantUnavailable, match="503"):
        client.get("/checkout-sessions/{id}", path={"id": "cs-1"})


def test_half_open_circuit_closes_on_a_successful_trial() -> None:
    from cartpilot.commerce.breaker import BreakerPolicy

    healthy = {"up": False}

    def flaky(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": "o-1"}) if healthy["up"] else httpx.Response(500)

    client = MerchantClient(
        "http://merchant.test",
        agent_profile_url=AGENT_PROFILE,
        transport=httpx.MockTransport(flaky),
        sleep=lambda _: None,
        retry=RetryPolicy(attempts=1),
        breakers=BreakerPolicy(fail_max=2, reset_timeout=0),
    )
    for _ in range(2):
        with pytest.raises(MerchantUnavailable):
            client.get("/orders/{id}", path={"id": "o-1"})
    healthy["up"] = True
    # reset_timeout=0: the next call is the half-open trial, and it succeeds.
    assert client.get("/orders/{id}", path={"id": "o-1"}) == {"id": "o-1"}
    assert client.breakers.state("GET", "/orders/{id}") == "closed"


def test_rejections_do_not_open_the_circuit() -> None:
    from cartpilot.commerce.breaker import BreakerPolicy

    client = MerchantClient(
        "http://merchant.test",
        agent_profile_url=AGENT_PROFILE,
        transport=httpx.MockTransport(
            lambda request: httpx.Response(400, json={"messages": [{"code": "bad"}]})
        ),
        sleep=lambda _: None,
        breakers=BreakerPolicy(fail_max=2, reset_timeout=60),
    )
    for _ in range(4):
        with pytest.raises(MerchantRejected):
            client.get("/orders/{id}", path={"id": "o-1"})
    assert client.breakers.state("GET", "/orders/{id}") == "closed"


def test_retry_budget_caps_retries_across_calls() -> None:
    from cartpilot.commerce.breaker import BreakerPolicy, RetryBudget

    sent: list[int] = []

    def down(request: httpx.Request) -> httpx.Response:
        sent.append(1)
        return httpx.Response(503)

    budget = RetryBudget(capacity=10)  # two retries' worth
    client = MerchantClient(
        "http://merchant.test",
        agent_profile_url=AGENT_PROFILE,
        transport=httpx.MockTransport(down),
        sleep=lambda _: None,
        retry=RetryPolicy(attempts=3),
        breakers=BreakerPolicy(fail_max=100),
        retry_budget=budget,
    )
    for _ in range(3):
        with pytest.raises(MerchantUnavailable):
            client.get("/orders/{id}", path={"id": "o-1"})
    # 3 first attempts + only 2 retries the budget paid for.
    assert len(sent) == 5 and budget.available == 0
