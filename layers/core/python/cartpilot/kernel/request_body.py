"""Reading a request body that anyone on the internet may have written.

Python's ``json`` recurses once per nesting level (a body nested a thousand deep raises
RecursionError) and refuses integers past ``sys.get_int_max_str_digits()`` with a ValueError;
a body that is not UTF-8 fails to decode. Each would surface as a 5xx. These checks run
before the body is parsed, so a hostile body is a 400 and costs no work.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cartpilot.kernel.errors import Refusal

# No request CartPilot serves nests deeper than a handful of levels (a goal's context:
# recipient, address); 32 leaves room and stays far below the interpreter's recursion limit.
MAX_JSON_DEPTH = 32
# Amounts are minor units; nothing legitimate needs more digits than DynamoDB's 38-digit numbers.
MAX_INTEGER_DIGITS = 38


class BodyRefused(Refusal):
    """The body cannot be read safely (400). Deliberately not a ValueError: generic input
    handlers must not swallow it into a misleading message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(400, code, message)


def body_text(body: str | None, *, is_base64_encoded: bool) -> str:
    """The body as text; BodyRefused when it is not base64 where it should be, or not UTF-8."""
    if not body:
        return ""
    if not is_base64_encoded:
        return body
    try:
        return base64.b64decode(body, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise BodyRefused("BODY_NOT_UTF8", "the request body must be UTF-8 text") from exc


def read_json(text: str) -> Any:
    """``json.loads`` for untrusted text: bounded nesting and integer size, no NaN or Infinity.

    Malformed JSON still raises ``json.JSONDecodeError`` (callers already answer it with 422).
    """
    _check_depth(text)
    return json.loads(text, parse_int=_bounded_int, parse_constant=_no_constant)


def _check_depth(text: str) -> None:
    # A linear scan, not a parse: brackets inside strings do not count.
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise BodyRefused("BODY_TOO_DEEP", f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels")
        elif char in "]}":
            depth -= 1


def _bounded_int(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise BodyRefused("NUMBER_TOO_LARGE", f"numbers in the body have at most {MAX_INTEGER_DIGITS} digits")
    return int(literal)


def _no_constant(name: str) -> Any:
    raise BodyRefused("NUMBER_NOT_FINITE", f"{name} is not a number JSON allows")
