"""Request signing as UCP 2026-04-08 profiles RFC 9421 and RFC 9530 (signatures.md), against the RFCs'
own examples, and every way a merchant must refuse a request that was tampered with."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from http_sfv import Dictionary

from cartpilot.commerce.signatures import (
    SignatureError,
    SigningKey,
    content_digest,
    sign_request,
    sign_response,
    verify_request,
    verify_response,
)

# RFC 9421 Appendix B.1.3, test-key-ecc-p256, as a JWK (the private key is d).
RFC_P256_JWK = {
    "kid": "test-key-ecc-p256",
    "kty": "EC",
    "crv": "P-256",
    "x": "qIVYZVLCrPZHGHjP17CTW0_-D9Lfw0EkjqF7xB4FivA",
    "y": "Mc4nN9LTDOBhfoUeg8Ye9WedFRhnZXZJA12Qp0zZ6F0",
    "d": "UpuF81l-kOxbjf7T4mNSv0r5tN67Gim7rnf6EFpcYDs",
}
# The same key's public half as the RFC prints it (PEM).
RFC_P256_PUBLIC_PEM = b"""-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqIVYZVLCrPZHGHjP17CTW0/+D9Lf
w0EkjqF7xB4FivAxzic30tMM4GF+hR6Dxh71Z50VGGdldkkDXZCnTNnoXQ==
-----END PUBLIC KEY-----
"""
# RFC 9421 Appendix B.2, test-response, and B.2.4: that response signed with ecdsa-p256-sha256.
RFC_RESPONSE_BODY = b'{"message": "good dog"}'
RFC_RESPONSE_HEADERS = {
    "Date": "Tue, 20 Apr 2021 02:07:56 GMT",
    "Content-Type": "application/json",
    "Content-Digest": (
        "sha-512=:mEWXIS7MaLRuGgxOBdODa3xqM1XdEvxoYhvlCFJ41QJgJc4GTsPp29l5oGX69wWdXymyU0rjJuahq4l5aGgfLQ==:"
    ),
    "Content-Length": "23",
    "Signature-Input": (
        'sig-b24=("@status" "content-type" "content-digest" "content-length")'
        ';created=1618884473;keyid="test-key-ecc-p256"'
    ),
    "Signature": (
        "sig-b24=:wNmSUAhwb5LxtOtOpNa6W5xj067m5hFrj0XQ4fvpaCLx0NKocgPquLgyahnzDnDAUy5eCdlYUEkLIj+32oiasw==:"
    ),
}
RFC_CREATED = 1618884473

# signatures.md, "Complete Request Example".
MERCHANT = "https://merchant.example.com"
CHECKOUT_BODY = b'{"checkout":{"line_items":[{"id":"prod_123","quantity":2}]}}'
CHECKOUT_HEADERS = {
    "Content-Type": "application/json",
    "UCP-Agent": 'profile="https://platform.example/.well-known/ucp"',
    "Idempotency-Key": "550e8400-e29b-41d4-a716-446655440000",
}
NOW = 1_775_606_400  # 2026-04-08T00:00:00Z


def rfc_public_jwk() -> dict[str, str]:
    return {name: value for name, value in RFC_P256_JWK.items() if name != "d"}


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate("platform-2026")


def keys_of(*signing_keys: SigningKey) -> dict[str, dict[str, str]]:
    return {k.kid: k.public_jwk() for k in signing_keys}


def signed_checkout(key: SigningKey, **changes: object) -> dict[str, object]:
    """A signed create-checkout request, as verify_request takes it."""
    request: dict[str, object] = {
        "method": "POST",
        "url": f"{MERCHANT}/checkout-sessions",
        "headers": dict(CHECKOUT_HEADERS),
        "body": CHECKOUT_BODY,
    }
    added = sign_request(key=key, created=NOW, **request)  # type: ignore[arg-type]
    request["headers"] = {**CHECKOUT_HEADERS, **added}
    request.update(changes)
    return request


def refusal(
    request: dict[str, object], keys: dict[str, dict[str, str]], now: int = NOW + 1
) -> SignatureError:
    with pytest.raises(SignatureError) as raised:
        verify_request(keys=keys, now=now, **request)  # type: ignore[arg-type]
    return raised.value


# --- RFC 9530: Content-Digest -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # RFC 9421 section 2.1 / B.2's test-request content.
        (b'{"hello": "world"}', "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"),
        # RFC 9530 section 2 and Appendix B: the same JSON with its trailing newline (19 bytes).
        (b'{"hello": "world"}\n', "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:"),
        # RFC 9530 Appendix B.2: empty content (a HEAD response).
        (b"", "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"),
    ],
)
def test_content_digest_matches_the_rfc_examples(body: bytes, expected: str) -> None:
    assert content_digest(body) == expected


# --- RFC 9421: the published P-256 key and signature --------------------------------------------


def test_the_rfc_key_reads_from_its_jwk_and_matches_its_pem() -> None:
    key = SigningKey.from_secret(RFC_P256_JWK)
    assert (
        key.private_key.public_key().public_numbers()
        == load_pem_public_key(RFC_P256_PUBLIC_PEM).public_numbers()
    )  # type: ignore[union-attr]
    assert {name: key.public_jwk()[name] for name in ("kty", "crv", "x", "y")} == {
        name: RFC_P256_JWK[name] for name in ("kty", "crv", "x", "y")
    }
    assert key.public_jwk()["alg"] == "ES256" and "d" not in key.public_jwk()
    assert key.to_secret()["d"] == RFC_P256_JWK["d"]


def test_the_rfc_b24_signature_verifies() -> None:
    kid = verify_response(
        status=200,
        headers=RFC_RESPONSE_HEADERS,
        body=RFC_RESPONSE_BODY,
        keys={"test-key-ecc-p256": rfc_public_jwk()},
        now=RFC_CREATED + 60,
    )
    assert kid == "test-key-ecc-p256"


@pytest.mark.parametrize(
    "tampered",
    [
        {"status": 201},
        {"headers": {**RFC_RESPONSE_HEADERS, "Content-Length": "24"}},
        {"headers": {**RFC_RESPONSE_HEADERS, "Content-Type": "text/plain"}},
    ],
    ids=["status", "content-length", "content-type"],
)
def test_the_rfc_b24_signature_fails_on_a_changed_response(tampered: dict[str, object]) -> None:
    response: dict[str, object] = {"status": 200, "headers": RFC_RESPONSE_HEADERS, "body": RFC_RESPONSE_BODY}
    with pytest.raises(SignatureError) as raised:
        verify_response(
            keys={"test-key-ecc-p256": rfc_public_jwk()},
            now=RFC_CREATED + 60,
            **(response | tampered),  # type: ignore[arg-type]
        )
    assert (raised.value.code, raised.value.status) == ("signature_invalid", 401)


def test_signing_with_the_rfc_key_verifies_with_its_public_half() -> None:
    """ECDSA is randomised, so a fresh signature cannot equal the RFC's: sign, then verify."""
    key = SigningKey.from_secret(RFC_P256_JWK)
    headers = {"Content-Type": "application/json", "Content-Length": "23"}
    added = sign_response(status=200, headers=headers, body=RFC_RESPONSE_BODY, key=key, created=RFC_CREATED)
    assert added["Signature-Input"] == (
        'sig1=("@status" "content-digest" "content-type");created=1618884473;keyid="test-key-ecc-p256"'
    )
    assert added["Content-Digest"] == content_digest(RFC_RESPONSE_BODY)
    kid = verify_response(
        status=200,
        headers=headers | added,
        body=RFC_RESPONSE_BODY,
        keys={"test-key-ecc-p256": rfc_public_jwk()},
        now=RFC_CREATED,
    )
    assert kid == "test-key-ecc-p256"


