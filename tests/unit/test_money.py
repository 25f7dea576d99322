from decimal import Decimal

import pytest
from pydantic import ValidationError

from cartpilot.kernel.money import CurrencyMismatch, Money


def test_amounts_are_exact_minor_units():
    assert Money.from_decimal("249.99", "CNY") == Money(amount_minor=24999, currency="CNY")
    assert Money.from_decimal("1000", "JPY").amount_minor == 1000
    assert Money(amount_minor=24999, currency="CNY").to_decimal() == Decimal("249.99")


def test_format_is_the_confirmation_phrase_form():
    assert Money(amount_minor=71900, currency="CNY").format() == "719.00 CNY"
    assert Money(amount_minor=5, currency="USD").format() == "0.05 USD"
    assert Money(amount_minor=1500, currency="JPY").format() == "1500 JPY"


def test_sub_minor_precision_is_refused():
    with pytest.raises(ValueError, match="precision"):
        Money.from_decimal("1.005", "CNY")


def test_mixing_currencies_is_refused():
    with pytest.raises(CurrencyMismatch):
        _ = Money(amount_minor=1, currency="CNY") + Money(amount_minor=1, currency="USD")


def test_unknown_currency_and_floats_are_refused():
    with pytest.raises(ValidationError):
        Money(amount_minor=1, currency="XXX")
    with pytest.raises(ValidationError):
        Money(amount_minor=1.5, currency="CNY")  # type: ignore[arg-type]


def test_arithmetic():
    price = Money(amount_minor=69900, currency="CNY")
    assert price.times(2) + Money(amount_minor=2000, currency="CNY") == Money(
        amount_minor=141800, currency="CNY"
    )
    assert price.exceeds(Money(amount_minor=50000, currency="CNY"))
