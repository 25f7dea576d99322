"""The functions: runtime, tracing, logs, environment, concurrency, and least privilege per role."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra.functions import FUNCTIONS
from tests.infra.conftest import Synthesis, iter_refs, of_type, resource_refs, statements_of_role, table_ids

pytestmark = pytest.mark.xdist_group("infra")

MUTATING = {"checkout", "payment", "fulfillment", "orders", "compensator"}
WRITES = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}
READS = {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:BatchGetItem"}

# The contract with the application, written out independently of infra/functions.py; the exact
# actions per table are tests/infra/test_attack_row07_least_privilege.py's.
EXPECTED_TABLES: dict[str, dict[str, str]] = {
    "api": {
        "goals": "write",
        "audit": "append",
        "idempotency": "write",
        "counters": "write",
        "schedules": "write",
    },
    "planner": {"goals": "write", "audit": "append"},
    "catalog": {"goals": "read"},
    # Reads an occurrence's schedule for its signed mandate (the mandate check).
    "validator": {"goals": "write", "audit": "append", "counters": "write", "schedules": "read"},
    "approval": {"goals": "write", "audit": "append"},
    "notify": {"goals": "write", "audit": "append", "counters": "write"},
    "payment": {"goals": "write", "audit": "append", "idempotency": "write", "counters": "write"},
    "compensator": {"goals": "write", "audit": "append", "idempotency": "write", "counters": "write"},
    **{
        name: {"goals": "write", "audit": "append", "idempotency": "write"}
        for name in ("checkout", "fulfillment", "orders")
    },
    "redelivery": {"goals": "write", "audit": "append"},
    # Order links, event claims and tracking (item updates only), and the order events in the audit;
    # a returned order's daily-limit hold given back.
    "tracking": {"goals": "write", "audit": "append", "counters": "write"},
    "notices": {"goals": "write", "audit": "append"},
    # Takes each due occurrence in as a goal and records it on its schedule.
    "occurrences": {"goals": "write", "audit": "append", "schedules": "write"},
    # Audits a rollout change on the brand's rollout chain; never a goal (tests/infra/test_rollout.py).
    "guard": {"audit": "append"},
}
EXPECTED_SECRETS: dict[str, set[str]] = {
    # The UCP signing keys: every function that calls the merchant signs; the api publishes the public halves.
    # The api verifies approval links and the shopper's view links (each with its own key ring).
    "api": {"link_signing_key", "view_link_key", "ucp_signing_keys"},
    # Every function that calls the merchant presents the brand's credential for it.
    # Never the approval-link key: plan snapshots are signed with the plan-signing KMS key.
    "planner": {"llm_api_key", "ucp_signing_keys", "merchant_credentials"},
    "catalog": {"ucp_signing_keys", "merchant_credentials"},
    "approval": {"link_signing_key"},
    # The shopper's view link in receipts and outcome notices: the view links' key, never the approval one.
    "notify": {"view_link_key"},
    # A reminder carries the approval's own signed link; outcome notices carry a view link.
    "notices": {"link_signing_key", "view_link_key"},
    **{name: {"merchant_credentials", "ucp_signing_keys"} for name in MUTATING},
    # The tracking sweep reads orders at merchants that do not push their events (Get Order).
    "tracking": {"merchant_credentials", "ucp_signing_keys"},
}
# The compensator tells the shopper of a return it filed (an undo after shipment).
# The tracking sweep tells the shopper of shipment and delivery.
PUBLISHERS = {"approval", "notify", "notices", "compensator", "tracking"}


def _function_ids(synthesis: Synthesis, brand: str) -> dict[str, str]:
    functions = synthesis.stacks[brand].functions.by_name
    return {name: synthesis.logical_id(brand, function) for name, function in functions.items()}


def _role_of(resources: dict[str, dict[str, Any]], function_id: str) -> str:
    role_id: str = resources[function_id]["Properties"]["Role"]["Fn::GetAtt"][0]
    return role_id


def _access(resources: dict[str, dict[str, Any]], role_id: str) -> dict[str, set[str]]:
    """Resource logical id -> actions the role may perform on it."""
    access: dict[str, set[str]] = {}
    for statement in statements_of_role(resources, role_id):
        assert statement["Effect"] == "Allow"
        for resource in resource_refs(statement):
            for ref in set(iter_refs(resource)) or {str(resource)}:
                access.setdefault(ref, set()).update(statement["Action"])
    return access


def _table_mode(actions: set[str]) -> str:
    assert "dynamodb:Scan" not in actions and "dynamodb:BatchWriteItem" not in actions, actions
    if "dynamodb:UpdateItem" in actions:
        return "write"
    if "dynamodb:PutItem" in actions:
        assert not actions & (WRITES - {"dynamodb:PutItem"}), actions
        return "append"
    assert not actions & WRITES, actions
    return "read"


def test_every_function_is_python_on_graviton_with_the_core_layer_and_active_tracing(
    template: Template,
    resources: dict[str, dict[str, Any]],
    stack: Any,
    synthesis: Synthesis,
    brand_name: str,
) -> None:
    template.all_resources_properties(
        "AWS::Lambda::Function",
        {"Runtime": "python3.14", "Architectures": ["arm64"], "TracingConfig": {"Mode": "Active"}},
    )
    functions = of_type(resources, "AWS::Lambda::Function")
    assert len(functions) == len(FUNCTIONS) + 1  # and the link-key rotation
    layer_id = synthesis.logical_id(brand_name, stack.functions.layer)
    for function in functions.values():
        properties = function["Properties"]
        assert properties["Runtime"] == "python3.14"
        assert properties["Architectures"] == ["arm64"]
        assert properties["Handler"] == "app.handler"
        assert properties["Layers"] == [{"Ref": layer_id}]
        assert properties["TracingConfig"] == {"Mode": "Active"}
    layer = resources[layer_id]["Properties"]
    assert layer["CompatibleRuntimes"] == ["python3.14"]
    assert layer["CompatibleArchitectures"] == ["arm64"]


def test_each_function_has_its_own_role_and_no_managed_policy(resources: dict[str, dict[str, Any]]) -> None:
    functions = of_type(resources, "AWS::Lambda::Function")
    roles = [_role_of(resources, function_id) for function_id in functions]
    assert len(set(roles)) == len(roles)
    for role_id in roles:
        role = resources[role_id]["Properties"]
        assert "ManagedPolicyArns" not in role
        assert role["AssumeRolePolicyDocument"]["Statement"] == [
            {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}}
        ]


def test_each_function_logs_to_its_own_encrypted_log_group_with_retention(
    resources: dict[str, dict[str, Any]],
) -> None:
    functions = of_type(resources, "AWS::Lambda::Function")
    log_groups = [f["Properties"]["LoggingConfig"]["LogGroup"]["Ref"] for f in functions.values()]
    assert len(set(log_groups)) == len(functions)
    for function_id, log_group_id in zip(functions, log_groups, strict=True):
        log_group = resources[log_group_id]["Properties"]
        assert log_group["RetentionInDays"] == 30
        assert "KmsKeyId" in log_group
        writes = [
            s
            for s in statements_of_role(resources, _role_of(resources, function_id))
            if "logs:PutLogEvents" in s["Action"]
        ]
        assert [resource_refs(s) for s in writes] == [[{"Fn::GetAtt": [log_group_id, "Arn"]}]]


def test_powertools_and_brand_environment(synthesis: Synthesis, brand_name: str) -> None:
    resources = synthesis.template_json(brand_name)["Resources"]
    data = synthesis.stacks[brand_name].data
    tables = {
        name: synthesis.logical_id(brand_name, getattr(data, name))
        for name in ("goals", "audit", "idempotency", "counters")
    }
    for name, function_id in _function_ids(synthesis, brand_name).items():
        environment = resources[function_id]["Properties"]["Environment"]["Variables"]
        assert environment["POWERTOOLS_SERVICE_NAME"] == f"cartpilot-{brand_name}", name
        assert environment["POWERTOOLS_METRICS_NAMESPACE"] == f"CartPilot/{brand_name}"
        assert environment["LOG_LEVEL"] == "INFO"
        assert environment["CARTPILOT_BRAND"] == brand_name
        assert environment["CARTPILOT_BRANDS_DIR"] == "/opt/brands"
        assert environment["GOALS_TABLE"] == {"Ref": tables["goals"]}
        assert environment["AUDIT_TABLE"] == {"Ref": tables["audit"]}
        assert environment["IDEMPOTENCY_TABLE"] == {"Ref": tables["idempotency"]}
        assert environment["COUNTERS_TABLE"] == {"Ref": tables["counters"]}


def test_each_function_is_told_only_about_the_secrets_topics_and_machines_it_may_use(
    synthesis: Synthesis, brand_name: str
) -> None:
    resources = synthesis.template_json(brand_name)["Resources"]
    for name, function_id in _function_ids(synthesis, brand_name).items():
        environment = resources[function_id]["Properties"]["Environment"]["Variables"]
        secrets = {
            variable
            for variable in (
                "LINK_SIGNING_SECRET_ID",
                "VIEW_LINK_SECRET_ID",
                "SIGNING_KEYS_SECRET_ID",
                "MERCHANT_CREDENTIALS_SECRET_ID",
                "LLM_API_KEY_SECRET_ID",
            )
            if variable in environment
        }
        expected = {
            {
                "link_signing_key": "LINK_SIGNING_SECRET_ID",
                "view_link_key": "VIEW_LINK_SECRET_ID",
                "ucp_signing_keys": "SIGNING_KEYS_SECRET_ID",
                "merchant_credentials": "MERCHANT_CREDENTIALS_SECRET_ID",
                "llm_api_key": "LLM_API_KEY_SECRET_ID",
            }[s]
            for s in EXPECTED_SECRETS.get(name, set())
        }
        assert secrets == expected, name
        assert ("NOTIFY_TOPIC_ARN" in environment) == (name in PUBLISHERS), name
        assert ("STAFF_TOPIC_ARN" in environment) == (name in {"approval", "notices"}), name
        assert ("STATE_MACHINE_ARN" in environment) == (name in {"api", "redelivery", "occurrences"}), name
        approval_links = {"api", "approval", "notify", "notices"}
        assert ("APPROVAL_BASE_URL" in environment) == (name in approval_links), name
        talks_to_merchant = name in MUTATING | {"planner", "catalog", "tracking"}
        assert ("MERCHANT_URL" in environment) == talks_to_merchant, name
        # UCP-Agent names our profile, served by the api: whoever signs or serves it knows its URL.
        assert ("PUBLIC_API_URL" in environment) == (talks_to_merchant or name == "api"), name
        if name == "api":
            # Without -c publicApiUrl, the profile is served from the API's own stage URL.
            assert environment["PUBLIC_API_URL"] == environment["APPROVAL_BASE_URL"]


def test_merchant_url_comes_from_the_brand_file(synthesis: Synthesis) -> None:
    resources = synthesis.template_json("harbor")["Resources"]
    checkout = _function_ids(synthesis, "harbor")["checkout"]
    assert (
        resources[checkout]["Properties"]["Environment"]["Variables"]["MERCHANT_URL"]
        == "https://commerce.harbor.example"
    )


def test_mutating_connectors_have_bounded_concurrency(synthesis: Synthesis, brand_name: str) -> None:
    resources = synthesis.template_json(brand_name)["Resources"]
    for name, function_id in _function_ids(synthesis, brand_name).items():
        reserved = resources[function_id]["Properties"].get("ReservedConcurrentExecutions")
        assert reserved == (5 if name in MUTATING else None), name


def test_table_access_is_exactly_the_contract_and_audit_is_append_only(
    synthesis: Synthesis, brand_name: str
) -> None:
    resources = synthesis.template_json(brand_name)["Resources"]
    tables = table_ids(synthesis, brand_name)
    for name, function_id in _function_ids(synthesis, brand_name).items():
        access = _access(resources, _role_of(resources, function_id))
        granted = {tables[ref]: _table_mode(actions) for ref, actions in access.items() if ref in tables}
        assert granted == EXPECTED_TABLES[name], name
        for ref, actions in access.items():
            if ref in tables:
                assert actions & READS, (name, tables[ref])


def test_secrets_are_readable_only_by_the_functions_that_need_them(
    synthesis: Synthesis, brand_name: str
) -> None:
    resources = synthesis.template_json(brand_name)["Resources"]
    secrets = synthesis.stacks[brand_name].secrets
    secret_ids = {
        synthesis.logical_id(brand_name, getattr(secrets, name)): name
        for name in (
            "link_signing_key",
            "view_link_key",
            "ucp_signing_keys",
            "merchant_credentials",
            "llm_api_key",
        )
    }
    for name, function_id in _function_ids(synthesis, brand_name).items():
        access = _access(resources, _role_of(resources, function_id))
        readable = {secret_ids[ref] for ref in access if ref in secret_ids}
        assert readable == EXPECTED_SECRETS.get(name, set()), name
        for ref in readable & access.keys():
            assert access[ref] == {"secretsmanager:GetSecretValue"}
        assert not any(
            action.startswith("secretsmanager:")
            for ref, actions in access.items()
            if ref not in secret_ids
            for action in actions
        ), name


def test_the_read_only_catalog_connector_can_change_nothing(synthesis: Synthesis, brand_name: str) -> None:
    resources = synthesis.template_json(brand_name)["Resources"]
    catalog = _function_ids(synthesis, brand_name)["catalog"]
    actions = {
        action for actions in _access(resources, _role_of(resources, catalog)).values() for action in actions
    }
    assert not actions & WRITES
    # It reads the UCP signing keys to sign its requests (checked above), and writes no secret.
    assert not {a for a in actions if a.startswith("secretsmanager:")} - {
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
    }
    assert not {a for a in actions if a.split(":")[0] in {"sns", "ses", "states", "lambda"}}
    assert not {"kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"} & actions


def test_only_the_notifying_functions_publish(synthesis: Synthesis, brand_name: str) -> None:
    resources = synthesis.template_json(brand_name)["Resources"]
    notifications = synthesis.stacks[brand_name].notifications
    topic = synthesis.logical_id(brand_name, notifications.topic)
    staff_topic = synthesis.logical_id(brand_name, notifications.staff_topic)
    # The rollout guard, and only it, tells the brand's operators on the alarm topic.
    alarm_topic = synthesis.logical_id(brand_name, synthesis.stacks[brand_name].monitoring.alarm_topic)
    for name, function_id in _function_ids(synthesis, brand_name).items():
        access = _access(resources, _role_of(resources, function_id))
        assert ("sns:Publish" in access.pop(alarm_topic, set())) == (name == "guard"), name
        # Text messages to phones (the api's one-time codes) are not topics: tests/infra/test_step_up.py.
        publishes = any(
            "sns:Publish" in actions for ref, actions in access.items() if not ref.startswith("NOT ")
        )
        assert publishes == (name in PUBLISHERS), name
        if publishes:
            # Only the approval function (and the reminder of a staff approval) reaches the staff channel.
            expected = [topic, staff_topic] if name in {"approval", "notices"} else [topic]
            published = sorted(ref for ref, actions in access.items() if "sns:Publish" in actions)
            assert published == sorted(expected)


def test_only_the_api_drives_the_order_flow(synthesis: Synthesis, brand_name: str) -> None:
    """The redelivery sweep only answers task tokens (tests/infra/test_redelivery.py)."""
    resources = synthesis.template_json(brand_name)["Resources"]
    machine = synthesis.logical_id(brand_name, synthesis.stacks[brand_name].order_flow.state_machine)
    for name, function_id in _function_ids(synthesis, brand_name).items():
        statements = [
            s
            for s in statements_of_role(resources, _role_of(resources, function_id))
            if any(a.startswith("states:") for a in s["Action"])
        ]
        if name == "redelivery":
            continue
        if name == "occurrences":
            # The occurrence sweep starts an occurrence's flow, nothing more (tests/infra/test_schedules.py).
            assert [(s["Action"], s["Resource"]) for s in statements] == [
                (["states:StartExecution"], {"Ref": machine})
            ]
            continue
        if name != "api":
            assert statements == [], name
            continue
        on_machine = {a for s in statements if resource_refs(s) == [{"Ref": machine}] for a in s["Action"]}
        assert on_machine == {
            "states:StartExecution",
            "states:SendTaskSuccess",
            "states:SendTaskFailure",
        }
        # Nothing the api calls reads executions or sends heartbeats: no grant for either.
        assert {a for s in statements for a in s["Action"]} == on_machine


def test_only_the_api_starts_the_undo_flow_and_nothing_touches_the_step_loop(
    synthesis: Synthesis, brand_name: str
) -> None:
    """A shopper's undo request (POST /goals/{id}/undo) starts the undo flow; the step loop is started
    by the order flow alone (tests/infra/test_orchestration.py)."""
    resources = synthesis.template_json(brand_name)["Resources"]
    stack = synthesis.stacks[brand_name]
    undo = synthesis.logical_id(brand_name, stack.undo_flow.state_machine)
    steps = synthesis.logical_id(brand_name, stack.order_steps.state_machine)
    for name, function_id in _function_ids(synthesis, brand_name).items():
        statements = statements_of_role(resources, _role_of(resources, function_id))
        on_undo = {a for s in statements if {"Ref": undo} in resource_refs(s) for a in s["Action"]}
        assert on_undo == ({"states:StartExecution"} if name == "api" else set()), name
        assert not any(steps in set(iter_refs(resource_refs(s))) for s in statements), name
        assert not any("OrderSteps" in str(resource_refs(s)) for s in statements), name
        variables = resources[function_id]["Properties"]["Environment"]["Variables"]
        if name == "api":
            assert variables["UNDO_STATE_MACHINE_ARN"] == {"Ref": undo}
        else:
            assert "UNDO_STATE_MACHINE_ARN" not in variables, name


def test_wildcard_resources_are_only_the_actions_aws_cannot_scope(
    resources: dict[str, dict[str, Any]],
) -> None:
    unscopable = {
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "secretsmanager:GetRandomPassword",
        "logs:CreateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:DescribeLogGroups",
        "logs:DescribeResourcePolicies",
        "logs:GetLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:UpdateLogDelivery",
    }
    for policy in of_type(resources, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement.get("Resource") == "*":
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                assert set(actions) <= unscopable, actions
