"""What each function may call on AWS: explicit IAM statements over the stack's named resources.

A function's spec (``infra/function_specs.py``) says what it touches; this module says which API
actions that means, action by action, from what the adapters in ``cartpilot.adapters.aws`` call:

- goals table (goals and approvals, ``goals_table.py``/``approvals_table.py``): GetItem, BatchGetItem
  (a goal's parts), UpdateItem, and PutItem for the two functions that create items; never Scan, DeleteItem or a batch write, and
  Query only on the sparse index of undelivered decisions, for the redelivery sweep, and on the
  sparse index of open polled orders, for the tracking sweep.
- audit table (``audit_table.py``): Query to read a goal's chain and PutItem to append (always with
  ``attribute_not_exists``); never UpdateItem or DeleteItem, so a record once written stays.
- idempotency table (Powertools' DynamoDB persistence layer): GetItem, PutItem, UpdateItem, and
  DeleteItem, with which Powertools clears the record of a failed attempt.
- counters table (``counters_table.py``): BatchGetItem to read the window, and the item actions of its
  TransactWriteItems (UpdateItem, ConditionCheckItem: IAM authorises a transaction per item).
- schedules table (``schedules_table.py``): the goals table's item actions (GetItem, UpdateItem, and
  PutItem for the api, which creates schedules), and Query only on its sparse index of due
  occurrences, for the occurrence sweep, and on its index by user, for the api (a shopper's
  schedules); a cancel is a status, so never DeleteItem.
- secrets: GetSecretValue on the one secret each reader needs (Powertools Parameters calls nothing else).
- audit anchors bucket (``audit_anchors.py``): every audit writer anchors each record (PutObject, always
  with ``If-None-Match``) and reads anchors back (ListBucketVersions, GetObject, GetObjectVersion);
  never DeleteObject. Object Lock keeps every version for the audit retention period regardless.
- plan-signing key (``plan_signer.py``): Sign and GetPublicKey, for the functions that fix plans only.

The CDK stack turns these statements into each role's policy; the local stack checks every call a
handler makes against them. Pure Python, no CDK, so the local stack reads it cheaply. Encryption at
rest (the brand key DynamoDB, SNS and Secrets Manager use on the caller's behalf), log writes and
X-Ray are the platform's part of a role, granted next to these in ``infra/functions.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cartpilot.adapters.aws.audit_anchors import ANCHORS_PREFIX, PLAN_KEYS_PREFIX
from infra.function_specs import FUNCTIONS, FunctionSpec, TableAccess


class Resource(StrEnum):
    """A resource of one brand's stack, by role; each stack maps it to its own ARN or name."""

    GOALS_TABLE = "goals-table"
    AUDIT_TABLE = "audit-table"
    IDEMPOTENCY_TABLE = "idempotency-table"
    COUNTERS_TABLE = "counters-table"
    LINK_SIGNING_KEY = "link-signing-key"
    # The shopper view links' key ring: a secret apart from the approval-link ring.
    VIEW_LINK_KEY = "view-link-key"
    UCP_SIGNING_KEYS = "ucp-signing-keys"
    MERCHANT_CREDENTIALS = "merchant-credentials"
    LLM_API_KEY = "llm-api-key"
    NOTIFY_TOPIC = "notify-topic"
    # The brand's staff channel, where staff-only approval links go.
    STAFF_TOPIC = "staff-topic"
    # The brand's verified SES sender, where brand.yaml names one.
    SES_IDENTITY = "ses-identity"
    ORDER_FLOW = "order-flow"
    # The short state machine a shopper's undo request starts once the order flow has ended.
    UNDO_FLOW = "undo-flow"
    # The asymmetric KMS key that signs plan snapshots (by its alias: a rotation moves the alias).
    PLAN_SIGNING_KEY = "plan-signing-key"
    # The S3 Object Lock bucket: the audit anchors (objects under anchors/) ...
    AUDIT_BUCKET = "audit-bucket"
    # ... and, in the same bucket under plan-keys/, the published plan-signing public keys, which
    # only the functions that sign may add to: a key an audit writer could publish would vouch for
    # snapshots it forged.
    PLAN_KEYS = "plan-keys"
    ORDER_FLOW_EXECUTIONS = "order-flow-executions"
    # The goals table's sparse index of decisions waiting for delivery (``approvals_table.py``).
    PENDING_DELIVERY_INDEX = "pending-delivery-index"
    # Text messages to phone numbers (one-time codes, ``adapters/aws/sms.py``): SNS authorises an
    # SMS on no resource ARN, so the grant is "anything that is not a topic" (NotResource).
    SMS = "sms"
    # The goals table's sparse indexes of status notices due and approvals awaiting a reminder
    # (``adapters/aws/notices_table.py``).
    NOTICES_DUE_INDEX = "notices-due-index"
    REMINDERS_DUE_INDEX = "reminders-due-index"
    # The goals table's sparse index of polled orders whose shipment may still move (``order_events_table.py``).
    OPEN_TRACKING_INDEX = "open-tracking-index"
    # Scheduled and recurring goals (``schedules_table.py``), and its sparse index of due occurrences.
    SCHEDULES_TABLE = "schedules-table"
    DUE_SCHEDULES_INDEX = "due-schedules-index"
    # ... and its index of every schedule by user (a shopper's schedules).
    USER_SCHEDULES_INDEX = "user-schedules-index"
    # The rollout flags (``infra/rollout.py``): one AppConfig feature-flags profile deployed to two
    # environments, the live one (monitored by the anomaly alarms) and the floor (no monitors, so no
    # rollback: ``cartpilot.rollout.floor``). Reading one is reading its configuration of the profile;
    # deploying to one names the environment.
    ROLLOUT_LIVE = "rollout-live"
    ROLLOUT_FLOOR = "rollout-floor"
    ROLLOUT_PROFILE = "rollout-profile"
    # Gradual with a bake for the live environment; all at once, no bake, for the floor.
    ROLLOUT_STRATEGY = "rollout-strategy"
    ROLLOUT_FLOOR_STRATEGY = "rollout-floor-strategy"
    # The brand's operators: the stack's alarm topic (``infra/monitoring.py``).
    OPS_TOPIC = "ops-topic"


