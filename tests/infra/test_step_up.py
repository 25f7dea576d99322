"""One-time codes by SMS: only the api may publish to phone numbers, and to no topic by that grant."""

from __future__ import annotations

from typing import Any

from tests.infra.conftest import Synthesis, statements_of_role

SMS_ONLY = "arn:*:sns:*:*:*"


def _sms_statements(resources: dict[str, dict[str, Any]], role_id: str) -> list[dict[str, Any]]:
    return [s for s in statements_of_role(resources, role_id) if "NotResource" in s]


def test_only_the_api_sends_text_messages_and_never_to_a_topic(synthesis: Synthesis, brand_name: str) -> None:
    resources = synthesis.template_json(brand_name)["Resources"]
    functions = synthesis.stacks[brand_name].functions.by_name
    for name, function in functions.items():
        function_id = synthesis.logical_id(brand_name, function)
        role_id = resources[function_id]["Properties"]["Role"]["Fn::GetAtt"][0]
        sms = _sms_statements(resources, role_id)
        if name != "api":
            assert sms == [], name
            continue
        # NotResource every topic ARN: what is left to publish to is a phone number.
        assert sms == [{"Action": ["sns:Publish"], "Effect": "Allow", "NotResource": SMS_ONLY}]
