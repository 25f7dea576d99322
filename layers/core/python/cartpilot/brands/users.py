"""Shoppers' saved profiles: payment methods and recipients a plan may use.

The ``UserDirectory`` port has one adapter here, reading the brand's ``users.yaml``
plus deterministically generated load-test shoppers. A brand with a customer API
would add another adapter behind the same port.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from cartpilot.brands.config import BrandConfig
from cartpilot.commerce.ports import Address, Recipient


class PaymentMethod(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    id: str
    label: str
    addedOn: date


class SavedRecipient(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    id: str
    relation: str = Field(description="self, friend, family, colleague ...")
    recipient: Recipient


class Verification(BaseModel):
    """How the shopper proves it is them when an approval needs a one-time code (step-up)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    # E.164, verified by the brand when the shopper enrolled it; codes go there by SMS.
    verifiedPhone: str | None = Field(default=None, pattern=r"^\+[1-9][0-9]{6,14}$")
    # An authenticator app's shared secret (RFC 6238, base32).
    totpSecret: str | None = Field(default=None, pattern=r"^[A-Z2-7]{16,64}$", repr=False)


class UserProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    userId: str
    name: str
    email: str
    trustLevel: int = Field(default=1, ge=0, le=3)
    # ISO 3166-1 alpha-2; when absent, the country of the shopper's own saved address.
    homeCountry: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    verification: Verification = Field(default_factory=Verification)
    paymentMethods: list[PaymentMethod]
    recipients: list[SavedRecipient]

    @property
    def home_country(self) -> str:
        return self.homeCountry or self.home.recipient.address.country

    @property
    def home(self) -> SavedRecipient:
        for saved in self.recipients:
            if saved.relation == "self":
                return saved
        return self.recipients[0]

    def default_payment_method(self) -> PaymentMethod | None:
        return self.paymentMethods[0] if self.paymentMethods else None

    def recipient(self, recipient_id: str) -> SavedRecipient | None:
        return next((saved for saved in self.recipients if saved.id == recipient_id), None)

    def owns_payment_method(self, method_id: str) -> bool:
        return any(method.id == method_id for method in self.paymentMethods)


class UserDirectory(Protocol):
    def get(self, user_id: str) -> UserProfile | None: ...


_CITIES = (
    ("Shanghai", "SH", "200000"),
    ("Beijing", "BJ", "100000"),
    ("Shenzhen", "GD", "518000"),
    ("Hangzhou", "ZJ", "310000"),
    ("Chengdu", "SC", "610000"),
)


def generated_shopper(number: int) -> UserProfile:
    """``shopper-0001`` … : one payment method and a home address each, for load tests."""
    user_id = f"shopper-{number:04d}"
    city, region, postal = _CITIES[number % len(_CITIES)]
    home = Recipient(
        name=f"Shopper {number:04d}",
        phone=f"+86 139 {number:04d} {(number * 7919) % 10000:04d}",
        address=Address(
            line1=f"{number} Test Road", city=city, region=region, postalCode=postal, country="CN"
        ),
    )
    return UserProfile(
        userId=user_id,
        name=home.name,
        email=f"{user_id}@example.com",
        trustLevel=1,
        homeCountry="CN",
        verification=Verification(verifiedPhone="+86139" + f"{number:04d}{(number * 7919) % 10000:04d}"[:8]),
        paymentMethods=[
            PaymentMethod(id=f"pm_{user_id.replace('-', '_')}", label="Test card", addedOn=date(2025, 1, 1))
        ],
        recipients=[SavedRecipient(id="home", relation="self", recipient=home)],
    )


class BrandUserDirectory:
    """Profiles shipped with the brand (``users.yaml``) plus its generated shoppers."""

    def __init__(self, brand: BrandConfig, users_file: Path | None = None) -> None:
        import yaml  # loaded with the first directory, not by every handler that imports the models

        self._brand = brand
        path = users_file or brand.directory / "users.yaml"
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {"users": []}
        self._users = {entry["userId"]: UserProfile.model_validate(entry) for entry in raw.get("users", [])}

    def get(self, user_id: str) -> UserProfile | None:
        if user_id in self._users:
            return self._users[user_id]
        if user_id.startswith("shopper-") and user_id[8:].isdigit() and len(user_id) == 12:
            number = int(user_id[8:])
            if 1 <= number <= self._brand.generatedShoppers:
                return generated_shopper(number)
        return None


_directories: dict[Path, BrandUserDirectory] = {}


def directory_for(brand: BrandConfig) -> BrandUserDirectory:
    """One directory per brand per warm container; the files are read once."""
    directory = _directories.get(brand.directory)
    if directory is None:
        directory = _directories[brand.directory] = BrandUserDirectory(brand)
    return directory


def reset_directories() -> None:
    _directories.clear()
