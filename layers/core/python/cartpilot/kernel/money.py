"""Money as integer minor units plus an ISO 4217 currency, never floats."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# ISO 4217 minor-unit exponents for the currencies CartPilot handles.
MINOR_UNIT_EXPONENTS: dict[str, int] = {
    "CNY": 2,
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "HKD": 2,
    "SGD": 2,
    "AUD": 2,
    "CAD": 2,
    "JPY": 0,
    "KRW": 0,
}


class CurrencyMismatch(ValueError):
    """Two amounts in different currencies were combined."""


class Money(BaseModel):
    """An amount in the currency's minor units (fen, cents), with its currency."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    amount_minor: int = Field(description="Amount in minor units of the currency, e.g. 24999 for 249.99")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 currency code")

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        if value not in MINOR_UNIT_EXPONENTS:
            raise ValueError(f"unsupported currency {value}")
        return value

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(amount_minor=0, currency=currency)

    @classmethod
    def from_decimal(cls, amount: Decimal | str | int, currency: str) -> Money:
        """Converts a major-unit amount ("249.99") exactly; refuses sub-minor precision."""
        exponent = MINOR_UNIT_EXPONENTS.get(currency)
        if exponent is None:
            raise ValueError(f"unsupported currency {currency}")
        scaled = Decimal(str(amount)).scaleb(exponent)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{amount} has more precision than {currency} allows")
        return cls(amount_minor=int(scaled), currency=currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} and {other.currency} cannot be combined")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(amount_minor=self.amount_minor + other.amount_minor, currency=self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(amount_minor=self.amount_minor - other.amount_minor, currency=self.currency)

    def times(self, quantity: int) -> Money:
        return Money(amount_minor=self.amount_minor * quantity, currency=self.currency)

    def exceeds(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount_minor > other.amount_minor

    def to_decimal(self) -> Decimal:
        return Decimal(self.amount_minor).scaleb(-MINOR_UNIT_EXPONENTS[self.currency])

    def format(self) -> str:
        """Human form, e.g. ``249.99 CNY``; the form used in confirmation phrases."""
        exponent = MINOR_UNIT_EXPONENTS[self.currency]
        return f"{self.to_decimal():.{exponent}f} {self.currency}"


def total_of(amounts: list[Money], currency: str) -> Money:
    total = Money.zero(currency)
    for amount in amounts:
        total = total + amount
    return total
