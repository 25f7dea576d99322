"""The tables: the keys the application uses; on-demand, recoverable, encrypted; kept if they hold records."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Template

from tests.infra.conftest import Synthesis, brand_key, of_type

pytestmark = pytest.mark.xdist_group("infra")


def _table(synthesis: Synthesis, brand: str, name: str) -> tuple[str, dict[str, Any]]:
    stack = synthesis.stacks[brand]
    logical_id = synthesis.logical_id(brand, getattr(stack.data, name))
    return logical_id, synthesis.template_json(brand)["Resources"][logical_id]


@pytest.mark.parametrize(
    ("table", "keys", "ttl"),
    [
        ("goals", [("pk", "HASH", "S")], None),
        ("audit", [("goalId", "HASH", "S"), ("seq", "RANGE", "N")], None),
        ("idempotency", [("id", "HASH", "S")], "expiration"),
        ("counters", [("pk", "HASH", "S")], "expiresAt"),
        ("schedules", [("scheduleId", "HASH", "S")], None),
    ],
)
def test_table_keys_and_expiry_match_what_the_functions_read_and_write(
    synthesis: Synthesis, brand_name: str, table: str, keys: list[tuple[str, str, str]], ttl: str | None
) -> None:
    _, resource = _table(synthesis, brand_name, table)
    properties = resource["Properties"]
    assert [(k["AttributeName"], k["KeyType"]) for k in properties["KeySchema"]] == [
        (n, t) for n, t, _ in keys
    ]
    # The goals table's sparse index keys are defined too (tests/infra/test_redelivery.py).
    indexed = {
        k["AttributeName"]
        for index in properties.get("GlobalSecondaryIndexes", [])
        for k in index["KeySchema"]
    }
    assert {
        (a["AttributeName"], a["AttributeType"])
        for a in properties["AttributeDefinitions"]
        if a["AttributeName"] not in indexed
    } == {(n, kind) for n, _, kind in keys}
    if ttl is None:
        assert "TimeToLiveSpecification" not in properties
    else:
        assert properties["TimeToLiveSpecification"] == {"AttributeName": ttl, "Enabled": True}


def test_every_table_is_on_demand_recoverable_and_encrypted_with_the_brand_key(
    template: Template, resources: dict[str, dict[str, Any]]
) -> None:
    tables = of_type(resources, "AWS::DynamoDB::Table")
    assert len(tables) == 5
    # The brand key; the other key signs plan snapshots (SIGN_VERIFY) and encrypts nothing.
    key_id, _ = brand_key(resources)
    template.all_resources_properties(
        "AWS::DynamoDB::Table",
        {
            "BillingMode": "PAY_PER_REQUEST",
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {
                "SSEEnabled": True,
                "SSEType": "KMS",
                "KMSMasterKeyId": {"Fn::GetAtt": [key_id, "Arn"]},
            },
        },
    )
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    template.has_resource("AWS::KMS::Key", {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"})


@pytest.mark.parametrize(
    ("table", "kept"),
    [("goals", True), ("audit", True), ("idempotency", False), ("counters", False), ("schedules", True)],
)
def test_goals_and_audit_survive_deletion_while_expiring_tables_go_with_the_stack(
    synthesis: Synthesis, brand_name: str, table: str, kept: bool
) -> None:
    _, resource = _table(synthesis, brand_name, table)
    if kept:
        assert resource["Properties"]["DeletionProtectionEnabled"] is True
        assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"
    else:
        assert resource["Properties"].get("DeletionProtectionEnabled", False) is False
        assert resource["DeletionPolicy"] == "Delete"


def test_table_grants_name_tables_not_index_wildcards(resources: dict[str, dict[str, Any]]) -> None:
    policies = json.dumps(
        [policy["Properties"] for policy in of_type(resources, "AWS::IAM::Policy").values()]
    )
    assert "/index/*" not in policies
    # The index grants, one each: the redelivery sweep's Query on the sparse index of undelivered
    # decisions, the occurrence sweep's on the schedules table's index of due occurrences, and the
    # tracking sweep's on the goals table's index of orders it has work on, and the notices sweep's on
    # the goals table's indexes of status notices due and approvals awaiting a reminder, and the api's
    # on the schedules table's index by user (a shopper's schedules).
    grants = {
        "/index/pendingDelivery": 1, "/index/dueSchedules": 1, "/index/openTracking": 1,
        "/index/noticesDue": 1, "/index/remindersDue": 1, "/index/schedulesByUser": 1,
    }  # fmt: skip
    assert {index: policies.count(index) for index in grants} == grants
    assert policies.count("/index/") == sum(grants.values())