# The two resources that are object prefixes of the audit bucket.
OBJECT_PREFIXES: dict[Resource, str] = {
    Resource.AUDIT_BUCKET: ANCHORS_PREFIX,
    Resource.PLAN_KEYS: PLAN_KEYS_PREFIX,
}

TABLES = frozenset({
    Resource.GOALS_TABLE, Resource.AUDIT_TABLE, Resource.IDEMPOTENCY_TABLE, Resource.COUNTERS_TABLE,
    Resource.SCHEDULES_TABLE,
})  # fmt: skip
SECRETS = frozenset({
    Resource.LINK_SIGNING_KEY, Resource.VIEW_LINK_KEY, Resource.UCP_SIGNING_KEYS, Resource.MERCHANT_CREDENTIALS,
    Resource.LLM_API_KEY,
})  # fmt: skip

ITEM_READ = frozenset({"dynamodb:GetItem"})
ITEM_UPDATE = ITEM_READ | {"dynamodb:UpdateItem"}
ITEM_CREATE = ITEM_UPDATE | {"dynamodb:PutItem"}
ITEM_ACTIONS: dict[TableAccess, frozenset[str]] = {
    TableAccess.READ: ITEM_READ,
    TableAccess.UPDATE: ITEM_UPDATE,
    TableAccess.READ_WRITE: ITEM_CREATE,
}
# A goal is read as its head and its parts (``goals_table.py``): one BatchGetItem for the parts.
# Parts are written with a conditional UpdateItem, so updating a goal needs no PutItem.
GOALS_ACTIONS: dict[TableAccess, frozenset[str]] = {
    access: actions | {"dynamodb:BatchGetItem"} for access, actions in ITEM_ACTIONS.items()
}
AUDIT_APPEND = frozenset({"dynamodb:Query", "dynamodb:PutItem"})
AUDIT_ANCHOR = frozenset({
    "s3:PutObject", "s3:GetObject", "s3:GetObjectVersion", "s3:ListBucketVersions",
})  # fmt: skip
PLAN_SIGN = frozenset({"kms:Sign", "kms:GetPublicKey"})
# Verifying plan signatures needs the published keys only: reading them, never adding one.
PLAN_KEYS_READ = frozenset({"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucketVersions"})
IDEMPOTENCY_RECORDS = frozenset({
    "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
})  # fmt: skip
ORDER_COUNTERS = frozenset({"dynamodb:BatchGetItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"})
SECRET_READ = frozenset({"secretsmanager:GetSecretValue"})
PUBLISH = frozenset({"sns:Publish"})
SEND_EMAIL = frozenset({"ses:SendEmail", "ses:SendRawEmail"})
# The api starts the flow and answers its task tokens (approvals, undo); IAM authorises the
# token calls on the state machine that issued them.
DRIVE_ORDER_FLOW = frozenset({
    "states:StartExecution", "states:SendTaskSuccess", "states:SendTaskFailure",
})  # fmt: skip
# The redelivery sweep sends recorded decisions: a result per token, nothing else on the flow.
ANSWER_TASK_TOKENS = frozenset({"states:SendTaskSuccess", "states:SendTaskFailure"})
QUERY_INDEX = frozenset({"dynamodb:Query"})
# The occurrence sweep starts an occurrence's order flow and nothing else on it.
START_ORDER_FLOW = frozenset({"states:StartExecution"})
# Powertools' AppConfigStore reads through AppConfigData sessions.
READ_ROLLOUT = frozenset({"appconfig:StartConfigurationSession", "appconfig:GetLatestConfiguration"})
# A rollout change is a new hosted version of the profile and a deployment of it (never a delete, an
# update of the environment's monitors, or a stop of someone else's deployment).
NEW_ROLLOUT_VERSION = frozenset({"appconfig:CreateHostedConfigurationVersion", "appconfig:StartDeployment"})
DEPLOY_ROLLOUT = frozenset({"appconfig:StartDeployment"})


