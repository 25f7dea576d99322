"""Secrets and notifications: encrypted, scoped, and the link-signing key rings rotated by the stack."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Template

from tests.infra.conftest import Synthesis, brand_key, of_type, resource_refs, statements_of_role

pytestmark = pytest.mark.xdist_group("infra")


def test_secrets_are_encrypted_with_the_brand_key(resources: dict[str, dict[str, Any]]) -> None:
    secrets = of_type(resources, "AWS::SecretsManager::Secret")
    # Approval-link and view-link key rings, UCP signing keys, merchant credentials, LLM key.
    assert len(secrets) == 5
    key_id, _ = brand_key(resources)
    for secret in secrets.values():
        assert secret["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}


def test_both_link_key_rings_are_rotated_every_30_days_by_their_own_function(
    synthesis: Synthesis, brand_name: str
) -> None:
    stack = synthesis.stacks[brand_name]
    resources = synthesis.template_json(brand_name)["Resources"]
    schedules = of_type(resources, "AWS::SecretsManager::RotationSchedule").values()
    rotation = synthesis.logical_id(brand_name, stack.functions.link_key_rotation)
    rings = [
        {"Ref": synthesis.logical_id(brand_name, stack.secrets.link_signing_key)},
        {"Ref": synthesis.logical_id(brand_name, stack.secrets.view_link_key)},
    ]
    assert sorted(str(s["Properties"]["SecretId"]) for s in schedules) == sorted(map(str, rings))
    for schedule in schedules:
        assert schedule["Properties"]["RotationLambdaARN"] == {"Fn::GetAtt": [rotation, "Arn"]}
        assert schedule["Properties"]["RotationRules"] == {"ScheduleExpression": "rate(30 days)"}

    (permission,) = [
        p["Properties"]
        for p in of_type(resources, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "secretsmanager.amazonaws.com"
    ]
    assert permission["FunctionName"] == {"Fn::GetAtt": [rotation, "Arn"]}
    assert permission["SourceAccount"] == {"Ref": "AWS::AccountId"}

    role_id = resources[rotation]["Properties"]["Role"]["Fn::GetAtt"][0]
    scoped = [
        s
        for s in statements_of_role(resources, role_id)
        if any(a.startswith("secretsmanager:") for a in s["Action"]) and s["Resource"] != "*"
    ]
    # The two rings and nothing else.
    assert sorted({str(ref) for s in scoped for ref in resource_refs(s)}) == sorted(map(str, rings))


def test_notification_topic_is_encrypted_and_refuses_plain_http(
    template: Template, resources: dict[str, dict[str, Any]]
) -> None:
    key_id, _ = brand_key(resources)
    template.all_resources_properties("AWS::SNS::Topic", {"KmsMasterKeyId": {"Fn::GetAtt": [key_id, "Arn"]}})
    topics = of_type(resources, "AWS::SNS::Topic")
    assert len(topics) == 3  # approvals and receipts; the staff channel; alarms
    for topic_id, topic in topics.items():
        assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
        (policy,) = [
            p
            for p in of_type(resources, "AWS::SNS::TopicPolicy").values()
            if {"Ref": topic_id} in p["Properties"]["Topics"]
        ]
        denies = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
        assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in denies)


def test_ses_identity_only_when_the_brand_names_a_sender(synthesis: Synthesis, brand_name: str) -> None:
    resources = synthesis.template_json(brand_name)["Resources"]
    identities = of_type(resources, "AWS::SES::EmailIdentity")
    stack = synthesis.stacks[brand_name]
    if stack.brand.ses_identity is None:
        assert identities == {}
        return
    assert [i["Properties"]["EmailIdentity"] for i in identities.values()] == [stack.brand.ses_identity]
    for name in ("approval", "notify"):
        function = resources[synthesis.logical_id(brand_name, stack.functions.by_name[name])]
        assert function["Properties"]["Environment"]["Variables"]["SES_IDENTITY"] == stack.brand.ses_identity
        role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
        (send,) = [s for s in statements_of_role(resources, role_id) if "ses:SendEmail" in s["Action"]]
        assert send["Resource"]["Fn::Join"][1][-1] == f":identity/{stack.brand.ses_identity}"


def test_fixture_brand_exercises_the_ses_path(synthesis: Synthesis) -> None:
    assert synthesis.stacks["harbor"].brand.ses_identity == "orders@harbor.example"