# --- signing requests the way signatures.md shows ----------------------------------------------


def _signature_bytes(field: str) -> bytes:
    parsed = Dictionary()
    parsed.parse(field.encode())
    value = parsed["sig1"].value
    assert isinstance(value, bytes)
    return value


def test_a_checkout_request_covers_what_signatures_md_lists_in_order(key: SigningKey) -> None:
    added = sign_request(
        method="POST",
        url=f"{MERCHANT}/checkout-sessions",
        headers=CHECKOUT_HEADERS,
        body=CHECKOUT_BODY,
        key=key,
        created=NOW,
    )
    assert set(added) == {"Content-Digest", "Signature-Input", "Signature"}
    assert added["Content-Digest"] == content_digest(CHECKOUT_BODY)
    assert added["Signature-Input"] == (
        'sig1=("@method" "@authority" "@path" "ucp-agent" "idempotency-key" "content-digest" "content-type")'
        f';created={NOW};keyid="platform-2026"'
    )
    # signatures.md, "Signature Encoding": raw r||s, 64 bytes for P-256, never DER.
    assert len(_signature_bytes(added["Signature"])) == 64


def test_a_get_without_body_covers_method_authority_and_path(key: SigningKey) -> None:
    added = sign_request(
        method="get", url=f"{MERCHANT}/checkout-sessions/chk_123", headers={}, body=None, key=key, created=NOW
    )
    assert set(added) == {"Signature-Input", "Signature"}
    assert (
        added["Signature-Input"]
        == f'sig1=("@method" "@authority" "@path");created={NOW};keyid="platform-2026"'
    )
    verified = verify_request(
        method="GET",
        url=f"{MERCHANT}/checkout-sessions/chk_123",
        headers=added,
        body=None,
        keys=keys_of(key),
        now=NOW,
    )
    assert verified == "platform-2026"


