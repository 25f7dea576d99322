"""Issue 11 rows 4 and 7 in the templates: plan snapshots are signed with an asymmetric KMS key only
the functions that fix plans may use, the planner holds no approval-link key, and audit anchors live in
a write-once Object Lock bucket that no role may delete from or overwrite.

IAM and Object Lock exist only on AWS, so these are read off the synthesized templates; the forgeries
themselves are run against the local stack in tests/e2e/test_attack_row04_audit_forgery.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import Synthesis, of_type, statements_of_role

pytestmark = pytest.mark.xdist_group("infra")

PLAN_SIGNERS = {"api", "planner", "approval"}
# notices re-signs a reminder's approval link; notify signs view links with their own key only.
LINK_KEY_READERS = {"api", "approval", "notices"}


def _roles(synthesis: Synthesis, brand: str) -> dict[str, str]:
    resources = synthesis.template_json(brand)["Resources"]
    functions = synthesis.stacks[brand].functions.by_name
    return {
        name: resources[synthesis.logical_id(brand, function)]["Properties"]["Role"]["Fn::GetAtt"][0]
        for name, function in functions.items()
    }


def _actions(resources: dict[str, Any], role_id: str) -> set[str]:
    actions: set[str] = set()
    for statement in statements_of_role(resources, role_id):
        found = statement["Action"]
        actions.update([found] if isinstance(found, str) else found)
    return actions


def test_only_the_functions_that_fix_plans_may_sign_them(synthesis: Synthesis, brand_name: str) -> None:
    resources = synthesis.template_json(brand_name)["Resources"]
    for name, role_id in _roles(synthesis, brand_name).items():
        actions = _actions(resources, role_id)
        assert ("kms:Sign" in actions) == (name in PLAN_SIGNERS), name
        assert not {"kms:CreateKey", "kms:UpdateAlias", "kms:ScheduleKeyDeletion"} & actions, name


def test_the_planner_cannot_read_the_approval_link_key(synthesis: Synthesis, brand_name: str) -> None:
    resources = synthesis.template_json(brand_name)["Resources"]
    link_key = synthesis.logical_id(brand_name, synthesis.stacks[brand_name].secrets.link_signing_key)
    for name, role_id in _roles(synthesis, brand_name).items():
        reads = any(
            # A statement may name NotResource instead (SMS: "anything but a topic"), never the key.
            "secretsmanager:GetSecretValue" in statement["Action"]
            and link_key in str(statement.get("Resource", ""))
            for statement in statements_of_role(resources, role_id)
        )
        assert reads == (name in LINK_KEY_READERS), name


def test_the_plan_signing_key_is_asymmetric(synthesis: Synthesis, brand_name: str) -> None:
    keys = of_type(synthesis.template_json(brand_name)["Resources"], "AWS::KMS::Key")
    signing = [key for key in keys.values() if key["Properties"].get("KeyUsage") == "SIGN_VERIFY"]
    assert len(signing) == 1
    assert signing[0]["Properties"]["KeySpec"] == "ECC_NIST_P256"


def test_anchors_are_write_once_for_the_audit_retention(synthesis: Synthesis, brand_name: str) -> None:
    template = synthesis.template_json(brand_name)["Resources"]
    (bucket,) = of_type(template, "AWS::S3::Bucket").values()
    lock = bucket["Properties"]["ObjectLockConfiguration"]
    assert bucket["Properties"]["ObjectLockEnabled"] is True
    assert lock["Rule"]["DefaultRetention"]["Mode"] == "COMPLIANCE"
    assert lock["Rule"]["DefaultRetention"]["Days"] >= 365
    assert bucket["DeletionPolicy"] == "Retain"
    (policy,) = of_type(template, "AWS::S3::BucketPolicy").values()
    denied = [
        statement
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Deny" and statement["Action"] == "s3:PutObject"
    ]
    assert denied and denied[0]["Condition"] == {"Null": {"s3:if-none-match": "true"}}


def test_no_role_may_remove_or_rewrite_an_audit_anchor(synthesis: Synthesis, brand_name: str) -> None:
    resources = synthesis.template_json(brand_name)["Resources"]
    for name, role_id in _roles(synthesis, brand_name).items():
        actions = _actions(resources, role_id)
        assert not {action for action in actions if action.startswith("s3:Delete")}, name
        assert not {"s3:PutObjectRetention", "s3:BypassGovernanceRetention", "s3:PutBucketPolicy"} & actions
        assert not {"dynamodb:UpdateItem", "dynamodb:DeleteItem"} & _audit_table_actions(
            synthesis, brand_name, resources, role_id
        ), name


def _audit_table_actions(
    synthesis: Synthesis, brand: str, resources: dict[str, Any], role_id: str
) -> set[str]:
    audit = synthesis.logical_id(brand, synthesis.stacks[brand].data.audit)
    actions: set[str] = set()
    for statement in statements_of_role(resources, role_id):
        if audit in str(statement.get("Resource", "")):  # a NotResource statement (SMS) names no table
            found = statement["Action"]
            actions.update([found] if isinstance(found, str) else found)
    return actions
