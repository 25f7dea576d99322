"""Issue 11 row 7 (least privilege, the DynamoDB half): each role may call what its code calls, no more.

The attack was read off the templates: every role could overwrite audit records, scan and delete from
the goals table, and held grants nothing called. IAM exists only on AWS, so this attack is checked where
IAM is defined, in the synthesized templates (every brand's), not on the local stack; the local stack's
own check of each call against the same declaration is row 8's (tests/e2e/test_attack_row08_*).

The expected actions are written out here, from what the adapters in ``cartpilot.adapters.aws`` call,
independently of ``infra/permissions.py``: a widened declaration fails this test too.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import Synthesis, iter_refs, of_type, resource_refs, statements_of_role, table_ids

pytestmark = pytest.mark.xdist_group("infra")

GET, PUT, UPDATE, DELETE = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
)
QUERY, BATCH_GET, CHECK = "dynamodb:Query", "dynamodb:BatchGetItem", "dynamodb:ConditionCheckItem"

ITEMS_CREATE = {GET, PUT, UPDATE}  # schedules_table: put, get, conditional updates
ITEMS_UPDATE = {GET, UPDATE}
# goals_table: a goal is read as its head (GetItem) and its parts (BatchGetItem); parts are written
# by conditional UpdateItem; goals_table.create and approvals_table.create put.
GOALS_CREATE = ITEMS_CREATE | {BATCH_GET}
GOALS_UPDATE = ITEMS_UPDATE | {BATCH_GET}
AUDIT_APPEND = {QUERY, PUT}  # audit_table: conditional put, query the chain
IDEMPOTENCY = {GET, PUT, UPDATE, DELETE}  # Powertools' DynamoDB persistence layer
COUNTERS = {BATCH_GET, UPDATE, CHECK}  # counters_table: batch read, transactional updates

EXPECTED: dict[str, dict[str, set[str]]] = {
    # The api re-validates a reduced approval against the shopper's recent orders (row 8).
    # It also takes schedules in and pauses, resumes and cancels them (schedules_table: put, updates),
    # and lists a shopper's schedules (Query on the index by user only).
    "api": {
        "goals": GOALS_CREATE,
        "audit": AUDIT_APPEND,
        "idempotency": IDEMPOTENCY,
        "counters": COUNTERS,
        "schedules": ITEMS_CREATE | {QUERY},
    },
    "planner": {"goals": GOALS_UPDATE, "audit": AUDIT_APPEND},
    "catalog": {"goals": {GET, BATCH_GET}},
    # Reads an occurrence's schedule for its signed mandate (schedules_table.get), nothing more.
    "validator": {"goals": GOALS_UPDATE, "audit": AUDIT_APPEND, "counters": COUNTERS, "schedules": {GET}},
    "approval": {"goals": GOALS_CREATE, "audit": AUDIT_APPEND},
    "notify": {"goals": GOALS_UPDATE, "audit": AUDIT_APPEND, "counters": COUNTERS},
    # A merchant total above the approved one must still fit the limits; an undo gives its hold back.
    **{
        name: {"goals": GOALS_UPDATE, "audit": AUDIT_APPEND, "idempotency": IDEMPOTENCY, "counters": COUNTERS}
        for name in ("payment", "compensator")
    },
    **{
        name: {"goals": GOALS_UPDATE, "audit": AUDIT_APPEND, "idempotency": IDEMPOTENCY}
        for name in ("checkout", "fulfillment", "orders")
    },
    # Query on the sparse index of undelivered decisions only (tests/infra/test_redelivery.py).
    "redelivery": {"goals": GOALS_UPDATE | {QUERY}, "audit": AUDIT_APPEND},
    # Takes each due occurrence in as a goal; Query on the schedules' sparse index of due ones only.
    "occurrences": {"goals": GOALS_CREATE, "audit": AUDIT_APPEND, "schedules": ITEMS_UPDATE | {QUERY}},
    # Query on the sparse indexes of due notices and pending reminders only (test_notifications_email.py).
    "notices": {"goals": GOALS_UPDATE | {QUERY}, "audit": AUDIT_APPEND},
    # Links, claims and tracking by UpdateItem; Query on the sparse index of open orders only
    # (tests/infra/test_order_events.py); a returned order gives its daily-limit hold back.
    "tracking": {"goals": GOALS_UPDATE | {QUERY}, "audit": AUDIT_APPEND, "counters": COUNTERS},
    # Audits a rollout change on the brand's rollout chain; it never touches a goal.
    "guard": {"audit": AUDIT_APPEND},
}
NEVER_ON_AUDIT = {
    UPDATE,
    DELETE,
    "dynamodb:BatchWriteItem",
    "dynamodb:PartiQLUpdate",
    "dynamodb:PartiQLDelete",
}


def _roles(synthesis: Synthesis, brand: str) -> dict[str, str]:
    resources = synthesis.template_json(brand)["Resources"]
    functions = synthesis.stacks[brand].functions.by_name
    return {
        name: resources[synthesis.logical_id(brand, function)]["Properties"]["Role"]["Fn::GetAtt"][0]
        for name, function in functions.items()
    }


def _grants(resources: dict[str, dict[str, Any]], role_id: str) -> set[tuple[str, str]]:
    """(action, resource) pairs a role is allowed: a logical id, or the resource's text if it names none."""
    pairs: set[tuple[str, str]] = set()
    for statement in statements_of_role(resources, role_id):
        assert statement["Effect"] == "Allow"
        # Conditions only narrow: the brand key through Secrets Manager, the signing key by its alias,
        # object writes that must not overwrite.
        assert "Condition" not in statement or all(a.startswith(("kms:", "s3:")) for a in statement["Action"])
        for resource in resource_refs(statement):
            refs = {ref for ref in iter_refs(resource) if not ref.startswith("AWS::")}
            # A path under a resource (an index, a prefix of objects) stays part of what is granted.
            joined = resource.get("Fn::Join", ["", []])[1] if isinstance(resource, dict) else []
            path = "".join(part for part in joined if isinstance(part, str)) if refs else ""
            refs = {ref + path for ref in refs} or {str(resource)}
            pairs |= {(action, ref) for action in statement["Action"] for ref in refs}
    return pairs