@dataclass(frozen=True)
class Statement:
    """Allow ``actions`` on one resource."""

    actions: frozenset[str]
    resource: Resource


def statements_for(spec: FunctionSpec, *, ses_identity: bool = False) -> tuple[Statement, ...]:
    """Every statement of one function's policy, in a stable order.

    ``ses_identity``: the brand names a verified sender, which the notifying functions may mail from.
    """
    statements = [] if spec.goals is None else [Statement(GOALS_ACTIONS[spec.goals], Resource.GOALS_TABLE)]
    if spec.audit:
        statements.append(Statement(AUDIT_APPEND, Resource.AUDIT_TABLE))
        statements.append(Statement(AUDIT_ANCHOR, Resource.AUDIT_BUCKET))
    if spec.plan_signing_key:
        statements.append(Statement(PLAN_SIGN, Resource.PLAN_SIGNING_KEY))
        statements.append(Statement(AUDIT_ANCHOR, Resource.PLAN_KEYS))
    elif spec.reads_plan_keys:
        statements.append(Statement(PLAN_KEYS_READ, Resource.PLAN_KEYS))
    if spec.idempotency:
        statements.append(Statement(IDEMPOTENCY_RECORDS, Resource.IDEMPOTENCY_TABLE))
    if spec.counters:
        statements.append(Statement(ORDER_COUNTERS, Resource.COUNTERS_TABLE))
    for flag, secret in (
        (spec.link_signing_key, Resource.LINK_SIGNING_KEY),
        (spec.view_link_key, Resource.VIEW_LINK_KEY),
        (spec.ucp_signing_keys, Resource.UCP_SIGNING_KEYS),
        (spec.merchant_credentials, Resource.MERCHANT_CREDENTIALS),
        (spec.llm_api_key, Resource.LLM_API_KEY),
    ):
        if flag:
            statements.append(Statement(SECRET_READ, secret))
    if spec.notifies:
        statements.append(Statement(PUBLISH, Resource.NOTIFY_TOPIC))
        if ses_identity:
            statements.append(Statement(SEND_EMAIL, Resource.SES_IDENTITY))
    if spec.notifies_staff:
        statements.append(Statement(PUBLISH, Resource.STAFF_TOPIC))
    if spec.sends_codes:
        statements.append(Statement(PUBLISH, Resource.SMS))
    if spec.drives_order_flow:
        statements.append(Statement(DRIVE_ORDER_FLOW, Resource.ORDER_FLOW))
    if spec.answers_task_tokens:
        statements.append(Statement(ANSWER_TASK_TOKENS, Resource.ORDER_FLOW))
    if spec.reads_pending_deliveries:
        statements.append(Statement(QUERY_INDEX, Resource.PENDING_DELIVERY_INDEX))
    if spec.reads_due_notices:
        statements.append(Statement(QUERY_INDEX, Resource.NOTICES_DUE_INDEX))
        statements.append(Statement(QUERY_INDEX, Resource.REMINDERS_DUE_INDEX))
    if spec.reads_open_tracking:
        statements.append(Statement(QUERY_INDEX, Resource.OPEN_TRACKING_INDEX))
    if spec.schedules is not None:
        # The same item actions as the goals table: no Scan, no DeleteItem (a cancel is a status).
        statements.append(Statement(ITEM_ACTIONS[spec.schedules], Resource.SCHEDULES_TABLE))
    if spec.reads_due_schedules:
        statements.append(Statement(QUERY_INDEX, Resource.DUE_SCHEDULES_INDEX))
    if spec.reads_user_schedules:
        statements.append(Statement(QUERY_INDEX, Resource.USER_SCHEDULES_INDEX))
    if spec.starts_order_flow:
        statements.append(Statement(START_ORDER_FLOW, Resource.ORDER_FLOW))
    if spec.starts_undo_flow:
        statements.append(Statement(START_ORDER_FLOW, Resource.UNDO_FLOW))
    if spec.reads_rollout or spec.writes_rollout:
        statements.append(Statement(READ_ROLLOUT, Resource.ROLLOUT_LIVE))
        statements.append(Statement(READ_ROLLOUT, Resource.ROLLOUT_FLOOR))
    if spec.writes_rollout:
        statements.append(Statement(NEW_ROLLOUT_VERSION, Resource.ROLLOUT_PROFILE))
        for deployed in (
            Resource.ROLLOUT_LIVE, Resource.ROLLOUT_FLOOR, Resource.ROLLOUT_STRATEGY, Resource.ROLLOUT_FLOOR_STRATEGY,
        ):  # fmt: skip
            statements.append(Statement(DEPLOY_ROLLOUT, deployed))
    if spec.notifies_operators:
        statements.append(Statement(PUBLISH, Resource.OPS_TOPIC))
    return tuple(statements)


