"""UCP message signatures: RFC 9421 HTTP Message Signatures over RFC 9530 Content-Digest.

UCP 2026-04-08 (signatures.md) profiles RFC 9421 for REST: ECDSA keys published as JWKs in the
signer's profile (``signing_keys``), the algorithm taken from the key's curve (P-256 = ES256, which
every verifier must accept; P-384 = ES384, optional) and never sent as ``alg``, fixed-width ``r||s``
signature bytes, the label ``sig1``, and these covered components, in this order:

requests   ``@method @authority @path`` [``@query``] [``ucp-agent``] [``idempotency-key``]
           [``content-digest content-type``]
responses  ``@status`` [``content-digest content-type``]

each bracketed one when the message has it (a query, the header, a body). The signature base,
the signature fields and the ECDSA encoding come from the ``http-message-signatures`` library;
this module adds what UCP decides on top: which components must be covered, which keys and
curves are acceptable, the error codes a verifier answers with, and a clock that tests can set.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey, EllipticCurvePublicKey
from http_message_signatures import (
    ContentDigest,
    HTTPMessageSignaturesException,
    HTTPMessageSigner,
    HTTPMessageVerifier,
    InvalidSignature,
    MappingKeyResolver,
)
from http_message_signatures.algorithms import ECDSA_P256_SHA256, ECDSA_P384_SHA384, HTTPSignatureAlgorithm
from http_sfv import Dictionary, InnerList, Item

# signatures.md, "REST Request Signing": every example labels the signature sig1.
SIGNATURE_LABEL: Final = "sig1"
# signatures.md, "REST Binding": Content-Digest "MUST use sha-256" (raw body bytes, no canonicalisation).
DIGEST_ALGORITHM: Final = "sha-256"
# Clocks disagree a little; a signature created this far in the future still verifies.
CLOCK_SKEW_SECONDS: Final = 5

SignatureErrorCode = Literal[
    "signature_missing", "signature_invalid", "key_not_found", "digest_mismatch", "algorithm_unsupported"
]
# overview.md, "Signature Errors": the REST status of each code.
SIGNATURE_ERROR_STATUS: Final[Mapping[SignatureErrorCode, int]] = {
    "signature_missing": 401,
    "signature_invalid": 401,
    "key_not_found": 401,
    "digest_mismatch": 400,
    "algorithm_unsupported": 400,
}


class SignatureError(Exception):
    """A message that cannot be trusted, with the UCP error code and HTTP status to answer with."""

    def __init__(self, code: SignatureErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: SignatureErrorCode = code
        self.status = SIGNATURE_ERROR_STATUS[code]
        self.message = message

    def body(self) -> dict[str, str]:
        """signatures.md, "REST Error Response": ``{"code", "content"}``."""
        return {"code": self.code, "content": self.message}


@dataclass(frozen=True)
class _Curve:
    crv: str
    jwa: str  # the JWK ``alg``
    coordinate_bytes: int
    ec_curve: type[ec.EllipticCurve]
    algorithm: type[HTTPSignatureAlgorithm]


# signatures.md, "Signature Algorithms": the algorithm follows from the key's curve.
_CURVES: Final[Mapping[str, _Curve]] = {
    "P-256": _Curve("P-256", "ES256", 32, ec.SECP256R1, ECDSA_P256_SHA256),
    "P-384": _Curve("P-384", "ES384", 48, ec.SECP384R1, ECDSA_P384_SHA384),
}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _from_b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _curve_of(key: EllipticCurvePrivateKey | EllipticCurvePublicKey) -> _Curve:
    for curve in _CURVES.values():
        if isinstance(key.curve, curve.ec_curve):
            return curve
    raise ValueError(f"UCP signs with P-256 or P-384 keys, not {key.curve.name}")


@dataclass(frozen=True)
class SigningKey:
    """One of our ECDSA keys and the id (``kid``) it is published under."""

    kid: str
    private_key: EllipticCurvePrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        if not self.kid:
            raise ValueError("a signing key needs a kid")
        _curve_of(self.private_key)

    @property
    def algorithm(self) -> str:
        """The JWA name: ES256 for P-256, ES384 for P-384."""
        return _curve_of(self.private_key).jwa

    def public_jwk(self) -> dict[str, str]:
        """The public half as signatures.md's "Key Format (JWK)" shows it."""
        curve = _curve_of(self.private_key)
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kid": self.kid,
            "kty": "EC",
            "crv": curve.crv,
            "x": _b64url(numbers.x.to_bytes(curve.coordinate_bytes, "big")),
            "y": _b64url(numbers.y.to_bytes(curve.coordinate_bytes, "big")),
            "use": "sig",
            "alg": curve.jwa,
        }

    def to_secret(self) -> dict[str, str]:
        """The private JWK (RFC 7518 section 6.2.2: the public members plus ``d``), for a secret store."""
        curve = _curve_of(self.private_key)
        private_value = self.private_key.private_numbers().private_value
        return {**self.public_jwk(), "d": _b64url(private_value.to_bytes(curve.coordinate_bytes, "big"))}

    @classmethod
    def from_secret(cls, jwk: Mapping[str, Any]) -> SigningKey:
        """Reads what ``to_secret`` wrote; refuses a JWK whose ``d`` does not match its ``x``/``y``."""
        public_key = public_key_from_jwk(jwk)
        encoded = jwk.get("d")
        if not isinstance(encoded, str) or not encoded:
            raise ValueError(f"the JWK of key {jwk.get('kid')!r} has no private part 'd'")
        private_key = ec.derive_private_key(int.from_bytes(_from_b64url(encoded), "big"), public_key.curve)
        if private_key.public_key().public_numbers() != public_key.public_numbers():
            raise ValueError(f"the private part of key {jwk.get('kid')!r} does not match its public part")
        return cls(kid=str(jwk["kid"]), private_key=private_key)

    @classmethod
    def generate(cls, kid: str, curve: Literal["P-256", "P-384"] = "P-256") -> SigningKey:
        """A fresh key; P-256 unless told otherwise (signatures.md: signers SHOULD use P-256)."""
        return cls(kid=kid, private_key=ec.generate_private_key(_CURVES[curve].ec_curve()))