def test_a_query_is_covered_when_present(key: SigningKey) -> None:
    url = f"{MERCHANT}/orders?status=open"
    added = sign_request(method="GET", url=url, headers={}, body=b"", key=key, created=NOW)
    assert '"@path" "@query")' in added["Signature-Input"]
    assert verify_request(method="GET", url=url, headers=added, body=b"", keys=keys_of(key), now=NOW)
    assert (
        refusal(
            {"method": "GET", "url": f"{MERCHANT}/orders?status=closed", "headers": added, "body": b""},
            keys_of(key),
        ).code
        == "signature_invalid"
    )


def test_a_signed_checkout_verifies_and_names_its_key(key: SigningKey) -> None:
    assert verify_request(keys=keys_of(key), now=NOW + 10, **signed_checkout(key)) == "platform-2026"  # type: ignore[arg-type]


def test_header_names_may_arrive_in_any_case(key: SigningKey) -> None:
    request = signed_checkout(key)
    request["headers"] = {name.lower(): value for name, value in request["headers"].items()}  # type: ignore[attr-defined]
    assert verify_request(keys=keys_of(key), now=NOW, **request) == "platform-2026"  # type: ignore[arg-type]


def test_the_default_port_does_not_change_the_authority(key: SigningKey) -> None:
    request = signed_checkout(key, url="https://MERCHANT.example.com:443/checkout-sessions")
    assert verify_request(keys=keys_of(key), now=NOW, **request) == "platform-2026"  # type: ignore[arg-type]


def test_a_p384_key_signs_with_96_byte_signatures_and_verifies() -> None:
    key = SigningKey.generate("platform-p384", curve="P-384")
    assert key.public_jwk()["alg"] == "ES384" and key.public_jwk()["crv"] == "P-384"
    request = signed_checkout(key)
    assert len(_signature_bytes(request["headers"]["Signature"])) == 96  # type: ignore[index]
    assert verify_request(keys=keys_of(key), now=NOW, **request) == "platform-p384"  # type: ignore[arg-type]


def test_a_body_without_its_content_type_cannot_be_signed(key: SigningKey) -> None:
    with pytest.raises(ValueError, match="Content-Type"):
        sign_request(method="POST", url=f"{MERCHANT}/checkout-sessions", headers={}, body=b"{}", key=key)


