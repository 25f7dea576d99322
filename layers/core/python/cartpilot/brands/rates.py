"""Amounts in another currency, in the brand's: how limits are checked for plans priced elsewhere.

A plan is priced in its merchant's currency. The brand's limits, thresholds and its shoppers'
recent spend are in the brand's own currency, so a plan's amounts are converted with the rates
the brand configures (``currencyRates`` in brand.yaml: units of the brand's currency per unit of
the other), rounded up to the brand's minor unit: a limit is never passed by rounding. Without a
rate nothing is guessed: the plan is refused.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

from cartpilot.brands.config import BrandConfig
from cartpilot.kernel.money import MINOR_UNIT_EXPONENTS, Money


class NoCurrencyRate(ValueError):
    """The brand has no rate for a currency an amount is in."""

    def __init__(self, currency: str, brand_currency: str) -> None:
        super().__init__(
            f"the brand has no exchange rate from {currency} to {brand_currency} (brand.yaml currencyRates)"
        )
        self.currency = currency
        self.brand_currency = brand_currency


def rate_to_brand_currency(currency: str, brand: BrandConfig) -> Decimal:
    """Units of the brand's currency per unit of ``currency`` (1 for the brand's own)."""
    if currency == brand.currency:
        return Decimal(1)
    rate = brand.currencyRates.get(currency)
    if rate is None:
        raise NoCurrencyRate(currency, brand.currency)
    return Decimal(rate)


def in_brand_currency(amount: Money, brand: BrandConfig) -> Money:
    """``amount`` in the brand's currency at the brand's rate, rounded up to a whole minor unit."""
    if amount.currency == brand.currency:
        return amount
    converted = amount.to_decimal() * rate_to_brand_currency(amount.currency, brand)
    minor = converted.scaleb(MINOR_UNIT_EXPONENTS[brand.currency]).to_integral_value(rounding=ROUND_CEILING)
    return Money(amount_minor=int(minor), currency=brand.currency)
