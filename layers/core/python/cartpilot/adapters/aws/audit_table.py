"""The audit table on DynamoDB: partition key ``goalId``, sort key ``seq``; conditional puts only."""

from __future__ import annotations

import json
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from cartpilot.audit.chain import AuditRecord
from cartpilot.audit.ports import AuditSlotTaken


class DynamoDBAuditRecords:
    def __init__(self, table: Any) -> None:
        self._table = table

    def latest(self, goal_id: str) -> AuditRecord | None:
        page = self._table.query(
            KeyConditionExpression=Key("goalId").eq(goal_id),
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        return _to_record(page["Items"][0]) if page["Items"] else None

    def insert(self, record: AuditRecord) -> None:
        # The detail is stored as JSON text so numbers keep their exact form (no Decimals).
        item = {**record.model_dump(mode="json", exclude={"detail"}), "detail": json.dumps(record.detail)}
        try:
            self._table.put_item(
                Item=item, ConditionExpression="attribute_not_exists(goalId) AND attribute_not_exists(seq)"
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise AuditSlotTaken(f"{record.goalId}#{record.seq}") from exc
            raise

    def all(self, goal_id: str) -> list[AuditRecord]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"KeyConditionExpression": Key("goalId").eq(goal_id), "ConsistentRead": True}
        while True:
            page = self._table.query(**kwargs)
            items.extend(page["Items"])
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return [_to_record(item) for item in items]


def _to_record(item: dict[str, Any]) -> AuditRecord:
    data = {key: value for key, value in item.items() if value is not None}
    data["seq"] = int(data["seq"])
    data["detail"] = json.loads(data.get("detail") or "{}")
    return AuditRecord.model_validate(data)
