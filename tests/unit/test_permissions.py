"""The declaration of what each function may call, and the local stack's check of each call against it."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from cartpilot_local.iam import PolicyEnforcement, acting_as, calling_function, local_enforcement, requested
from infra.function_specs import FUNCTIONS
from infra.permissions import ENVIRONMENT, Resource, Statement, allows, policies, statements_for

FORBIDDEN_EVERYWHERE = {"dynamodb:Scan", "dynamodb:BatchWriteItem", "dynamodb:DescribeTable", "dynamodb:*"}


def _actions_on(name: str, resource: Resource) -> set[str]:
    return {a for s in policies()[name] if s.resource is resource for a in s.actions}


def test_no_function_may_scan_batch_write_or_rewrite_the_audit():
    for name, statements in policies().items():
        actions = {a for s in statements for a in s.actions}
        assert not actions & FORBIDDEN_EVERYWHERE, name
        assert not _actions_on(name, Resource.AUDIT_TABLE) & {"dynamodb:UpdateItem", "dynamodb:DeleteItem"}, (
            name
        )
        assert "dynamodb:DeleteItem" not in _actions_on(name, Resource.GOALS_TABLE), name


def test_only_the_functions_that_create_goals_or_approvals_may_put_them():
    creators = {name for name in policies() if "dynamodb:PutItem" in _actions_on(name, Resource.GOALS_TABLE)}
    # The occurrence sweep takes a schedule's occurrences in as goals, through the same intake.
    assert creators == {"api", "approval", "occurrences"}
    # A goal is its head item plus its write-once parts, read together.
    assert _actions_on("catalog", Resource.GOALS_TABLE) == {"dynamodb:GetItem", "dynamodb:BatchGetItem"}


def test_only_the_link_signers_read_the_link_key_and_only_the_api_drives_the_flow():
    # The approval-link key: the api (verifies), approval (signs) and notices (re-signs reminder links).
    link_signers = {n for n in policies() if _actions_on(n, Resource.LINK_SIGNING_KEY)}
    assert link_signers == {"api", "approval", "notices"}
    # View links have their own key: notify and notices sign them, the api verifies (and signs) them.
    view_signers = {n for n in policies() if _actions_on(n, Resource.VIEW_LINK_KEY)}
    assert view_signers == {"api", "notify", "notices"}
    assert _actions_on("notify", Resource.VIEW_LINK_KEY) == {"secretsmanager:GetSecretValue"}
    drivers = {n for n in policies() if _actions_on(n, Resource.ORDER_FLOW)}
    assert drivers == {"api", "redelivery", "occurrences"}
    # The occurrence sweep starts an occurrence's flow and nothing else on it.
    assert _actions_on("occurrences", Resource.ORDER_FLOW) == {"states:StartExecution"}
    # The redelivery sweep only answers task tokens: it starts nothing and reads no execution.
    assert _actions_on("redelivery", Resource.ORDER_FLOW) == {
        "states:SendTaskSuccess",
        "states:SendTaskFailure",
    }
    assert {n for n in policies() if _actions_on(n, Resource.PENDING_DELIVERY_INDEX)} == {"redelivery"}


def test_ses_is_declared_only_where_the_brand_names_a_sender():
    notify = next(spec for spec in FUNCTIONS if spec.name == "notify")
    assert Resource.SES_IDENTITY not in {s.resource for s in statements_for(notify)}
    assert Resource.SES_IDENTITY in {s.resource for s in statements_for(notify, ses_identity=True)}


def test_every_resource_a_function_is_told_about_has_an_environment_variable():
    told = set(ENVIRONMENT.values())
    declared = {s.resource for statements in policies().values() for s in statements}
    # Executions are named by the machine's ARN; the SES sender by SES_IDENTITY, only where configured;
    # the pending-delivery index by the goals table's name and the index name the adapter queries;
    # the published plan keys by the audit bucket's name and their prefix; text messages by no name.
    assert declared - told <= {
        Resource.ORDER_FLOW_EXECUTIONS, Resource.SES_IDENTITY, Resource.PENDING_DELIVERY_INDEX,
        Resource.PLAN_KEYS, Resource.SMS,
        # The open-tracking index, like the pending-delivery one: the goals table's name and the index's.
        Resource.OPEN_TRACKING_INDEX,
        # The due-schedules and by-user indexes: the schedules table's name and the index's.
        Resource.DUE_SCHEDULES_INDEX, Resource.USER_SCHEDULES_INDEX,
        # The notices sweep's two indexes, likewise: the goals table's name and the index names.
        Resource.NOTICES_DUE_INDEX, Resource.REMINDERS_DUE_INDEX,
    }  # fmt: skip


def test_only_the_api_sends_one_time_codes_and_publishes_nothing_else():
    assert {n for n in policies() if _actions_on(n, Resource.SMS)} == {"api"}
    assert _actions_on("api", Resource.SMS) == {"sns:Publish"}
    assert not _actions_on("api", Resource.NOTIFY_TOPIC) and not _actions_on("api", Resource.STAFF_TOPIC)


def test_allows_needs_the_action_on_that_very_resource():
    statements = (Statement(frozenset({"dynamodb:GetItem"}), Resource.GOALS_TABLE),)
    assert allows(statements, "dynamodb:GetItem", Resource.GOALS_TABLE)
    assert not allows(statements, "dynamodb:GetItem", Resource.AUDIT_TABLE)
    assert not allows(statements, "dynamodb:PutItem", Resource.GOALS_TABLE)
    assert not allows(statements, "dynamodb:GetItem", None)


@pytest.mark.parametrize(
    ("service", "operation", "params", "expected"),
    [
        ("dynamodb", "GetItem", {"TableName": "goals"}, [("dynamodb:GetItem", "goals")]),
        (
            "dynamodb",
            "TransactWriteItems",
            {"TransactItems": [{"Update": {"TableName": "c"}}, {"ConditionCheck": {"TableName": "g"}}]},
            [("dynamodb:UpdateItem", "c"), ("dynamodb:ConditionCheckItem", "g")],
        ),
        ("dynamodb", "BatchGetItem", {"RequestItems": {"c": {}}}, [("dynamodb:BatchGetItem", "c")]),
        ("secretsmanager", "GetSecretValue", {"SecretId": "s"}, [("secretsmanager:GetSecretValue", "s")]),
        (
            "s3",
            "ListObjectVersions",
            {"Bucket": "b", "Prefix": "anchors/g-1/"},
            [("s3:ListBucketVersions", "b/anchors/")],
        ),
        (
            "s3",
            "GetObject",
            {"Bucket": "b", "Key": "plan-keys/k.der", "VersionId": "1"},
            [("s3:GetObjectVersion", "b/plan-keys/")],
        ),
        ("kms", "Sign", {"KeyId": "alias/x"}, [("kms:Sign", "alias/x")]),
        ("sts", "GetCallerIdentity", {}, [("sts:GetCallerIdentity", "")]),
    ],
)
def test_a_call_is_authorised_as_aws_authorises_it(service, operation, params, expected):
    assert requested(service, operation, params) == expected


def test_only_the_plan_signers_may_publish_a_plan_signing_key():
    """An audit writer that could publish a key of its own could sign forged snapshots with it."""
    environ = {"AUDIT_BUCKET": "audit-b", "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:1:stateMachine:f"}
    enforcement = local_enforcement(environ)
    key = {"Bucket": "audit-b", "Key": "plan-keys/mine.der", "Body": b"", "IfNoneMatch": "*"}
    anchor = {"Bucket": "audit-b", "Key": "anchors/g-1/0000000001.json", "Body": b"", "IfNoneMatch": "*"}
    for signer in ("api", "planner", "approval"):
        enforcement.check(signer, "s3", "PutObject", key)
    for writer in ("validator", "compensator", "notify", "orders", "payment", "redelivery"):
        enforcement.check(writer, "s3", "PutObject", anchor)
        with pytest.raises(ClientError) as refused:
            enforcement.check(writer, "s3", "PutObject", key)
        assert refused.value.response["Error"]["Code"] == "AccessDenied"


def _enforcement() -> PolicyEnforcement:
    return PolicyEnforcement(
        policies={"catalog": (Statement(frozenset({"dynamodb:GetItem"}), Resource.GOALS_TABLE),),
                  "api": (Statement(frozenset({"states:SendTaskSuccess"}), Resource.ORDER_FLOW),)},
        resources={"goals": Resource.GOALS_TABLE},
        order_flow=Resource.ORDER_FLOW,
        executions=Resource.ORDER_FLOW_EXECUTIONS,
        execution_prefix="arn:aws:states:us-east-1:123456789012:execution:flow:",
    )  # fmt: skip


def test_an_undeclared_call_fails_with_the_services_access_denied_error():
    enforcement = _enforcement()
    enforcement.check("catalog", "dynamodb", "GetItem", {"TableName": "goals"})
    enforcement.check("api", "states", "SendTaskSuccess", {"taskToken": "t", "output": "{}"})
    with pytest.raises(ClientError) as refused:
        enforcement.check("catalog", "dynamodb", "Scan", {"TableName": "goals"})
    error = refused.value.response["Error"]
    assert error["Code"] == "AccessDeniedException"
    assert "is not authorized to perform: dynamodb:Scan on resource: goals" in error["Message"]
    with pytest.raises(ClientError) as unknown:
        enforcement.check("catalog", "sns", "Publish", {"TopicArn": "arn:aws:sns:us-east-1:1:t"})
    assert unknown.value.response["Error"]["Code"] == "AuthorizationError"
    with pytest.raises(ClientError):
        enforcement.check("ghost", "dynamodb", "GetItem", {"TableName": "goals"})
    assert [(r.function, r.action) for r in enforcement.refusals] == [
        ("catalog", "dynamodb:Scan"), ("catalog", "sns:Publish"), ("ghost", "dynamodb:GetItem"),
    ]  # fmt: skip


def test_calls_are_attributed_to_the_function_only_inside_its_invocation():
    assert calling_function.get() is None
    with acting_as("planner"):
        assert calling_function.get() == "planner"
    assert calling_function.get() is None
