"""The sandbox holds a platform to each UCP version: schemas, UCP-Agent, idempotency, signatures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.testclient import TestClient

from cartpilot_local.merchant.app import create_app
from cartpilot_local.merchant.jwk import SigningKey
from cartpilot_local.merchant.specs import SpecLibrary, resolve_annotations
from cartpilot_local.merchant.state import MerchantState
from cartpilot_local.servers import serve_in_thread
from tests.fakes.ucp_platform import FakePlatform
from tests.fakes.ucp_shopper import BEIJING, SHOE_42, UcpShopper, new_key

NEW, OLD = "2026-04-08", "2026-01-11"


def merchant(
    version: str,
    platform: FakePlatform,
    *,
    validate: bool = False,
    signed: bool = True,
    agent: str | None = None,
) -> TestClient:
    http = TestClient(
        create_app(
            MerchantState(), ucp_version=version, profile_fetcher=platform.fetch, validate_schemas=validate
        )
    )
    http.auth = platform.auth(signed=signed and version == NEW, agent=agent)
    return http


def error_code(response: httpx.Response, version: str) -> str:
    """A transport error's code: 2026-04-08 `{"code", "content"}`, 2026-01-11 its error structure."""
    body = response.json()
    return str(body["code"] if version == NEW else body["messages"][0]["code"])


# --- schemas -------------------------------------------------------------------------------------


def test_annotations_shape_requests_per_operation() -> None:
    schema = {
        "type": "object",
        "required": ["id", "status"],
        "properties": {
            "id": {"type": "string", "ucp_request": {"create": "omit", "update": "required"}},
            "status": {"type": "string", "ucp_request": "omit"},
            "note": {"type": "string", "ucp_request": {"complete": "required"}},
        },
    }
    create = resolve_annotations(schema, "request", "create")
    assert (set(create["properties"]), create["required"]) == ({"note"}, [])
    update = resolve_annotations(schema, "request", "update")
    assert (set(update["properties"]), update["required"]) == ({"id", "note"}, ["id"])
    # No word for this operation: `id` keeps the requiredness the schema gives it.
    assert resolve_annotations(schema, "request", "complete")["required"] == ["id", "note"]
    assert resolve_annotations(schema, "response", "read")["required"] == ["id", "status"]


@pytest.mark.parametrize("version", [NEW, OLD])
def test_the_schemas_catch_a_bad_checkout(version: str) -> None:
    spec = SpecLibrary(version)
    checkout = {"$ref": "https://ucp.dev/schemas/shopping/checkout.json"}
    assert spec.problems(
        {"line_items": [{"item": {"id": "x"}, "quantity": 0}]}, checkout, "request", "create"
    )
    assert spec.problems({"id": "chk_1"}, checkout, "response", "read")


def scripted_checkout(shopper: UcpShopper, version: str) -> None:
    """Every operation a platform uses, refusals included."""
    http = shopper.http
    http.get("/.well-known/ucp")
    if version == NEW:
        http.post(
            "/catalog/search",
            json={"query": "running shoes", "filters": {"size": "42"}, "pagination": {"limit": 3}},
        )
        http.post(
            "/catalog/lookup", json={"ids": [SHOE_42, "gift-wrap", "nope"], "context": {"currency": "USD"}}
        )
        http.post(
            "/catalog/product", json={"id": "rs-stride-lite", "selected": [{"name": "Size", "label": "42"}]}
        )
        http.post("/catalog/product", json={"id": "nope"})
    created = shopper.create((SHOE_42, 1), ("gift-wrap-standard", 1)).json()
    http.get(f"/checkout-sessions/{created['id']}")
    shipped = shopper.ship(created, destination=BEIJING, option="expedited")
    declined = shopper.complete(shipped["id"], shopper.token("pm_declined"))
    assert declined.json()["status"] == "ready_for_complete"
    completed = shopper.complete(shipped["id"], shopper.token()).json()
    assert completed["status"] == "completed"
    order_id = completed["order"]["id"]
    http.get(f"/orders/{order_id}")
    http.post(f"/orders/{order_id}/cancel", headers={"Idempotency-Key": new_key()})
    other = shopper.create(("rs-trailhawk-green-42", 1)).json()  # out of stock: a business outcome
    shopper.cancel(other["id"])
    shopper.cancel(other["id"])  # refused: already canceled
    shopper.create(("no-such-item", 1))  # refused: nothing to create
    http.get("/checkout-sessions/chk_missing")
    http.get("/orders/ord_missing")
    escalate = http.post("/_sandbox/escalate", json={})
    assert escalate.status_code == 201
    handed_off = shopper.ready()
    assert shopper.complete(handed_off["id"], shopper.token()).json()["status"] == "requires_escalation"


