"""What the audit tamper suites share: the stored records as someone with table access sees them,
and the client-side verification a shopper's assistant would run."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Key

from cartpilot.audit.chain import AuditRecord
from cartpilot_local.cli import main
from cartpilot_local.resources import table_names
from tests.e2e.conftest import Stack

Items = list[dict[str, Any]]


def table_of(stack: Stack, name: str) -> Any:
    return boto3.resource("dynamodb").Table(table_names(stack.local.brand)[name])


def stored_records(stack: Stack, goal_id: str) -> Items:
    """The goal's audit items as the table holds them, in chain order."""
    items: Items = table_of(stack, "audit").query(
        KeyConditionExpression=Key("goalId").eq(goal_id), ConsistentRead=True
    )["Items"]
    return sorted(items, key=lambda item: int(item["seq"]))


def record_of(item: dict[str, Any]) -> AuditRecord:
    data = {key: value for key, value in item.items() if value is not None}
    data["seq"] = int(data["seq"])
    data["detail"] = json.loads(data.get("detail") or "{}")
    return AuditRecord.model_validate(data)


def wait_for_quiet_trail(stack: Stack, goal_id: str, timeout: float = 30.0) -> None:
    """A completed goal's last records (the receipt's delivery) are written before its order flow
    ends; tamper only after it has."""
    stack.wait_until_flow_ended(goal_id, timeout)


def verify_with_cli(stack: Stack, goal_id: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["audit", goal_id, "--verify", "--api", stack.local.api_url])
    return code, capsys.readouterr().out