def public_key_from_jwk(jwk: Mapping[str, Any]) -> EllipticCurvePublicKey:
    """The EC public key of a JWK from a ``signing_keys`` list.

    Raises ``SignatureError("algorithm_unsupported")`` for a key UCP does not sign with (RSA, Ed25519,
    P-521, or an ``alg`` that contradicts the curve) and ``ValueError`` for a malformed one.
    """
    curve = _jwk_curve(jwk)
    try:
        x = _from_b64url(str(jwk["x"]))
        y = _from_b64url(str(jwk["y"]))
    except (KeyError, ValueError) as exc:
        raise ValueError(f"key {jwk.get('kid')!r}: x and y must be base64url") from exc
    if len(x) != curve.coordinate_bytes or len(y) != curve.coordinate_bytes:
        raise ValueError(f"key {jwk.get('kid')!r}: x and y must be {curve.coordinate_bytes} bytes each")
    numbers = ec.EllipticCurvePublicNumbers(
        int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve.ec_curve()
    )
    return numbers.public_key()  # raises ValueError for a point off the curve


def _jwk_curve(jwk: Mapping[str, Any]) -> _Curve:
    kid = jwk.get("kid")
    if jwk.get("kty") != "EC" or jwk.get("crv") not in _CURVES:
        raise SignatureError(
            "algorithm_unsupported",
            f"key {kid!r} is {jwk.get('kty')}/{jwk.get('crv')}; UCP signatures use EC keys on P-256 or P-384",
        )
    curve = _CURVES[str(jwk["crv"])]
    if "alg" in jwk and jwk["alg"] != curve.jwa:
        raise SignatureError(
            "algorithm_unsupported", f"key {kid!r} says alg {jwk['alg']} on curve {curve.crv}"
        )
    return curve