def test_each_role_has_exactly_the_dynamodb_actions_its_code_calls(
    synthesis: Synthesis, brand_name: str
) -> None:
    resources = synthesis.template_json(brand_name)["Resources"]
    tables = table_ids(synthesis, brand_name)
    for name, role_id in _roles(synthesis, brand_name).items():
        granted: dict[str, set[str]] = {}
        for action, ref in _grants(resources, role_id):
            if action.startswith("dynamodb:"):
                table = ref.split("/")[0]  # a table, or an index of it
                assert table in tables, (name, action, ref)
                granted.setdefault(tables[table], set()).add(action)
        assert granted == EXPECTED[name], name
        assert not granted.get("audit", set()) & NEVER_ON_AUDIT, name


def test_no_role_may_scan_or_rewrite_the_business_records(synthesis: Synthesis, brand_name: str) -> None:
    resources = synthesis.template_json(brand_name)["Resources"]
    for policy in of_type(resources, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert not {a for a in actions if a.startswith("dynamodb:") and "*" in a}, actions
            assert "dynamodb:Scan" not in actions
            assert "dynamodb:BatchWriteItem" not in actions


def test_the_template_grants_what_the_declaration_says_and_nothing_else(
    synthesis: Synthesis, brand_name: str
) -> None:
    """The local stack enforces ``infra/permissions.py``; this proves that is what deploys."""
    from cartpilot.adapters.aws.approvals_table import PENDING_DELIVERY_INDEX
    from cartpilot.adapters.aws.notices_table import NOTICES_DUE_INDEX, REMINDERS_DUE_INDEX
    from cartpilot.adapters.aws.order_events_table import OPEN_TRACKING_INDEX
    from cartpilot.adapters.aws.schedules_table import DUE_SCHEDULES_INDEX, USER_SCHEDULES_INDEX
    from infra.permissions import OBJECT_PREFIXES, Resource, policies

    resources = synthesis.template_json(brand_name)["Resources"]
    stack = synthesis.stacks[brand_name]
    ids = {
        Resource.GOALS_TABLE: stack.data.goals,
        Resource.AUDIT_TABLE: stack.data.audit,
        Resource.IDEMPOTENCY_TABLE: stack.data.idempotency,
        Resource.COUNTERS_TABLE: stack.data.counters,
        Resource.LINK_SIGNING_KEY: stack.secrets.link_signing_key,
        Resource.VIEW_LINK_KEY: stack.secrets.view_link_key,
        Resource.UCP_SIGNING_KEYS: stack.secrets.ucp_signing_keys,
        Resource.MERCHANT_CREDENTIALS: stack.secrets.merchant_credentials,
        Resource.LLM_API_KEY: stack.secrets.llm_api_key,
        Resource.NOTIFY_TOPIC: stack.notifications.topic,
        Resource.ORDER_FLOW: stack.order_flow.state_machine,
        Resource.UNDO_FLOW: stack.undo_flow.state_machine,
        Resource.STAFF_TOPIC: stack.notifications.staff_topic,
        # Objects under a prefix each (anchors; published keys), and the bucket itself (listing versions).
        Resource.AUDIT_BUCKET: stack.data.anchors.bucket,
        Resource.PLAN_KEYS: stack.data.anchors.bucket,
        # The index's ARN is the table's plus ``/index/<name>`` (its exact text: test_redelivery.py).
        Resource.PENDING_DELIVERY_INDEX: stack.data.goals,
        Resource.SCHEDULES_TABLE: stack.data.schedules,
        Resource.DUE_SCHEDULES_INDEX: stack.data.schedules,
        Resource.USER_SCHEDULES_INDEX: stack.data.schedules,
        Resource.NOTICES_DUE_INDEX: stack.data.goals,
        Resource.REMINDERS_DUE_INDEX: stack.data.goals,
        Resource.OPEN_TRACKING_INDEX: stack.data.goals,
        Resource.OPS_TOPIC: stack.monitoring.alarm_topic,
    }
    logical = {resource: synthesis.logical_id(brand_name, construct) for resource, construct in ids.items()}
    # Each sparse index the sweeps query, by the name its adapter queries.
    index_names = {
        Resource.PENDING_DELIVERY_INDEX: PENDING_DELIVERY_INDEX,
        Resource.DUE_SCHEDULES_INDEX: DUE_SCHEDULES_INDEX,
        Resource.USER_SCHEDULES_INDEX: USER_SCHEDULES_INDEX,
        Resource.NOTICES_DUE_INDEX: NOTICES_DUE_INDEX,
        Resource.REMINDERS_DUE_INDEX: REMINDERS_DUE_INDEX,
        Resource.OPEN_TRACKING_INDEX: OPEN_TRACKING_INDEX,
    }
    # Granted by ARN patterns that reference no resource of their own: the executions and the SES sender.
    patterns = {
        Resource.ORDER_FLOW_EXECUTIONS: f":execution:CartPilot-{brand_name}-OrderFlow:*",
        Resource.SES_IDENTITY: f":identity/{stack.brand.ses_identity}",
        # Any key the plan-signing alias names (a condition on the statement), so rotation needs no deploy.
        Resource.PLAN_SIGNING_KEY: ":key/*",
        # Text messages to phone numbers: anything that is not a topic.
        Resource.SMS: "NOT arn:*:sns:*:*:*",
    }
    assert stack.data.goals.encryption_key is not None
    key = synthesis.logical_id(brand_name, stack.data.goals.encryption_key)
    declared = policies(ses_identity=stack.brand.ses_identity is not None)
    for name, role_id in _roles(synthesis, brand_name).items():
        expected = set()
        for statement in declared[name]:
            target = logical.get(statement.resource)
            for action in statement.actions:
                if action.startswith("appconfig:"):
                    continue  # test_rollout.py
                path = ""
                if statement.resource in index_names:
                    path = f"/index/{index_names[statement.resource]}"
                elif statement.resource in OBJECT_PREFIXES and action != "s3:ListBucketVersions":
                    path = f"/{OBJECT_PREFIXES[statement.resource]}*"
                expected.add((action, f"{target}{path}" if target else patterns[statement.resource]))
        actual = set()
        for action, ref in _grants(resources, role_id):
            service = action.split(":")[0]
            if ref == key or service in {"logs", "xray"}:
                continue  # the platform's part: encryption at rest, the function's log group, tracing
            if service == "appconfig":
                continue  # ARNs built of several ids each: compared statement by statement in test_rollout.py
            pattern = next((p for p in patterns.values() if p in ref), None)
            actual.add((action, pattern or ref))
        assert actual == expected, name
