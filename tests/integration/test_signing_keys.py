"""The request-signing key ring in Secrets Manager (moto): rotated by ``cartpilot keys``, read by the
functions, and published by the API at ``GET /.well-known/ucp`` as merchants fetch it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from cartpilot.adapters.aws.signing_keys import SecretsManagerSigningKeySource, rotate_secret
from cartpilot.cli import main as cartpilot
from cartpilot.commerce.signatures import sign_request, verify_request
from cartpilot.commerce.signing_keys import SigningKeysMissing
from cartpilot_local.gateway import proxy_event
from cartpilot_local.lambda_runtime import LambdaContext, load_handler
from cartpilot_local.resources import create_signing_keys_secret

SECRET = "cartpilot/test/ucp-signing-keys"
PUBLIC_API_URL = "https://api.cartpilot.test/v1"
API = Path(__file__).resolve().parents[2] / "functions" / "api" / "app.py"


@pytest.fixture
def secretsmanager(aws_tables: dict[str, Any]) -> Any:
    return boto3.client("secretsmanager")


def placeholder_secret(secretsmanager: Any) -> None:
    """What the stack deploys before anyone rotates: a value that is no key ring."""
    secretsmanager.create_secret(Name=SECRET, SecretString="Zq8#placeholder-from-cloudformation")


def fresh_source() -> SecretsManagerSigningKeySource:
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
    return SecretsManagerSigningKeySource(SECRET)


def test_a_placeholder_secret_is_no_ring_until_the_first_rotation(secretsmanager: Any) -> None:
    placeholder_secret(secretsmanager)
    with pytest.raises(SigningKeysMissing, match="cartpilot keys rotate"):
        fresh_source().load()
    ring = rotate_secret(SECRET)
    loaded = fresh_source().load()
    assert loaded.current.kid == ring.current.kid and loaded.previous == ()


def test_the_cli_rotates_with_overlap(secretsmanager: Any, capsys: pytest.CaptureFixture[str]) -> None:
    placeholder_secret(secretsmanager)
    assert cartpilot(["keys", "rotate", "--secret", SECRET]) == 0
    first = fresh_source().load().current
    assert cartpilot(["keys", "rotate", "--secret", SECRET]) == 0
    ring = fresh_source().load()
    assert ring.current.kid != first.kid and [k.kid for k in ring.previous] == [first.kid]
    assert ring.previous[0].public_jwk() == first.public_jwk(), "the old key is kept as it was"
    out = capsys.readouterr().out
    assert f"current key {ring.current.kid}; published: {ring.current.kid}, {first.kid}" in out

    assert cartpilot(["keys", "retire", "--secret", SECRET, "--kid", first.kid]) == 0
    assert [jwk["kid"] for jwk in fresh_source().load().published()] == [ring.current.kid]


def test_the_cli_refuses_clearly(secretsmanager: Any, capsys: pytest.CaptureFixture[str]) -> None:
    create_signing_keys_secret(secretsmanager, SECRET)
    current = fresh_source().load().current.kid
    assert cartpilot(["keys", "retire", "--secret", SECRET, "--kid", current]) == 1
    assert "rotate to a new key first" in capsys.readouterr().err
    assert cartpilot(["keys", "rotate", "--secret", "no-such-secret"]) == 1
    assert "ResourceNotFoundException" in capsys.readouterr().err


def test_the_ring_is_cached_for_a_few_minutes_per_container(secretsmanager: Any) -> None:
    create_signing_keys_secret(secretsmanager, SECRET)
    source = fresh_source()
    before = source.load().current.kid
    rotate_secret(SECRET)
    assert source.load().current.kid == before, "a warm container keeps its ring until the cache ages"
    assert fresh_source().load().current.kid != before


@pytest.fixture
def api(secretsmanager: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    create_signing_keys_secret(secretsmanager, SECRET)
    monkeypatch.setenv("SIGNING_KEYS_SECRET_ID", SECRET)
    monkeypatch.setenv("PUBLIC_API_URL", PUBLIC_API_URL + "/")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    from cartpilot import wiring

    wiring.reset()
    handler = load_handler(API)
    context = LambdaContext(
        function_name="api", invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:api"
    )

    def get(path: str) -> dict[str, Any]:
        result: dict[str, Any] = handler(proxy_event("GET", path, {}, {}, b""), context)
        return result

    yield get
    wiring.reset()


def _headers(response: dict[str, Any]) -> dict[str, str]:
    headers = {name.lower(): value for name, value in (response.get("headers") or {}).items()}
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers[name.lower()] = values[-1]
    return headers


def test_the_api_serves_the_current_profile_publicly_and_cacheably(api: Any) -> None:
    response = api("/.well-known/ucp")
    headers = _headers(response)
    assert response["statusCode"] == 200
    assert headers["content-type"].startswith("application/json")
    assert headers["cache-control"] == "public, max-age=300"
    profile = json.loads(response["body"])
    assert profile["ucp"]["version"] == "2026-04-08"
    assert profile["ucp"]["supported_versions"] == {
        "2026-01-11": f"{PUBLIC_API_URL}/.well-known/ucp/2026-01-11"
    }
    ring = fresh_source().load()
    assert profile["signing_keys"] == ring.published()


def test_the_api_serves_the_2026_01_11_leaf(api: Any) -> None:
    response = api("/.well-known/ucp/2026-01-11")
    assert response["statusCode"] == 200
    assert _headers(response)["cache-control"] == "public, max-age=300"
    leaf = json.loads(response["body"])
    assert leaf["ucp"]["version"] == "2026-01-11" and "supported_versions" not in leaf["ucp"]
    assert api("/.well-known/ucp/2025-01-01")["statusCode"] == 404


def test_a_merchant_verifies_our_signature_with_the_served_keys(api: Any) -> None:
    """What a 2026-04-08 merchant does: fetch the profile UCP-Agent names, look up the kid, verify."""
    key = fresh_source().load().signing_key()
    headers = {"Content-Type": "application/json", "UCP-Agent": f'profile="{PUBLIC_API_URL}/.well-known/ucp"'}
    url, body = "https://merchant.test/checkout-sessions", b'{"line_items":[]}'
    signed = {**headers, **sign_request(method="POST", url=url, headers=headers, body=body, key=key)}
    served = json.loads(api("/.well-known/ucp")["body"])["signing_keys"]
    keys = {jwk["kid"]: jwk for jwk in served}
    assert verify_request(method="POST", url=url, headers=signed, body=body, keys=keys) == key.kid


def test_an_unpublished_ring_is_a_503_not_a_crash(
    secretsmanager: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    placeholder_secret(secretsmanager)
    monkeypatch.setenv("SIGNING_KEYS_SECRET_ID", SECRET)
    monkeypatch.setenv("PUBLIC_API_URL", PUBLIC_API_URL)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    from cartpilot import wiring

    wiring.reset()
    handler = load_handler(API)
    context = LambdaContext(
        function_name="api", invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:api"
    )
    response = handler(proxy_event("GET", "/.well-known/ucp", {}, {}, b""), context)
    assert response["statusCode"] == 503
    assert _headers(response)["cache-control"] == "no-store"
    assert json.loads(response["body"])["error"]["code"] == "PROFILE_UNAVAILABLE"
    wiring.reset()