def content_digest(body: bytes) -> str:
    """The RFC 9530 ``Content-Digest`` value of ``body``, SHA-256 over the raw bytes."""
    return str(ContentDigest.create(body))


@dataclass
class _Request:
    """The message shape the library reads: method, absolute URL, header fields."""

    method: str
    url: str
    headers: dict[str, str]


@dataclass
class _Response:
    status_code: int
    headers: dict[str, str]


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def covered_request_components(
    method: str, url: str, headers: Mapping[str, str], body: bytes | None
) -> list[str]:
    """What a request signature covers, in signatures.md's order ("REST Request Signing")."""
    fields = _lower(headers)
    components = ["@method", "@authority", "@path"]
    if urlsplit(url).query:
        components.append("@query")
    if "ucp-agent" in fields:
        components.append("ucp-agent")
    if "idempotency-key" in fields:
        components.append("idempotency-key")
    if body:
        components += ["content-digest", "content-type"]
    return components


def covered_response_components(body: bytes | None) -> list[str]:
    """What a response signature covers ("REST Response Signing")."""
    return ["@status", "content-digest", "content-type"] if body else ["@status"]


def _signer(key: SigningKey) -> HTTPMessageSigner:
    return HTTPMessageSigner(
        signature_algorithm=_curve_of(key.private_key).algorithm,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={key.kid: key.private_key}),
    )


def _without_signature_fields(headers: Mapping[str, str]) -> dict[str, str]:
    signature_fields = {"signature", "signature-input", "content-digest"}
    return {name: value for name, value in headers.items() if name.lower() not in signature_fields}


def _sign(message: _Request | _Response, components: list[str], key: SigningKey, created: int | None) -> None:
    moment = datetime.datetime.now(datetime.UTC) if created is None else _instant(created)
    try:
        _signer(key).sign(
            message,
            key_id=key.kid,
            created=moment,
            label=SIGNATURE_LABEL,
            # signatures.md: "alg is NOT included in Signature-Input parameters".
            include_alg=False,
            covered_component_ids=components,
            use_existing_digest="content-digest" in components,
        )
    except HTTPMessageSignaturesException as exc:
        raise ValueError(f"cannot sign this message: {exc}") from exc


