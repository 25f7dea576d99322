"""Bodies and link parameters anyone may send: refused as client errors, never crashes."""

from __future__ import annotations

import base64
import json

import pytest
from pydantic import ValidationError

from cartpilot.approvals.desk import LinkParams
from cartpilot.goals.model import GoalRequest
from cartpilot.kernel.request_body import MAX_JSON_DEPTH, BodyRefused, body_text, read_json


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("[" * 1000 + "]" * 1000, "BODY_TOO_DEEP"),
        ('{"context": ' + '{"a": ' * 200 + "1" + "}" * 201, "BODY_TOO_DEEP"),
        ('{"amount_minor": ' + "9" * 4301 + "}", "NUMBER_TOO_LARGE"),
        ('{"amount_minor": -' + "9" * 39 + "}", "NUMBER_TOO_LARGE"),
        ('{"amount_minor": NaN}', "NUMBER_NOT_FINITE"),
        ("[Infinity]", "NUMBER_NOT_FINITE"),
    ],
    ids=["nested-1000", "nested-in-context", "int-4301-digits", "negative-39-digits", "nan", "infinity"],
)
def test_hostile_json_is_refused_before_it_is_parsed(text: str, code: str):
    with pytest.raises(BodyRefused) as refused:
        read_json(text)
    assert (refused.value.status, refused.value.code) == (400, code)


def test_ordinary_json_reads_as_before():
    nested = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert read_json(nested) is not None
    # Brackets inside strings are text, not nesting.
    assert read_json(json.dumps({"goal": "[" * 500 + '"{'})) == {"goal": "[" * 500 + '"{'}
    assert read_json('{"amount_minor": 71900, "rate": 1.5e3}') == {"amount_minor": 71900, "rate": 1500.0}


def test_malformed_json_is_still_a_decode_error():
    with pytest.raises(json.JSONDecodeError):
        read_json('{"goal": ')


def test_a_body_that_is_not_utf8_is_refused():
    encoded = base64.b64encode(b'{"goal": "\xff\xfe"}').decode()
    with pytest.raises(BodyRefused) as refused:
        body_text(encoded, is_base64_encoded=True)
    assert refused.value.code == "BODY_NOT_UTF8"
    assert body_text(base64.b64encode("袜子".encode()).decode(), is_base64_encoded=True) == "袜子"
    assert body_text(None, is_base64_encoded=False) == ""


@pytest.mark.parametrize("exp", ["²", "١٢٣", "9" * 5000, "-1", "1e9", "", " 123"])
def test_a_link_expiry_that_is_not_plain_digits_is_no_expiry(exp: str):
    assert LinkParams(exp=exp, kid="k", sig="s").expires_at() is None


def test_a_link_expiry_of_plain_digits_is_read():
    assert LinkParams(exp="1767225600", kid="k", sig="s").expires_at() == 1767225600


@pytest.mark.parametrize("amount", [0, -100, 10**14 + 1, 10**37])
def test_an_implausible_budget_is_refused(amount: int):
    body = {
        "userId": "user-1",
        "goal": "running socks",
        "context": {"budget": {"amount_minor": amount, "currency": "CNY"}},
    }
    with pytest.raises(ValidationError):
        GoalRequest.model_validate(body)
