"""Issue 13 rows 6-8 in the template: the brand's SES identity and configuration set, ses:SendEmail
scoped to that identity for the functions that tell shoppers, and the notices sweep with a Query on
its two sparse indexes only."""

from __future__ import annotations

from typing import Any

import pytest

from cartpilot.adapters.aws import notices_table
from infra import data
from infra.function_specs import FUNCTIONS
from tests.infra.conftest import Synthesis, live_alias, of_type, resource_refs, statements_of_role

pytestmark = pytest.mark.xdist_group("infra")

BRAND = "sandbox"  # ships a verified sender (brand.yaml notifications.sesIdentity)


def _role_of(synthesis: Synthesis, name: str) -> str:
    resources = synthesis.template_json(BRAND)["Resources"]
    function_id = synthesis.logical_id(BRAND, synthesis.stacks[BRAND].functions.by_name[name])
    role: str = resources[function_id]["Properties"]["Role"]["Fn::GetAtt"][0]
    return role


def _ses_statements(synthesis: Synthesis, name: str) -> list[dict[str, Any]]:
    resources = synthesis.template_json(BRAND)["Resources"]
    return [
        s
        for s in statements_of_role(resources, _role_of(synthesis, name))
        if any(str(action).startswith("ses:") for action in s["Action"])
    ]


def test_the_sender_identity_mails_through_a_configuration_set_that_requires_tls(
    synthesis: Synthesis,
) -> None:
    resources = synthesis.template_json(BRAND)["Resources"]
    (identity,) = of_type(resources, "AWS::SES::EmailIdentity").values()
    (config_id, config), *_ = of_type(resources, "AWS::SES::ConfigurationSet").items()
    assert identity["Properties"]["EmailIdentity"] == synthesis.stacks[BRAND].brand.ses_identity
    assert identity["Properties"]["ConfigurationSetAttributes"] == {
        "ConfigurationSetName": {"Ref": config_id}
    }
    assert config["Properties"]["DeliveryOptions"]["TlsPolicy"] == "REQUIRE"
    assert config["Properties"]["SuppressionOptions"]["SuppressedReasons"] == ["BOUNCE", "COMPLAINT"]


def test_only_the_functions_that_tell_shoppers_may_send_email_and_only_from_the_identity(
    synthesis: Synthesis,
) -> None:
    for spec in FUNCTIONS:
        statements = _ses_statements(synthesis, spec.name)
        if not spec.notifies:
            assert statements == [], spec.name
            continue
        (statement,) = statements
        assert sorted(statement["Action"]) == ["ses:SendEmail", "ses:SendRawEmail"]
        (resource,) = resource_refs(statement)
        assert "*" not in str(resource).replace('"*"', "")
        assert synthesis.stacks[BRAND].brand.ses_identity in str(resource)


def test_the_notices_sweep_queries_its_two_indexes_and_nothing_else(synthesis: Synthesis) -> None:
    resources = synthesis.template_json(BRAND)["Resources"]
    queries = [
        s
        for s in statements_of_role(resources, _role_of(synthesis, "notices"))
        if "dynamodb:Query" in s["Action"] and "dynamodb:PutItem" not in s["Action"]
    ]
    indexes = sorted(str(resource) for s in queries for resource in resource_refs(s))
    assert len(indexes) == 2
    assert any(data.NOTICES_DUE_INDEX in i for i in indexes) and any(
        data.REMINDERS_DUE_INDEX in i for i in indexes
    )
    assert not [
        s
        for s in statements_of_role(resources, _role_of(synthesis, "notices"))
        if "dynamodb:Scan" in s["Action"]
    ]


def test_the_indexes_the_adapter_queries_are_the_ones_the_stack_declares(synthesis: Synthesis) -> None:
    resources = synthesis.template_json(BRAND)["Resources"]
    goals = resources[synthesis.logical_id(BRAND, synthesis.stacks[BRAND].data.goals)]
    declared = {i["IndexName"]: i for i in goals["Properties"]["GlobalSecondaryIndexes"]}
    assert notices_table.NOTICES_DUE_INDEX == data.NOTICES_DUE_INDEX
    assert notices_table.REMINDERS_DUE_INDEX == data.REMINDERS_DUE_INDEX
    assert declared[data.NOTICES_DUE_INDEX]["KeySchema"] == [
        {"AttributeName": notices_table.NOTICE_QUEUE_KEY, "KeyType": "HASH"},
        {"AttributeName": notices_table.NOTICE_SINCE_KEY, "KeyType": "RANGE"},
    ]
    assert declared[data.REMINDERS_DUE_INDEX]["KeySchema"] == [
        {"AttributeName": notices_table.REMINDER_QUEUE_KEY, "KeyType": "HASH"},
        {"AttributeName": notices_table.REMINDER_EXPIRY_KEY, "KeyType": "RANGE"},
    ]
    types = {a["AttributeName"]: a["AttributeType"] for a in goals["Properties"]["AttributeDefinitions"]}
    assert types[notices_table.REMINDER_EXPIRY_KEY] == "N" and types[notices_table.NOTICE_SINCE_KEY] == "S"


def test_the_notices_sweep_runs_every_minute(synthesis: Synthesis) -> None:
    resources = synthesis.template_json(BRAND)["Resources"]
    alias = live_alias(synthesis, BRAND, "notices")
    (rule,) = [
        r["Properties"]
        for r in of_type(resources, "AWS::Events::Rule").values()
        if any(t["Arn"] == alias for t in r["Properties"]["Targets"])
    ]
    assert rule["ScheduleExpression"] == "rate(1 minute)"