def test_signature_fields_given_with_the_headers_are_replaced_not_kept(key: SigningKey) -> None:
    stale = {**CHECKOUT_HEADERS, "Content-Digest": "sha-256=:AAAA:", "signature": "sig1=:AAAA:"}
    added = sign_request(
        method="POST",
        url=f"{MERCHANT}/checkout-sessions",
        headers=stale,
        body=CHECKOUT_BODY,
        key=key,
        created=NOW,
    )
    assert added["Content-Digest"] == content_digest(CHECKOUT_BODY)


# --- what a verifier refuses, with the code and status overview.md gives ------------------------


@pytest.mark.parametrize(
    ("change", "code", "status"),
    [
        ({"body": CHECKOUT_BODY.replace(b"2", b"9")}, "digest_mismatch", 400),
        ({"url": f"{MERCHANT}/checkout-sessions/chk_1/complete"}, "signature_invalid", 401),
        ({"method": "PUT"}, "signature_invalid", 401),
        ({"url": "https://other-merchant.example.com/checkout-sessions"}, "signature_invalid", 401),
    ],
    ids=["body", "path", "method", "authority"],
)
def test_a_changed_request_is_refused(
    key: SigningKey, change: dict[str, object], code: str, status: int
) -> None:
    refused = refusal(signed_checkout(key, **change), keys_of(key))
    assert (refused.code, refused.status) == (code, status)


@pytest.mark.parametrize("header", ["Idempotency-Key", "UCP-Agent", "Content-Type"])
def test_a_changed_covered_header_is_refused(key: SigningKey, header: str) -> None:
    request = signed_checkout(key)
    headers = dict(request["headers"])  # type: ignore[call-overload]
    headers[header] = headers[header] + "x" if header != "UCP-Agent" else 'profile="https://evil.example/ucp"'
    refused = refusal({**request, "headers": headers}, keys_of(key))
    assert (refused.code, refused.status) == ("signature_invalid", 401)


def test_a_body_swapped_together_with_its_digest_is_refused(key: SigningKey) -> None:
    other = b'{"checkout":{"line_items":[{"id":"prod_999","quantity":50}]}}'
    request = signed_checkout(key, body=other)
    request["headers"] = {**request["headers"], "Content-Digest": content_digest(other)}  # type: ignore[dict-item]
    assert refusal(request, keys_of(key)).code == "signature_invalid"


def test_a_header_the_signature_does_not_cover_cannot_be_added(key: SigningKey) -> None:
    """Identity binding: a UCP-Agent added after signing names a profile the signer never vouched for."""
    added = sign_request(
        method="GET", url=f"{MERCHANT}/checkout-sessions/chk_1", headers={}, body=None, key=key, created=NOW
    )
    request = {
        "method": "GET",
        "url": f"{MERCHANT}/checkout-sessions/chk_1",
        "headers": {**added, "UCP-Agent": 'profile="https://evil.example/ucp"'},
        "body": None,
    }
    refused = refusal(request, keys_of(key))
    assert refused.code == "signature_invalid" and "ucp-agent" in str(refused)


def test_an_old_signature_is_refused(key: SigningKey) -> None:
    request = signed_checkout(key)
    assert verify_request(keys=keys_of(key), now=NOW + 300, **request) == "platform-2026"  # type: ignore[arg-type]
    refused = refusal(request, keys_of(key), now=NOW + 301)
    assert refused.code == "signature_invalid" and "older" in str(refused)


def test_a_signature_from_the_future_is_refused(key: SigningKey) -> None:
    assert refusal(signed_checkout(key), keys_of(key), now=NOW - 60).code == "signature_invalid"


def test_an_unknown_key_is_key_not_found(key: SigningKey) -> None:
    stranger = SigningKey.generate("someone-else")
    refused = refusal(signed_checkout(stranger), keys_of(key))
    assert (refused.code, refused.status) == ("key_not_found", 401)


