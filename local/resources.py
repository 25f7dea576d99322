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
    }


def create_tables(dynamodb: Any, brand: str) -> None:
    for name, table in table_names(brand).items():
        key_schema, attributes = _TABLE_KEYS[name]
        dynamodb.create_table(
            TableName=table,
            KeySchema=key_schema,
            AttributeDefinitions=attributes,
            BillingMode="PAY_PER_REQUEST",
        )


def create_link_secret(secretsmanager: Any, secret_id: str) -> None:
    secretsmanager.create_secret(Name=secret_id, SecretString=json.dumps(KeyRing.new_secret("k1")))


def create_signing_keys_secret(secretsmanager: Any, secret_id: str) -> None:
    """The UCP request-signing key ring, one fresh key (what ``cartpilot keys rotate`` writes first)."""
    secretsmanager.create_secret(Name=secret_id, SecretString=json.dumps(new_ring_secret()))
