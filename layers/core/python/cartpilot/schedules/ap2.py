"""A schedule's mandate exported as an AP2 open mandate: an SD-JWT issued with the ``sd-jwt`` library.

The token's payload follows AP2's open mandates: ``delegate_payload`` holds one selectively
disclosable open payment mandate (``vct`` ``mandate.payment.open.1``: amount range, budget,
recurrence, execution date, allowed payees) and, when the mandate names merchants or categories, one
open checkout mandate (``mandate.checkout.open.1``: allowed merchants, and the categories as the
``com.cartpilot.allowed_categories`` constraint, CartPilot's narrowing of AP2 line items to product
categories). Each allowed merchant and each category is a disclosure of its own, so a holder can show
a merchant that it may buy from without showing the rest of the list. Amounts are integer minor units
with their currency, as AP2's ``payment_amount`` carries them.

Signed with the brand's plan-signing key (KMS, ECDSA P-256 = JWS ``ES256``), the key that signs plan
snapshots and the mandate at creation: the private half never leaves KMS, and anyone verifies with the
public keys ``GET /audit/keys`` publishes, no secret shared. The library signs with a local JWK, so
the issuer below keeps the library's payload and disclosure building and only replaces the signing
step with the KMS port (converting its DER signature to JWS's fixed-size ``r || s``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key
from jwcrypto.jwk import JWK, JWKSet
from jwcrypto.jws import JWS
from sd_jwt.common import SDObj
from sd_jwt.issuer import SDJWTIssuer
from sd_jwt.verifier import SDJWTVerifier

from cartpilot.audit.snapshots import PlanSigner
from cartpilot.brands.config import BrandConfig
from cartpilot.kernel.money import Money
from cartpilot.schedules.mandate import ExecutionWindow, Mandate, SignedMandate, mandate_hash

OPEN_PAYMENT_MANDATE = "mandate.payment.open.1"
OPEN_CHECKOUT_MANDATE = "mandate.checkout.open.1"
CATEGORIES_CONSTRAINT = "com.cartpilot.allowed_categories"
MEDIA_TYPE = "application/sd-jwt"
# The header's type: an SD-JWT-based verifiable credential (SD-JWT VC), the form AP2's mandates take as
# verifiable digital credentials; not the library's default, which is its examples' placeholder.
HEADER_TYPE = "dc+sd-jwt"
_ES256_COORDINATE_BYTES = 32


class MandateTokenInvalid(ValueError):
    """The token does not verify against the published keys, or is not a CartPilot open mandate."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class _KmsSDJWTIssuer(SDJWTIssuer):  # type: ignore[misc]  # sd-jwt ships no type hints
    """The library's issuer, signing through the plan-signing port instead of a local private key."""

    def __init__(self, user_claims: dict[str, Any], signer: PlanSigner) -> None:
        self._plan_signer = signer
        super().__init__(user_claims, issuer_key=None, sign_alg="ES256")

    def _create_signed_jws(self) -> None:
        # No ``kid`` in the header: the key is named by KMS only once it has signed (the alias may have
        # moved), and the header is part of what is signed. Verifiers try the published keys.
        header = {"alg": "ES256", "typ": HEADER_TYPE}
        payload = json.dumps(self.sd_jwt_payload)
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(payload.encode())}"
        _kid, der = self._plan_signer.sign(signing_input.encode("ascii"))
        r, s = decode_dss_signature(der)
        raw = r.to_bytes(_ES256_COORDINATE_BYTES, "big") + s.to_bytes(_ES256_COORDINATE_BYTES, "big")
        self.serialized_sd_jwt = f"{signing_input}.{_b64url(raw)}"
        self.sd_jwt = JWS()
        self.sd_jwt.deserialize(self.serialized_sd_jwt)


def _amount(money: Money) -> dict[str, Any]:
    return {"currency": money.currency, "max": money.amount_minor}


def _execution_date(window: ExecutionWindow) -> dict[str, Any]:
    constraint: dict[str, Any] = {"type": "payment.execution_date"}
    if window.notBefore is not None:
        constraint["not_before"] = window.notBefore.isoformat()
    if window.notAfter is not None:
        constraint["not_after"] = window.notAfter.isoformat()
    return constraint