def _instant(epoch_seconds: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(epoch_seconds, datetime.UTC)


def _added(message: _Request | _Response, has_body: bool) -> dict[str, str]:
    names = (
        ("Content-Digest", "Signature-Input", "Signature") if has_body else ("Signature-Input", "Signature")
    )
    return {name: message.headers[name] for name in names}


def sign_request(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
    key: SigningKey,
    created: int | None = None,
) -> dict[str, str]:
    """The fields that sign this request: ``Content-Digest`` (when there is a body), ``Signature-Input``
    and ``Signature``; add them to ``headers`` as they are and send ``body`` byte for byte.

    ``headers`` are the fields the request will carry (names in any case); ``url`` is the absolute,
    encoded URL it goes to. A body needs a ``Content-Type``. ``created`` is Unix time (default: now).
    """
    method = method.upper()
    has_body = bool(body)
    fields = _without_signature_fields(headers)
    if has_body and "content-type" not in _lower(fields):
        raise ValueError("a signed request with a body needs its Content-Type (signatures.md)")
    if has_body:
        assert body is not None
        fields["Content-Digest"] = content_digest(body)
    message = _Request(method=method, url=url, headers=fields)
    _sign(message, covered_request_components(method, url, fields, body), key, created)
    return _added(message, has_body)


def sign_response(
    *,
    status: int,
    headers: Mapping[str, str],
    body: bytes | None,
    key: SigningKey,
    created: int | None = None,
) -> dict[str, str]:
    """The fields that sign a response (``@status``, and the body through its digest and type)."""
    has_body = bool(body)
    fields = _without_signature_fields(headers)
    if has_body and "content-type" not in _lower(fields):
        raise ValueError("a signed response with a body needs its Content-Type (signatures.md)")
    if has_body:
        assert body is not None
        fields["Content-Digest"] = content_digest(body)
    message = _Response(status_code=status, headers=fields)
    _sign(message, covered_response_components(body), key, created)
    return _added(message, has_body)


class _UcpVerifier(HTTPMessageVerifier):
    # The library checks ``created`` against the machine's clock and insists on it; UCP makes
    # ``created`` optional (signatures.md, "Replay Protection") and our callers pass their own
    # clock, so _check_times does this before the library is asked.
    require_created = False

    def validate_created_and_expires(self, sig_input: Any, max_age: Any = None) -> None:
        return None


@dataclass(frozen=True)
class _Selected:
    label: str
    components: tuple[str, ...]
    params: Mapping[str, Any]
    fields: dict[str, str]  # the message's fields with only the selected signature left in


def _select_signature(headers: Mapping[str, str], keys: Mapping[str, Mapping[str, Any]]) -> _Selected:
    fields = _lower(headers)
    if "signature-input" not in fields or "signature" not in fields:
        raise SignatureError("signature_missing", "the message carries no Signature-Input and Signature")
    inputs, signatures = Dictionary(), Dictionary()
    try:
        inputs.parse(fields["signature-input"].encode("ascii"))
        signatures.parse(fields["signature"].encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise SignatureError("signature_invalid", f"malformed signature fields: {exc}") from None
    labels = [label for label in inputs if label in signatures]
    if not labels:
        raise SignatureError("signature_missing", "Signature-Input and Signature name no common label")
    # An intermediary may add its own signature (RFC 9421 section 4.3): take UCP's sig1, else the
    # one made with a key we know, else the first.
    label = next(
        (candidate for candidate in labels if candidate == SIGNATURE_LABEL),
        next((c for c in labels if _keyid(inputs[c]) in keys), labels[0]),
    )
    signature_input = inputs[label]
    if not isinstance(signature_input, InnerList) or not isinstance(signatures[label], Item):
        raise SignatureError(
            "signature_invalid", f"signature {label} is not an inner list and a byte sequence"
        )
    components = tuple(str(item.value) for item in signature_input)
    only_input, only_signature = Dictionary(), Dictionary()
    only_input[label] = signature_input
    only_signature[label] = signatures[label]
    kept = {name: value for name, value in fields.items() if name not in {"signature-input", "signature"}}
    kept |= {"signature-input": str(only_input), "signature": str(only_signature)}
    return _Selected(label=label, components=components, params=dict(signature_input.params), fields=kept)


def _keyid(member: object) -> str | None:
    params = getattr(member, "params", {})
    keyid = params.get("keyid") if isinstance(params, Mapping) else None
    return keyid if isinstance(keyid, str) else None


def _check_times(params: Mapping[str, Any], *, max_age_seconds: int | None, now: int) -> None:
    created = params.get("created")
    if created is not None:
        if not isinstance(created, int) or isinstance(created, bool):
            raise SignatureError("signature_invalid", "created must be an integer")
        if created > now + CLOCK_SKEW_SECONDS:
            raise SignatureError("signature_invalid", "the signature was created in the future")
        if max_age_seconds is not None and now - created > max_age_seconds:
            raise SignatureError(
                "signature_invalid", f"the signature is older than {max_age_seconds} seconds"
            )
    expires = params.get("expires")
    if expires is not None and (not isinstance(expires, int) or expires < now - CLOCK_SKEW_SECONDS):
        raise SignatureError("signature_invalid", "the signature has expired")


def _check_digest(fields: Mapping[str, str], body: bytes | None) -> None:
    """signatures.md, verification step 3: the body must hash to the Content-Digest it came with."""
    value = fields.get("content-digest")
    if value is None:
        raise SignatureError("signature_missing", "a message with a body must carry Content-Digest")
    # UCP signers use sha-256; RFC 9530's sha-512 is accepted too, as the library verifies both.
    try:
        ContentDigest.verify(value, body or b"")
    except InvalidSignature as exc:
        raise SignatureError(
            "digest_mismatch", f"the body does not match its Content-Digest: {exc}"
        ) from None


def _verify(
    message: _Request | _Response,
    *,
    body: bytes | None,
    required: list[str],
    keys: Mapping[str, Mapping[str, Any]],
    max_age_seconds: int | None,
    now: int | None,
) -> str:
    selected = _select_signature(message.headers, keys)
    keyid = selected.params.get("keyid")
    if not isinstance(keyid, str):
        raise SignatureError("signature_invalid", f"signature {selected.label} names no keyid")
    jwk = keys.get(keyid)
    if jwk is None:
        raise SignatureError("key_not_found", f"key {keyid} is not among the signer's signing_keys")
    curve = _jwk_curve(jwk)
    declared = selected.params.get("alg")
    if declared is not None and declared != curve.algorithm.algorithm_id:
        raise SignatureError("algorithm_unsupported", f"algorithm {declared} does not fit key {keyid}")
    try:
        public_key = public_key_from_jwk(jwk)
    except ValueError as exc:
        raise SignatureError("signature_invalid", f"key {keyid} is unusable: {exc}") from None

    missing = [component for component in required if component not in selected.components]
    if missing:
        raise SignatureError("signature_invalid", f"the signature does not cover {', '.join(missing)}")
    if body or "content-digest" in selected.components:
        _check_digest(selected.fields, body)
    _check_times(selected.params, max_age_seconds=max_age_seconds, now=_now() if now is None else now)

    message.headers = selected.fields
    verifier = _UcpVerifier(
        signature_algorithm=curve.algorithm,
        key_resolver=MappingKeyResolver(public_keys={keyid: public_key}, private_keys={}),
    )
    try:
        verifier.verify(message, max_age=None)
    except (InvalidSignature, HTTPMessageSignaturesException):
        # The library's reasons can quote header values; the code and the key id say enough.
        raise SignatureError(
            "signature_invalid", f"Signature verification failed for key kid={keyid}"
        ) from None
    return keyid


def _now() -> int:
    return int(datetime.datetime.now(datetime.UTC).timestamp())


def verify_request(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
    keys: Mapping[str, Mapping[str, str]],
    max_age_seconds: int = 300,
    now: int | None = None,
) -> str:
    """Checks a signed request as signatures.md's "REST Request Verification" says; returns the kid.

    ``keys`` maps kid to public JWK (the signer's ``signing_keys``). Beyond a valid signature, the
    signature must cover what UCP requires of this request (its query, ``UCP-Agent``,
    ``Idempotency-Key``, and body digest and type when present), the body must match the digest, and
    a signature that states ``created`` must be at most ``max_age_seconds`` old. Raises
    ``SignatureError`` with the code and status to answer with.
    """
    method = method.upper()
    message = _Request(method=method, url=url, headers=dict(headers))
    required = covered_request_components(method, url, headers, body)
    return _verify(message, body=body, required=required, keys=keys, max_age_seconds=max_age_seconds, now=now)


def verify_response(
    *,
    status: int,
    headers: Mapping[str, str],
    body: bytes | None,
    keys: Mapping[str, Mapping[str, str]],
    max_age_seconds: int | None = 300,
    now: int | None = None,
) -> str:
    """Checks a signed response ("REST Response Verification"); returns the kid."""
    message = _Response(status_code=status, headers=dict(headers))
    required = covered_response_components(body)
    return _verify(message, body=body, required=required, keys=keys, max_age_seconds=max_age_seconds, now=now)
