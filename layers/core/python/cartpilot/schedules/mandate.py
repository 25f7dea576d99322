"""A standing mandate: what a shopper lets a schedule buy without asking again.

``POST /goals`` with a ``schedule`` may carry a top-level ``mandate``; every occurrence the
schedule fires is checked against it before it can run without the shopper (``schedules.mandate_check``).
The vocabulary is AP2's open mandate constraints (``mandate.payment.open.1`` and the open checkout
mandate), field by field:

==========================  ==============================================================
CartPilot ``Mandate``       AP2 open mandate constraint
==========================  ==============================================================
``maxPerOccurrence``        ``payment.amount_range`` ``max`` + ``currency`` (``min`` is 0)
``maxTotal``                ``payment.budget`` ``max`` + ``currency``
(the schedule's rrule)      ``payment.agent_recurrence`` ``frequency`` / ``max_occurrences``
``merchants``               ``payment.allowed_payees`` ``allowed[].id``
                            (IntentMandate ``merchants``)
``categories``              ``checkout.line_items`` item constraints (IntentMandate ``skus``
                            narrowed to product categories: a schedule buys "coffee", not one SKU)
``executionWindow``         ``payment.execution_date`` ``not_before`` / ``not_after``
                            (IntentMandate ``intent_expiry`` is ``notAfter``)
``description``             IntentMandate ``natural_language_description``
==========================  ==============================================================

Amounts stay integer minor units with their currency (``kernel.money``); AP2 carries the same
integer minor units in its examples. The brand-dependent rules (the brand's currency or one it has a
rate for, merchants among the brand's) need the brand, so they live in :func:`check_mandate_for_brand`,
which the schedule's intake calls after parsing.

Signed at creation: :func:`sign_mandate` signs the mandate bound to its schedule, user and client with
the brand's plan-signing key (KMS, ECDSA P-256, the key plan snapshots use: ``audit.snapshots``), and
the schedule keeps the :class:`SignedMandate`. Before an occurrence runs, :func:`verify_signed_mandate`
checks it against the published public keys only, so a mandate rewritten in storage (a larger budget,
another merchant) no longer verifies and the occurrence cannot run on it.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from cartpilot.audit.snapshots import (
    PLAN_SIGNATURE_ALGORITHM,
    PlanSigner,
    decode_signature,
    encode_signature,
)
from cartpilot.kernel.money import Money

if TYPE_CHECKING:
    # Only verification needs cryptography; taking a schedule in does not.
    from cartpilot.audit.public_keys import PlanSignatureVerifier
    from cartpilot.brands.config import BrandConfig

# As for a goal's budget (goals.model): above any real order, far below storage limits. Not imported,
# so goals.model can itself parse a mandate without an import cycle.
MAX_BUDGET_MINOR = 10**14
# Bounded so a mandate stays a handful of rules a shopper can read on the approval page.
MAX_MANDATE_MERCHANTS = 10
MAX_MANDATE_CATEGORIES = 20

_MERCHANT_ID = r"^[a-z0-9][a-z0-9\-]{1,60}$"


class MandateNotAllowed(ValueError):
    """A mandate the brand cannot honour (another currency without a rate, a merchant it does not use)."""


class ExecutionWindow(BaseModel):
    """When occurrences may execute (AP2 ``payment.execution_date``); either end may be open."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    notBefore: AwareDatetime | None = None
    notAfter: AwareDatetime | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ExecutionWindow:
        if self.notBefore is None and self.notAfter is None:
            raise ValueError("an execution window needs notBefore, notAfter or both")
        if self.notBefore is not None and self.notAfter is not None and self.notAfter <= self.notBefore:
            raise ValueError("executionWindow.notAfter must be after notBefore")
        return self

    def contains(self, moment: datetime) -> bool:
        if self.notBefore is not None and moment < self.notBefore:
            return False
        return not (self.notAfter is not None and moment > self.notAfter)