@pytest.mark.parametrize("version", [NEW, OLD])
def test_every_message_of_a_scripted_checkout_matches_the_versions_schemas(version: str) -> None:
    http = merchant(version, FakePlatform(version), validate=True)
    scripted_checkout(UcpShopper(http, version), version)
    report = http.get("/_sandbox/conformance").json()
    assert report["version"] == version
    assert report["violations"] == []
    assert report["validated"]["requests"] >= 10
    # 2026-01-11's OpenAPI documents no error bodies, so its refusals are not counted.
    assert report["validated"]["responses"] >= (20 if version == NEW else 14)


@pytest.mark.parametrize("version", [NEW, OLD])
def test_a_request_that_breaks_the_schema_is_recorded(version: str) -> None:
    platform = FakePlatform(version)
    http = merchant(version, platform, validate=True)
    shopper = UcpShopper(http, version)
    session = shopper.create((SHOE_42, 1)).json()
    body = shopper.update_body(session, destination=BEIJING)
    del body["fulfillment"]["methods"][0]["line_item_ids"]  # required in an update request
    http.put(f"/checkout-sessions/{session['id']}", json=body, headers={"Idempotency-Key": new_key()})
    (violation,) = http.get("/_sandbox/conformance").json()["violations"]
    assert (violation["direction"], violation["route"]) == ("request", "PUT /checkout-sessions/{id}")
    assert "line_item_ids" in violation["message"]


# --- UCP-Agent -----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [NEW, OLD])
@pytest.mark.parametrize(
    ("agent", "served", "status", "code"),
    [
        (None, None, 400, "invalid_profile_url"),
        ("profile=https://platform.test/p", None, 400, "invalid_profile_url"),  # a token, not a string
        ('profile="http://platform.test/p"', None, 400, "invalid_profile_url"),  # not https
        ('profile="https://gone.test/p"', None, 424, "profile_unreachable"),
        ('profile="https://bad.test/p"', b"<html>not json</html>", 422, "profile_malformed"),
        ('profile="https://bad.test/p"', {"ucp": {"version": "yesterday"}}, 422, "profile_malformed"),
        ('profile="https://future.test/p"', "future", 422, "version_unsupported"),
    ],
    ids=[
        "missing",
        "malformed-header",
        "not-https",
        "unreachable",
        "not-json",
        "violates-schema",
        "unknown-version",
    ],
)
def test_ucp_agent_refusals(version: str, agent: str | None, served: Any, status: int, code: str) -> None:
    platform = FakePlatform(version)
    if served is not None and agent is not None:
        url = agent.split('"')[1]
        document = FakePlatform("2026-12-31", url=url).profile() if served == "future" else served
        platform.serve(url, document)
    http = TestClient(create_app(MerchantState(), ucp_version=version, profile_fetcher=platform.fetch))
    headers = {"UCP-Agent": agent} if agent is not None else {}
    response = http.get("/checkout-sessions/chk_1", headers=headers)
    assert response.status_code == status
    assert error_code(response, version) == code
    if version == OLD and code == "version_unsupported":
        # 2026-01-11 overview.md shows this error with `message`, and severity requires_buyer_input.
        message = response.json()["messages"][0]
        assert message["message"] and message["severity"] == "requires_buyer_input"


def test_2026_04_08_serves_only_its_own_version() -> None:
    older = FakePlatform(OLD)
    response = merchant(NEW, older, signed=False).get("/checkout-sessions/chk_1")
    assert (response.status_code, response.json()["code"]) == (422, "version_unsupported")


