"""Keeping personal data out of logs, audit records and shared pages.

Known PII fields are erased with Powertools Data Masking; free text (a goal, an
error message) loses the phone numbers, emails, card numbers, identity numbers and
street addresses shoppers type into goals (found by ``pii_detectors``).
"""

from __future__ import annotations

import functools
import warnings
from typing import TYPE_CHECKING, Any

from cartpilot.commerce.ports import Address, Recipient

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_masking import DataMasking

# Data Masking (jsonpath) and the detectors (phonenumbers' metadata) load with the first text masked,
# not with every module that may mask one: the api's start-up does not pay for them.

# Keys whose values are personal wherever they appear.
PII_FIELDS = ("phone", "email", "line1", "postalCode", "fullName", "name")
_FIELD_PATHS = [f"$..{field}" for field in PII_FIELDS]

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
    from aws_lambda_powertools.utilities.data_masking import DataMasking

    return DataMasking(raise_on_missing_field=False)


def scrub_text(text: str) -> str:
    """``text`` with every piece of personal data replaced by the mask; the rest as written."""
    from cartpilot.audit.pii_detectors import personal_spans

    pieces: list[str] = []
    cursor = 0
    for start, end in personal_spans(text):
        pieces += [text[cursor:start], MASK]
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)


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
