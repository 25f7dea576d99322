"""Keeping personal data out of logs, audit records and shared pages.

Known PII fields are erased with Powertools Data Masking; free text (a goal, an
error message) is scrubbed of anything shaped like a phone number, an email
address or a card number, since shoppers type those into goals.
"""

from __future__ import annotations

import functools
import re
import warnings
from typing import Any

from aws_lambda_powertools.utilities.data_masking import DataMasking

from cartpilot.commerce.ports import Address, Recipient

# Keys whose values are personal wherever they appear.
PII_FIELDS = ("phone", "email", "line1", "postalCode", "fullName", "name")
_FIELD_PATHS = [f"$..{field}" for field in PII_FIELDS]

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
# Runs of digits and separators; with ten or more digits it is a phone or card number,
# with fewer it is a date, a size or a price and stays readable. A run glued to ASCII
# letters or digits is part of an identifier (a hex goal id, a hash), not a number.
_NUMBER_RUN = re.compile(r"(?<![A-Za-z0-9_])\+?\d[\d \-().]{6,}\d(?![A-Za-z0-9_])")
_MIN_PERSONAL_DIGITS = 10
MASK = "*****"
# Machine values that are never personal and must survive byte for byte (a signature
# or a hash that lost a digit run to the scrubber could no longer be verified).
MACHINE_FIELDS = frozenset(
    {"hash", "prevHash", "planHash", "promptHash", "fromPlanHash", "sig", "kid", "alg"}
)

# Most records hold only some of the PII fields; a missing one is expected, not news.
# (A process-wide filter: warnings.catch_warnings is not safe across threads.)
warnings.filterwarnings("ignore", message=r"Field or expression .* not found", category=UserWarning)


@functools.cache
def _masker() -> DataMasking:
    return DataMasking(raise_on_missing_field=False)


def scrub_text(text: str) -> str:
    text = _EMAIL.sub(MASK, text)
    return _NUMBER_RUN.sub(_mask_if_personal, text)


def _mask_if_personal(match: re.Match[str]) -> str:
    digits = sum(char.isdigit() for char in match.group())
    return MASK if digits >= _MIN_PERSONAL_DIGITS else match.group()


def _scrub_strings(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {
            key: item if key in MACHINE_FIELDS and isinstance(item, str) else _scrub_strings(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_scrub_strings(item) for item in value]
    return value


def mask_pii(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` fit for an audit record or a log line."""
    if not data:
        return {}
    erased = _masker().erase(data, fields=_FIELD_PATHS)
    scrubbed: dict[str, Any] = _scrub_strings(erased)
    return scrubbed


def mask_phone(phone: str) -> str:
    digits = [char for char in phone if char.isdigit()]
    return "•••• " + "".join(digits[-4:]) if len(digits) >= 4 else MASK


def mask_name(name: str) -> str:
    parts = name.split()
    if len(parts) < 2:
        return name[:1] + "•••"
    return " ".join([parts[0], *[part[:1] + "." for part in parts[1:]]])


def describe_address(address: Address) -> str:
    """City, region and country: enough to recognise, not enough to find a door."""
    return ", ".join(part for part in (address.city, address.region, address.country) if part)


def describe_recipient(recipient: Recipient) -> str:
    return (
        f"{mask_name(recipient.name)}, {describe_address(recipient.address)} ({mask_phone(recipient.phone)})"
    )
