"""The DynamoDB tables: goals (single-table: goals and approvals), audit, idempotency, counters and
schedules.

A goal is a small head item and write-once part items keyed beside it on the same partition key
(``cartpilot.adapters.aws.goals_table``): no sort key, so no change of key schema. The sparse indexes
read attributes only heads, approvals and order links carry, never a part's.

All on-demand (no capacity to pay for at rest), with point-in-time recovery and the brand's KMS key.
Goals, audit and schedules are the business record: deletion protection on, and kept when the stack goes.
Idempotency and counters expire by TTL and are rebuilt by use, so they go with the stack.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.audit_anchors import AuditAnchors

# Written by the functions, read here only to name the TTL attributes.
IDEMPOTENCY_TTL_ATTRIBUTE = "expiration"  # Powertools idempotency's default
COUNTERS_TTL_ATTRIBUTE = "expiresAt"
# The goals table's sparse index of decisions waiting for delivery: only such an approval carries its
# keys (``cartpilot.adapters.aws.approvals_table``), so the redelivery sweep queries just those.
PENDING_DELIVERY_INDEX = "pendingDelivery"
PENDING_DELIVERY_KEY = "pendingDelivery"
PENDING_SINCE_KEY = "pendingSince"
# The goals table's sparse index of polled orders whose shipment may still move: only such an order
# link carries its keys (``cartpilot.adapters.aws.order_events_table``), so the tracking sweep reads
# just those.
OPEN_TRACKING_INDEX = "openTracking"
OPEN_TRACKING_KEY = "openTracking"
OPEN_SINCE_KEY = "openSince"
# The schedules table's sparse index of schedules that may still fire, by next occurrence
# (``cartpilot.adapters.aws.schedules_table``): the occurrence sweep queries the due ones.
# The goals table's sparse indexes of status notices due and of approvals awaiting a reminder
# (``cartpilot.adapters.aws.notices_table``), read by the notices sweep.
NOTICES_DUE_INDEX = "noticesDue"
REMINDERS_DUE_INDEX = "remindersDue"
DUE_SCHEDULES_INDEX = "dueSchedules"
DUE_SCHEDULES_KEY = "sweep"
NEXT_OCCURRENCE_KEY = "nextAt"
USER_SCHEDULES_INDEX = "schedulesByUser"


class DataTables(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey, brand: str) -> None:
        super().__init__(scope, construct_id)
        string = dynamodb.AttributeType.STRING
        self.goals = self._table(
            "Goals",
            key=key,
            partition_key=dynamodb.Attribute(name="pk", type=string),
            keep=True,
        )
        self.goals.add_global_secondary_index(
            index_name=PENDING_DELIVERY_INDEX,
            partition_key=dynamodb.Attribute(name=PENDING_DELIVERY_KEY, type=string),
            sort_key=dynamodb.Attribute(name=PENDING_SINCE_KEY, type=string),
            projection_type=dynamodb.ProjectionType.KEYS_ONLY,
        )
        self.goals.add_global_secondary_index(
            index_name=OPEN_TRACKING_INDEX,
            partition_key=dynamodb.Attribute(name=OPEN_TRACKING_KEY, type=string),
            sort_key=dynamodb.Attribute(name=OPEN_SINCE_KEY, type=string),
            projection_type=dynamodb.ProjectionType.INCLUDE,
            non_key_attributes=["goalId", "merchantId", "orderId"],
        )
        self.goals.add_global_secondary_index(
            index_name=NOTICES_DUE_INDEX,
            partition_key=dynamodb.Attribute(name="noticeQueue", type=string),
            sort_key=dynamodb.Attribute(name="noticeSince", type=string),
            projection_type=dynamodb.ProjectionType.KEYS_ONLY,
        )
        self.goals.add_global_secondary_index(
            index_name=REMINDERS_DUE_INDEX,
            partition_key=dynamodb.Attribute(name="reminderQueue", type=string),
            sort_key=dynamodb.Attribute(name="reminderAt", type=dynamodb.AttributeType.NUMBER),
            projection_type=dynamodb.ProjectionType.KEYS_ONLY,
        )
        self.audit = self._table(
            "Audit",
            key=key,
            partition_key=dynamodb.Attribute(name="goalId", type=string),
            sort_key=dynamodb.Attribute(name="seq", type=dynamodb.AttributeType.NUMBER),
            keep=True,
        )
        self.idempotency = self._table(
            "Idempotency",
            key=key,
            partition_key=dynamodb.Attribute(name="id", type=string),
            time_to_live_attribute=IDEMPOTENCY_TTL_ATTRIBUTE,
            keep=False,
        )
        self.counters = self._table(
            "Counters",
            key=key,
            partition_key=dynamodb.Attribute(name="pk", type=string),
            time_to_live_attribute=COUNTERS_TTL_ATTRIBUTE,
            keep=False,
        )
        # Scheduled and recurring goals: a business record (their mandates, what each occurrence did).
        self.schedules = self._table(
            "Schedules",
            key=key,
            partition_key=dynamodb.Attribute(name="scheduleId", type=string),
            keep=True,
        )
        self.schedules.add_global_secondary_index(
            index_name=DUE_SCHEDULES_INDEX,
            partition_key=dynamodb.Attribute(name=DUE_SCHEDULES_KEY, type=string),
            sort_key=dynamodb.Attribute(name=NEXT_OCCURRENCE_KEY, type=string),
            projection_type=dynamodb.ProjectionType.KEYS_ONLY,
        )
        # A shopper's schedules, newest first: every item, in full (the list shows them all).
        self.schedules.add_global_secondary_index(
            index_name=USER_SCHEDULES_INDEX,
            partition_key=dynamodb.Attribute(name="userId", type=string),
            sort_key=dynamodb.Attribute(name="createdAt", type=string),
            projection_type=dynamodb.ProjectionType.ALL,
        )
        # The audit records' write-once anchors and the plan-signing key (``infra/audit_anchors.py``).
        self.anchors = AuditAnchors(self, "AuditAnchors", brand=brand, key=key)

    def _table(
        self,
        construct_id: str,
        *,
        key: kms.IKey,
        partition_key: dynamodb.Attribute,
        keep: bool,
        sort_key: dynamodb.Attribute | None = None,
        time_to_live_attribute: str | None = None,
    ) -> dynamodb.Table:
        return dynamodb.Table(
            self,
            construct_id,
            partition_key=partition_key,
            sort_key=sort_key,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=time_to_live_attribute,
            deletion_protection=keep,
            removal_policy=cdk.RemovalPolicy.RETAIN if keep else cdk.RemovalPolicy.DESTROY,
        )