def test_2026_01_11_serves_platforms_of_that_version_or_older() -> None:
    older = FakePlatform("2025-10-01")
    assert (
        merchant(OLD, older).get("/checkout-sessions/chk_1").status_code == 404
    )  # admitted; no such session
    refused = merchant(OLD, FakePlatform("2026-02-01")).get("/checkout-sessions/chk_1")
    assert (refused.status_code, error_code(refused, OLD)) == (422, "version_unsupported")


@pytest.mark.parametrize("version", [NEW, OLD])
def test_without_checkout_in_common_the_operation_is_refused(version: str) -> None:
    platform = FakePlatform(version, capabilities=("dev.ucp.shopping.order",))
    response = merchant(version, platform).get("/checkout-sessions/chk_1")
    assert response.status_code == 200
    assert response.json()["messages"][0]["code"] == "capabilities_incompatible"


def test_profiles_are_cached() -> None:
    platform = FakePlatform(NEW)
    http = merchant(NEW, platform)
    for _ in range(3):
        http.get("/checkout-sessions/chk_1")
    assert platform.fetched == [platform.url]


# --- idempotency ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [NEW, OLD])
def test_a_key_reused_with_another_payload_is_409_and_changes_nothing(version: str) -> None:
    platform = FakePlatform(version)
    http = merchant(version, platform)
    shopper = UcpShopper(http, version)
    first = shopper.create((SHOE_42, 1), key="same-key")
    reused = shopper.create((SHOE_42, 3), key="same-key")
    assert (reused.status_code, error_code(reused, version)) == (409, "idempotency_conflict")
    replay = shopper.create((SHOE_42, 1), key="same-key")
    assert replay.json() == first.json()


# --- signatures (2026-04-08) ---------------------------------------------------------------------


def signed_request(
    http: TestClient, platform: FakePlatform, body: dict[str, Any], **sign: Any
) -> httpx.Request:
    request = http.build_request(
        "POST",
        "/checkout-sessions",
        json=body,
        headers={"UCP-Agent": platform.agent_header(), "Idempotency-Key": new_key()},
    )
    platform.sign(request, **sign)
    return request


@pytest.fixture
def platform() -> FakePlatform:
    return FakePlatform(NEW)


@pytest.fixture
def unsigned(platform: FakePlatform) -> TestClient:
    return TestClient(create_app(MerchantState(), profile_fetcher=platform.fetch))


def create_body() -> dict[str, Any]:
    return {"line_items": [{"item": {"id": SHOE_42}, "quantity": 1}]}


def test_a_correctly_signed_request_is_accepted(unsigned: TestClient, platform: FakePlatform) -> None:
    response = unsigned.send(signed_request(unsigned, platform, create_body()))
    assert response.status_code == 201, response.text


def test_an_unsigned_request_is_refused(unsigned: TestClient, platform: FakePlatform) -> None:
    response = unsigned.get("/checkout-sessions/chk_1", headers={"UCP-Agent": platform.agent_header()})
    assert (response.status_code, response.json()["code"]) == (401, "signature_missing")


def test_a_tampered_body_fails_its_digest(unsigned: TestClient, platform: FakePlatform) -> None:
    request = signed_request(unsigned, platform, create_body())
    tampered = httpx.Request(
        request.method, request.url, headers=request.headers,
        content=request.content.replace(b'"quantity":1', b'"quantity":9'),
    )  # fmt: skip
    response = unsigned.send(tampered)
    assert (response.status_code, response.json()["code"]) == (400, "digest_mismatch")


def test_a_key_the_profile_does_not_publish_is_not_found(
    unsigned: TestClient, platform: FakePlatform
) -> None:
    stranger = SigningKey.generate("stranger")
    response = unsigned.send(signed_request(unsigned, platform, create_body(), key=stranger))
    assert (response.status_code, response.json()["code"]) == (401, "key_not_found")


def test_a_signature_by_another_key_under_a_published_kid_is_invalid(
    unsigned: TestClient, platform: FakePlatform
) -> None:
    impostor = SigningKey(platform.key.kid, SigningKey.generate("x").private_key)
    response = unsigned.send(signed_request(unsigned, platform, create_body(), key=impostor))
    assert (response.status_code, response.json()["code"]) == (401, "signature_invalid")


