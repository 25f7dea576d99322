"""The AWS resources of one brand, created in moto: the same names and keys the CDK stack creates."""

from __future__ import annotations

import json
from typing import Any

from cartpilot.commerce.signing_keys import new_ring_secret
from cartpilot.kernel.keyring import KeyRing

_TABLE_KEYS: dict[str, tuple[list[dict[str, str]], list[dict[str, str]]]] = {
    "goals": ([{"AttributeName": "pk", "KeyType": "HASH"}], [{"AttributeName": "pk", "AttributeType": "S"}]),
    "idempotency": (
        [{"AttributeName": "id", "KeyType": "HASH"}],
        [{"AttributeName": "id", "AttributeType": "S"}],
    ),
    "counters": (
        [{"AttributeName": "pk", "KeyType": "HASH"}],
        [{"AttributeName": "pk", "AttributeType": "S"}],
    ),
    "audit": (
        [{"AttributeName": "goalId", "KeyType": "HASH"}, {"AttributeName": "seq", "KeyType": "RANGE"}],
        [{"AttributeName": "goalId", "AttributeType": "S"}, {"AttributeName": "seq", "AttributeType": "N"}],
    ),
    "schedules": (
        [{"AttributeName": "scheduleId", "KeyType": "HASH"}],
        [{"AttributeName": "scheduleId", "AttributeType": "S"}],
    ),
}


# The goals table's sparse index of decisions waiting for delivery (``approvals_table.py``), as
# ``infra/data.py`` declares it.
_TABLE_INDEXES: dict[str, tuple[list[dict[str, Any]], list[dict[str, str]]]] = {
    # Schedules that may still fire, by next occurrence (``schedules_table.py``).
    "schedules": (
        [
            {
                "IndexName": "dueSchedules",
                "KeySchema": [
                    {"AttributeName": "sweep", "KeyType": "HASH"},
                    {"AttributeName": "nextAt", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
            {
                # A shopper's schedules, newest first.
                "IndexName": "schedulesByUser",
                "KeySchema": [
                    {"AttributeName": "userId", "KeyType": "HASH"},
                    {"AttributeName": "createdAt", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
        [
            {"AttributeName": "sweep", "AttributeType": "S"},
            {"AttributeName": "nextAt", "AttributeType": "S"},
            {"AttributeName": "userId", "AttributeType": "S"},
            {"AttributeName": "createdAt", "AttributeType": "S"},
        ],
    ),
    "goals": (
        [
            {
                "IndexName": "pendingDelivery",
                "KeySchema": [
                    {"AttributeName": "pendingDelivery", "KeyType": "HASH"},
                    {"AttributeName": "pendingSince", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
            {
                # Polled orders whose shipment may still move (``order_events_table.py``).
                "IndexName": "openTracking",
                "KeySchema": [
                    {"AttributeName": "openTracking", "KeyType": "HASH"},
                    {"AttributeName": "openSince", "KeyType": "RANGE"},
                ],
                "Projection": {
                    "ProjectionType": "INCLUDE",
                    "NonKeyAttributes": ["goalId", "merchantId", "orderId"],
                },
            },
            {
                # Goals with status notices due, and approvals awaiting a reminder (``notices_table.py``).
                "IndexName": "noticesDue",
                "KeySchema": [
                    {"AttributeName": "noticeQueue", "KeyType": "HASH"},
                    {"AttributeName": "noticeSince", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
            {
                "IndexName": "remindersDue",
                "KeySchema": [
                    {"AttributeName": "reminderQueue", "KeyType": "HASH"},
                    {"AttributeName": "reminderAt", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
        ],
        [
            {"AttributeName": "pendingDelivery", "AttributeType": "S"},
            {"AttributeName": "pendingSince", "AttributeType": "S"},
            {"AttributeName": "openTracking", "AttributeType": "S"},
            {"AttributeName": "openSince", "AttributeType": "S"},
            {"AttributeName": "noticeQueue", "AttributeType": "S"},
            {"AttributeName": "noticeSince", "AttributeType": "S"},
            {"AttributeName": "reminderQueue", "AttributeType": "S"},
            {"AttributeName": "reminderAt", "AttributeType": "N"},
        ],
    ),
}


def table_names(brand: str) -> dict[str, str]:
    return {name: f"cartpilot-{brand}-{name}" for name in _TABLE_KEYS}


def table_environment(brand: str) -> dict[str, str]:
    names = table_names(brand)
    return {
        "GOALS_TABLE": names["goals"],
        "AUDIT_TABLE": names["audit"],
        "IDEMPOTENCY_TABLE": names["idempotency"],
        "COUNTERS_TABLE": names["counters"],
        "SCHEDULES_TABLE": names["schedules"],
    }


def create_tables(dynamodb: Any, brand: str) -> None:
    for name, table in table_names(brand).items():
        key_schema, attributes = _TABLE_KEYS[name]
        indexes, index_attributes = _TABLE_INDEXES.get(name, ([], []))
        dynamodb.create_table(
            TableName=table,
            KeySchema=key_schema,
            AttributeDefinitions=attributes + index_attributes,
            BillingMode="PAY_PER_REQUEST",
            **({"GlobalSecondaryIndexes": indexes} if indexes else {}),
        )


def create_link_secret(secretsmanager: Any, secret_id: str) -> None:
    secretsmanager.create_secret(Name=secret_id, SecretString=json.dumps(KeyRing.new_secret("k1")))


def create_signing_keys_secret(secretsmanager: Any, secret_id: str) -> None:
    """The UCP request-signing key ring, one fresh key (what ``cartpilot keys rotate`` writes first)."""
    secretsmanager.create_secret(Name=secret_id, SecretString=json.dumps(new_ring_secret()))


def plan_signing_key_alias(brand: str) -> str:
    return f"alias/cartpilot-{brand}-plan-signing"


def audit_bucket_name(brand: str) -> str:
    return f"cartpilot-{brand}-audit-anchors"


def create_plan_signing_key(kms: Any, alias: str) -> str:
    """An asymmetric signing key as the CDK stack creates it (ECC_NIST_P256, signing only), under
    ``alias``; returns its id."""
    key_id: str = kms.create_key(
        KeySpec="ECC_NIST_P256",
        KeyUsage="SIGN_VERIFY",
        Description="CartPilot: signs plan snapshots in the audit trail",
    )["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    return key_id


def rotate_plan_signing_key(kms: Any, alias: str) -> str:
    """A rotation: a new key takes the alias and signs from now on. The old key is left in place
    (on AWS it may be scheduled for deletion: its public key stays published with the anchors)."""
    key_id: str = kms.create_key(
        KeySpec="ECC_NIST_P256",
        KeyUsage="SIGN_VERIFY",
        Description="CartPilot: signs plan snapshots in the audit trail",
    )["KeyMetadata"]["KeyId"]
    kms.update_alias(AliasName=alias, TargetKeyId=key_id)
    return key_id


# Days an anchor or a published key is kept, unchangeable by anyone: the audit retention period.
AUDIT_RETENTION_DAYS = 7 * 365


def create_audit_bucket(s3: Any, bucket: str) -> None:
    """The write-once bucket of audit anchors and published keys: Object Lock in compliance mode."""
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": AUDIT_RETENTION_DAYS}},
        },
    )