def open_mandate_claims(
    signed: SignedMandate, brand: BrandConfig, *, recurrence: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The claims of the token, with ``SDObj`` marking what is disclosed on its own."""
    mandate = signed.mandate
    payment_constraints: list[dict[str, Any]] = [
        {"type": "payment.amount_range", "min": 0, **_amount(mandate.maxPerOccurrence)},
        {"type": "payment.budget", **_amount(mandate.maxTotal)},
    ]
    if recurrence is not None:
        payment_constraints.append({"type": "payment.agent_recurrence", **recurrence})
    if mandate.executionWindow is not None:
        payment_constraints.append(_execution_date(mandate.executionWindow))
    merchants = [brand.merchant(merchant_id) for merchant_id in mandate.merchants or []]
    if merchants:
        payment_constraints.append(
            {
                "type": "payment.allowed_payees",
                "allowed": [SDObj({"id": merchant.id, "website": merchant.url}) for merchant in merchants],
            }
        )
    delegates: list[Any] = [SDObj({"vct": OPEN_PAYMENT_MANDATE, "constraints": payment_constraints})]
    checkout_constraints: list[dict[str, Any]] = []
    if merchants:
        checkout_constraints.append(
            {
                "type": "checkout.allowed_merchants",
                "allowed": [SDObj({"id": merchant.id, "website": merchant.url}) for merchant in merchants],
            }
        )
    if mandate.categories:
        checkout_constraints.append(
            {"type": CATEGORIES_CONSTRAINT, "allowed": [SDObj(category) for category in mandate.categories]}
        )
    if checkout_constraints:
        delegates.append(SDObj({"vct": OPEN_CHECKOUT_MANDATE, "constraints": checkout_constraints}))
    claims: dict[str, Any] = {
        "iss": f"cartpilot:{brand.name}",
        "iat": int(signed.signedAt.timestamp()),
        "delegate_payload": delegates,
        # Binds the token to the mandate the schedule signed at creation (and its audit record).
        "mandate_ref": {"schedule_id": signed.scheduleId, "mandate_hash": mandate_hash(mandate)},
    }
    if mandate.description is not None:
        claims["natural_language_description"] = mandate.description
    window = mandate.executionWindow
    if window is not None and window.notAfter is not None:
        claims["exp"] = int(window.notAfter.timestamp())
    return claims


def export_open_mandate(
    signed: SignedMandate,
    brand: BrandConfig,
    signer: PlanSigner,
    *,
    recurrence: Mapping[str, Any] | None = None,
) -> str:
    """The mandate as an SD-JWT in compact serialization, every disclosure attached."""
    issuer = _KmsSDJWTIssuer(open_mandate_claims(signed, brand, recurrence=recurrence), signer)
    issuance: str = issuer.sd_jwt_issuance
    return issuance


def verify_open_mandate(token: str, public_keys: Mapping[str, bytes]) -> dict[str, Any]:
    """The token's claims with its disclosures applied, once a published key verifies its signature."""

    key_set = JWKSet()
    for der in public_keys.values():
        key = load_der_public_key(der)
        if isinstance(key, ec.EllipticCurvePublicKey):
            key_set.add(JWK.from_pyca(key))

    def issuer_key(_issuer: str | None, _header: Mapping[str, Any]) -> JWKSet:
        return key_set

    try:
        verified = SDJWTVerifier(token, issuer_key)
        payload: dict[str, Any] = verified.get_verified_payload()
    except Exception as error:  # the library raises bare exceptions of jwcrypto and its own
        raise MandateTokenInvalid(f"the token does not verify: {type(error).__name__}") from error
    return payload


def mandate_from_claims(claims: Mapping[str, Any]) -> Mandate:
    """Reads a verified token's disclosed claims back into a ``Mandate`` (what a verifier relies on)."""
    constraints: dict[str, dict[str, Any]] = {}
    for delegate in claims.get("delegate_payload", []):
        for constraint in delegate.get("constraints", []):
            constraints[constraint["type"]] = constraint
    amount_range = constraints["payment.amount_range"]
    budget = constraints["payment.budget"]
    fields: dict[str, Any] = {
        "maxPerOccurrence": {"amount_minor": amount_range["max"], "currency": amount_range["currency"]},
        "maxTotal": {"amount_minor": budget["max"], "currency": budget["currency"]},
    }
    payees = constraints.get("checkout.allowed_merchants") or constraints.get("payment.allowed_payees")
    if payees is not None:
        fields["merchants"] = [payee["id"] for payee in payees["allowed"]]
    categories = constraints.get(CATEGORIES_CONSTRAINT)
    if categories is not None:
        fields["categories"] = list(categories["allowed"])
    window = constraints.get("payment.execution_date")
    if window is not None:
        fields["executionWindow"] = {
            "notBefore": window.get("not_before"),
            "notAfter": window.get("not_after"),
        }
    if "natural_language_description" in claims:
        fields["description"] = claims["natural_language_description"]
    return Mandate.model_validate(fields)


def recurrence_of(frequency: str | None, max_occurrences: int | None) -> dict[str, Any] | None:
    """AP2's ``payment.agent_recurrence`` from a schedule's RRULE frequency and occurrence count."""
    if frequency is None:
        return None
    recurrence: dict[str, Any] = {"frequency": frequency}
    if max_occurrences is not None:
        recurrence["max_occurrences"] = max_occurrences
    return recurrence