class Mandate(BaseModel):
    """The body's ``mandate``: at most ``maxPerOccurrence`` an occurrence, ``maxTotal`` over the schedule."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    maxPerOccurrence: Money
    maxTotal: Money
    merchants: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_MANDATE_MERCHANTS,
        description="Merchant ids (brand.yaml `merchants`) occurrences may buy from; absent: any of the brand's",
    )
    categories: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_MANDATE_CATEGORIES,
        description="Product category words every item must fall in (matched like the brand's restricted "
        "categories: any level of the item's category path, plurals folded); absent: any category",
    )
    executionWindow: ExecutionWindow | None = None
    description: str | None = Field(default=None, max_length=500)

    @field_validator("merchants")
    @classmethod
    def _merchant_ids(cls, merchants: list[str] | None) -> list[str] | None:
        if merchants is None:
            return None
        for merchant in merchants:
            if not re.fullmatch(_MERCHANT_ID, merchant):
                raise ValueError(f"{merchant!r} is not a merchant id")
        if len(set(merchants)) != len(merchants):
            raise ValueError("merchants lists a merchant twice")
        return merchants

    @field_validator("categories")
    @classmethod
    def _category_words(cls, categories: list[str] | None) -> list[str] | None:
        if categories is None:
            return None
        cleaned = [category.strip().lower() for category in categories]
        for category in cleaned:
            if not 1 <= len(category) <= 60 or not any(char.isalnum() for char in category):
                raise ValueError("each category is 1 to 60 characters with at least one letter or digit")
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("categories lists a category twice")
        return cleaned

    @model_validator(mode="after")
    def _coherent_amounts(self) -> Mandate:
        if self.maxPerOccurrence.currency != self.maxTotal.currency:
            raise ValueError("maxPerOccurrence and maxTotal must be in one currency")
        for name, amount in (("maxPerOccurrence", self.maxPerOccurrence), ("maxTotal", self.maxTotal)):
            if not 0 < amount.amount_minor <= MAX_BUDGET_MINOR:
                raise ValueError(f"{name} must be above 0 and at most {MAX_BUDGET_MINOR} minor units")
        if self.maxPerOccurrence.exceeds(self.maxTotal):
            raise ValueError("maxPerOccurrence cannot be more than maxTotal")
        return self

    @property
    def currency(self) -> str:
        return self.maxTotal.currency

    def canonical(self) -> dict[str, object]:
        """The mandate as signed and exported: JSON types only, absent constraints left out."""
        return self.model_dump(mode="json", exclude_none=True)


def check_mandate_for_brand(mandate: Mandate, brand: BrandConfig) -> None:
    """Refuses a mandate the brand could never honour, so it fails at creation, not at each occurrence."""
    if mandate.currency != brand.currency and mandate.currency not in brand.currencyRates:
        raise MandateNotAllowed(
            f"the mandate is in {mandate.currency}; the brand trades in {brand.currency} "
            "and has no rate for that currency"
        )
    if mandate.merchants is not None:
        known = {merchant.id for merchant in brand.merchants}
        unknown = [merchant for merchant in mandate.merchants if merchant not in known]
        if unknown:
            raise MandateNotAllowed(f"the brand does not buy from {', '.join(sorted(unknown))}")


_MANDATE_TAG = "cartpilot.mandate.v1"
_SCHEDULE_ID = r"^[A-Za-z0-9_\-]{1,80}$"
_USER_ID = r"^[A-Za-z0-9_\-]{1,64}$"


class MandateSignature(BaseModel):
    """An ECDSA signature by a plan-signing key, named by its id (``GET /audit/keys`` publishes it)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    alg: str = PLAN_SIGNATURE_ALGORITHM
    kid: str
    sig: str


class SignedMandate(BaseModel):
    """A mandate as the schedule keeps it: bound to its schedule, user and client, and signed."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    mandate: Mandate
    scheduleId: str = Field(pattern=_SCHEDULE_ID)
    userId: str = Field(pattern=_USER_ID)
    clientId: str = Field(min_length=1, max_length=64)
    signedAt: AwareDatetime
    signature: MandateSignature

    def audit_detail(self) -> dict[str, Any]:
        """What an audit record of the mandate shows: its limits and signature, nothing personal."""
        return {
            "scheduleId": self.scheduleId,
            "mandate": self.mandate.canonical(),
            "mandateHash": mandate_hash(self.mandate),
            "signature": self.signature.model_dump(mode="json"),
        }


def _canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def mandate_hash(mandate: Mandate) -> str:
    return hashlib.sha256(_canonical_json(mandate.canonical())).hexdigest()


def mandate_message(
    mandate: Mandate, *, schedule_id: str, user_id: str, client_id: str, signed_at: datetime
) -> bytes:
    """The bytes a mandate signature covers; the mandate enters as its SHA-256 (KMS signs at most 4 KB)."""
    return _canonical_json(
        {
            "tag": _MANDATE_TAG,
            "scheduleId": schedule_id,
            "userId": user_id,
            "clientId": client_id,
            "signedAt": signed_at.isoformat(),
            "mandate": mandate_hash(mandate),
        }
    )


def sign_mandate(
    mandate: Mandate,
    *,
    schedule_id: str,
    user_id: str,
    client_id: str,
    signer: PlanSigner,
    signed_at: datetime,
) -> SignedMandate:
    """Signs the mandate for one schedule of one user and client; the schedule stores the result."""
    message = mandate_message(
        mandate, schedule_id=schedule_id, user_id=user_id, client_id=client_id, signed_at=signed_at
    )
    kid, signature = signer.sign(message)
    return SignedMandate(
        mandate=mandate,
        scheduleId=schedule_id,
        userId=user_id,
        clientId=client_id,
        signedAt=signed_at,
        signature=MandateSignature(kid=kid, sig=encode_signature(signature)),
    )


def verify_signed_mandate(signed: SignedMandate, verifier: PlanSignatureVerifier) -> bool:
    """True when a published plan-signing key signed exactly this mandate for this schedule and user."""
    if signed.signature.alg != PLAN_SIGNATURE_ALGORITHM:
        return False
    try:
        signature = decode_signature(signed.signature.sig)
    except ValueError:
        return False
    message = mandate_message(
        signed.mandate,
        schedule_id=signed.scheduleId,
        user_id=signed.userId,
        client_id=signed.clientId,
        signed_at=signed.signedAt,
    )
    return verifier.verifies(signed.signature.kid, message, signature)