def test_a_known_kid_with_a_different_key_is_invalid(key: SigningKey) -> None:
    impostor = SigningKey.generate("platform-2026")
    assert refusal(signed_checkout(impostor), keys_of(key)).code == "signature_invalid"


@pytest.mark.parametrize(
    "jwk",
    [
        {"kid": "platform-2026", "kty": "RSA", "n": "AQAB", "e": "AQAB"},
        {"kid": "platform-2026", "kty": "OKP", "crv": "Ed25519", "x": "AAAA"},
        {"kid": "platform-2026", "kty": "EC", "crv": "P-521", "x": "AAAA", "y": "AAAA"},
    ],
    ids=["rsa", "ed25519", "p521"],
)
def test_a_key_ucp_does_not_sign_with_is_algorithm_unsupported(key: SigningKey, jwk: dict[str, str]) -> None:
    refused = refusal(signed_checkout(key), {"platform-2026": jwk})
    assert (refused.code, refused.status) == ("algorithm_unsupported", 400)


def test_an_alg_contradicting_the_key_is_algorithm_unsupported(key: SigningKey) -> None:
    mislabelled = {**key.public_jwk(), "alg": "ES384"}
    assert refusal(signed_checkout(key), {"platform-2026": mislabelled}).code == "algorithm_unsupported"
    request = signed_checkout(key)
    headers = dict(request["headers"])  # type: ignore[call-overload]
    headers["Signature-Input"] = headers["Signature-Input"] + ';alg="rsa-pss-sha512"'
    refused = refusal({**request, "headers": headers}, keys_of(key))
    assert (refused.code, refused.status) == ("algorithm_unsupported", 400)


@pytest.mark.parametrize("dropped", [("Signature",), ("Signature-Input",), ("Signature", "Signature-Input")])
def test_a_request_without_its_signature_is_signature_missing(
    key: SigningKey, dropped: tuple[str, ...]
) -> None:
    request = signed_checkout(key)
    request["headers"] = {k: v for k, v in request["headers"].items() if k not in dropped}  # type: ignore[attr-defined]
    refused = refusal(request, keys_of(key))
    assert (refused.code, refused.status) == ("signature_missing", 401)
    assert refused.body() == {"code": "signature_missing", "content": str(refused)}


def test_a_body_without_content_digest_is_refused(key: SigningKey) -> None:
    request = signed_checkout(key)
    request["headers"] = {k: v for k, v in request["headers"].items() if k != "Content-Digest"}  # type: ignore[attr-defined]
    assert refusal(request, keys_of(key)).code == "signature_missing"


def test_garbled_signature_fields_are_invalid(key: SigningKey) -> None:
    request = signed_checkout(key)
    request["headers"] = {**request["headers"], "Signature": "sig1=not a byte sequence"}  # type: ignore[dict-item]
    assert refusal(request, keys_of(key)).code == "signature_invalid"


def test_a_second_signature_added_by_an_intermediary_does_not_hide_ours(key: SigningKey) -> None:
    request = signed_checkout(key)
    headers = dict(request["headers"])  # type: ignore[call-overload]
    proxy = base64.b64encode(b"\0" * 64).decode()
    headers["Signature-Input"] = (
        f'proxy=("@method");created={NOW};keyid="proxy-key", ' + headers["Signature-Input"]
    )
    headers["Signature"] = f"proxy=:{proxy}:, " + headers["Signature"]
    assert verify_request(keys=keys_of(key), now=NOW, **{**request, "headers": headers}) == "platform-2026"  # type: ignore[arg-type]


def test_a_signing_key_never_shows_its_private_half() -> None:
    key = SigningKey.generate("k-private")
    private = key.to_secret()["d"]
    assert "d" not in key.public_jwk()
    assert private not in json.dumps(key.public_jwk()) and private not in repr(key)


def test_a_private_jwk_that_does_not_match_its_public_half_is_refused() -> None:
    other = SigningKey.generate("k-other").to_secret()
    with pytest.raises(ValueError, match="does not match"):
        SigningKey.from_secret({**RFC_P256_JWK, "d": other["d"]})
