"""EC keys as JSON Web Keys (RFC 7517), the form UCP profiles publish in ``signing_keys``."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from cartpilot_local.merchant.protocol import JsonObject

_CURVES: dict[str, ec.EllipticCurve] = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}
_SIZES = {"P-256": 32, "P-384": 48}


class UnusableKey(ValueError):
    """A published key that is not an EC public key on a curve UCP allows."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_key_from_jwk(jwk: JsonObject) -> ec.EllipticCurvePublicKey:
    """The public key a JWK describes; raises UnusableKey for anything else."""
    curve_name = jwk.get("crv")
    if jwk.get("kty") != "EC" or curve_name not in _CURVES:
        raise UnusableKey(f"key {jwk.get('kid')!r} is not an EC P-256 or P-384 key")
    try:
        x = int.from_bytes(_b64url_decode(str(jwk["x"])), "big")
        y = int.from_bytes(_b64url_decode(str(jwk["y"])), "big")
        return ec.EllipticCurvePublicNumbers(x, y, _CURVES[str(curve_name)]).public_key()
    except (KeyError, ValueError) as exc:
        raise UnusableKey(f"key {jwk.get('kid')!r} has no valid point on {curve_name}") from exc


def jwk_from_public_key(key: ec.EllipticCurvePublicKey, kid: str) -> JsonObject:
    curve = "P-256" if isinstance(key.curve, ec.SECP256R1) else "P-384"
    numbers = key.public_numbers()
    size = _SIZES[curve]
    return {
        "kid": kid,
        "kty": "EC",
        "crv": curve,
        "x": _b64url(numbers.x.to_bytes(size, "big")),
        "y": _b64url(numbers.y.to_bytes(size, "big")),
        "use": "sig",
        "alg": "ES256" if curve == "P-256" else "ES384",
    }


@dataclass(frozen=True)
class SigningKey:
    """A private key and the id it is published under."""

    kid: str
    private_key: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls, prefix: str) -> SigningKey:
        return cls(f"{prefix}-{secrets.token_hex(4)}", ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_jwk(self) -> JsonObject:
        return jwk_from_public_key(self.private_key.public_key(), self.kid)