def test_a_changed_header_breaks_the_signature(unsigned: TestClient, platform: FakePlatform) -> None:
    request = signed_request(unsigned, platform, create_body())
    request.headers["Idempotency-Key"] = new_key()
    response = unsigned.send(request)
    assert (response.status_code, response.json()["code"]) == (401, "signature_invalid")


def test_a_signature_must_cover_what_signatures_md_requires(
    unsigned: TestClient, platform: FakePlatform
) -> None:
    partial = [
        "@method",
        "@authority",
        "@path",
        "content-digest",
        "content-type",
        "ucp-agent",
    ]  # no idempotency-key
    response = unsigned.send(signed_request(unsigned, platform, create_body(), components=partial))
    assert (response.status_code, response.json()["code"]) == (401, "signature_invalid")
    assert "idempotency-key" in response.json()["content"]


def test_a_key_on_an_unsupported_curve_is_refused(unsigned: TestClient, platform: FakePlatform) -> None:
    profile = platform.profile()
    profile["signing_keys"][0]["crv"] = "P-521"
    url = platform.serve("https://odd.test/p", profile)
    request = unsigned.build_request(
        "GET", "/checkout-sessions/chk_1", headers={"UCP-Agent": f'profile="{url}"'}
    )
    platform.sign(request)
    response = unsigned.send(request)
    assert (response.status_code, response.json()["code"]) == (400, "algorithm_unsupported")


def test_keys_rotate_with_overlap(unsigned: TestClient, platform: FakePlatform) -> None:
    old = platform.key
    assert (
        unsigned.send(signed_request(unsigned, platform, create_body())).status_code == 201
    )  # profile cached
    platform.rotate()
    # The cached profile lacks the new key: the merchant fetches the profile again, once.
    assert unsigned.send(signed_request(unsigned, platform, create_body())).status_code == 201
    assert unsigned.send(signed_request(unsigned, platform, create_body(), key=old)).status_code == 201
    assert platform.fetched == [platform.url, platform.url]
    platform.rotate(publish=False)
    unpublished = unsigned.send(signed_request(unsigned, platform, create_body()))
    assert (unpublished.status_code, unpublished.json()["code"]) == (401, "key_not_found")


def test_2026_01_11_requests_need_no_signature() -> None:
    platform = FakePlatform(OLD)
    response = merchant(OLD, platform, signed=False).get("/checkout-sessions/chk_1")
    assert response.status_code == 404
    assert response.json()["messages"][0]["code"] == "not_found"


def test_the_default_fetcher_reads_profiles_over_loopback_and_follows_no_redirects() -> None:
    platform = FakePlatform(NEW)
    profiles = FastAPI()

    @profiles.get("/.well-known/ucp")
    async def profile() -> dict[str, Any]:
        return platform.profile()

    @profiles.get("/moved")
    async def moved() -> RedirectResponse:
        return RedirectResponse("/.well-known/ucp")

    with serve_in_thread(profiles) as served:
        platform.url = f"{served.url}/.well-known/ucp"
        http = TestClient(create_app(MerchantState()))  # the real fetcher: httpx over loopback
        http.auth = platform.auth()
        found = http.get("/checkout-sessions/chk_1")
        assert (found.status_code, found.json()["messages"][0]["code"]) == (200, "not_found")
        redirected = http.get(
            "/checkout-sessions/chk_1", headers={"UCP-Agent": f'profile="{served.url}/moved"'}
        )
        assert (redirected.status_code, redirected.json()["code"]) == (424, "profile_unreachable")


def test_without_the_specification_the_sandbox_serves_but_will_not_claim_conformance(tmp_path: Path) -> None:
    """A clone without ../shared beside it still runs the demo; only schema checking needs the schemas."""
    import subprocess
    import sys

    from cartpilot_local.merchant.specs import SpecLibrary, SpecsMissing

    missing = SpecLibrary("2026-04-08", root=tmp_path)
    assert missing.available is False
    with pytest.raises(SpecsMissing, match="UCP_SPECS_DIR"):
        missing.require()

    refused = subprocess.run(
        [sys.executable, "-m", "cartpilot_local.cli", "merchant", "--port", "0", "--validate-schemas"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "UCP_SPECS_DIR": str(tmp_path)},
    )  # fmt: skip
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "schemas not found" in refused.stderr