def policies(*, ses_identity: bool = False) -> dict[str, tuple[Statement, ...]]:
    """Function name -> its statements, for every function the stack deploys."""
    return {spec.name: statements_for(spec, ses_identity=ses_identity) for spec in FUNCTIONS}


def allows(statements: tuple[Statement, ...], action: str, resource: Resource | None) -> bool:
    """Whether a call is granted: identity policies here only allow, so one matching statement is enough."""
    return resource is not None and any(
        action in statement.actions and statement.resource is resource for statement in statements
    )


# The environment variable through which each function is told a resource's name or ARN: the same on
# AWS (``infra/functions.py``) and on the local stack, which maps the names its calls carry back here.
ENVIRONMENT: dict[str, Resource] = {
    "GOALS_TABLE": Resource.GOALS_TABLE,
    "AUDIT_TABLE": Resource.AUDIT_TABLE,
    "IDEMPOTENCY_TABLE": Resource.IDEMPOTENCY_TABLE,
    "COUNTERS_TABLE": Resource.COUNTERS_TABLE,
    "SCHEDULES_TABLE": Resource.SCHEDULES_TABLE,
    "LINK_SIGNING_SECRET_ID": Resource.LINK_SIGNING_KEY,
    "VIEW_LINK_SECRET_ID": Resource.VIEW_LINK_KEY,
    "SIGNING_KEYS_SECRET_ID": Resource.UCP_SIGNING_KEYS,
    "MERCHANT_CREDENTIALS_SECRET_ID": Resource.MERCHANT_CREDENTIALS,
    "LLM_API_KEY_SECRET_ID": Resource.LLM_API_KEY,
    "NOTIFY_TOPIC_ARN": Resource.NOTIFY_TOPIC,
    "STAFF_TOPIC_ARN": Resource.STAFF_TOPIC,
    "SES_IDENTITY": Resource.SES_IDENTITY,
    "STATE_MACHINE_ARN": Resource.ORDER_FLOW,
    "UNDO_STATE_MACHINE_ARN": Resource.UNDO_FLOW,
    "PLAN_SIGNING_KEY_ID": Resource.PLAN_SIGNING_KEY,
    "AUDIT_BUCKET": Resource.AUDIT_BUCKET,
    "ROLLOUT_APPCONFIG_ENVIRONMENT": Resource.ROLLOUT_LIVE,
    "ROLLOUT_APPCONFIG_FLOOR_ENVIRONMENT": Resource.ROLLOUT_FLOOR,
    "ROLLOUT_APPCONFIG_PROFILE": Resource.ROLLOUT_PROFILE,
    "ROLLOUT_APPCONFIG_DEPLOYMENT_STRATEGY": Resource.ROLLOUT_STRATEGY,
    "ROLLOUT_APPCONFIG_FLOOR_DEPLOYMENT_STRATEGY": Resource.ROLLOUT_FLOOR_STRATEGY,
    "OPS_TOPIC_ARN": Resource.OPS_TOPIC,
}
