"""The goals table on DynamoDB: one item per goal and one per approval (single-table, ``pk``).

Structured fields are stored as JSON strings so numbers keep their exact integer
form (the DynamoDB resource would otherwise hand back Decimals).
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel

from cartpilot.goals.lifecycle import ALLOWED_FROM, InvalidTransition
from cartpilot.goals.model import GoalRecord, GoalStatus, StepResult
from cartpilot.goals.ports import GoalAlreadyExists, GoalNotFound, SubmissionClaim

_JSON_FIELDS = ("context", "plan", "verdict", "approval", "steps", "receipt", "priceCheck", "refund")


def _goal_key(goal_id: str) -> dict[str, str]:
    return {"pk": f"GOAL#{goal_id}"}


def _encode(fields: dict[str, Any]) -> dict[str, Any]:
    encoded: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        elif isinstance(value, list):
            value = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
        if name in _JSON_FIELDS and value is not None:
            value = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
        elif isinstance(value, GoalStatus):
            value = value.value
        encoded[name] = value
    return encoded


def _decode(item: dict[str, Any]) -> dict[str, Any]:
    decoded = dict(item)
    for name in _JSON_FIELDS:
        if isinstance(decoded.get(name), str):
            decoded[name] = json.loads(decoded[name])
    if decoded.get("auditSeq") is not None:
        decoded["auditSeq"] = int(decoded["auditSeq"])
    decoded.pop("pk", None)
    return decoded


class DynamoDBGoalStore:
    def __init__(self, table: Any) -> None:
        self._table = table

    def create(self, record: GoalRecord) -> None:
        item = {**_goal_key(record.goalId), **_encode(record.model_dump(mode="json", exclude_none=True))}
        try:
            self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise GoalAlreadyExists(record.goalId) from exc
            raise

    def claim_submission(self, key: str, goal_id: str, request_hash: str) -> SubmissionClaim:
        item = {"pk": f"SUBMISSION#{key}", "goalId": goal_id, "requestHash": request_hash}
        try:
            self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            earlier = self._table.get_item(Key={"pk": item["pk"]}, ConsistentRead=True)["Item"]
            return SubmissionClaim(goalId=str(earlier["goalId"]), requestHash=str(earlier["requestHash"]))
        return SubmissionClaim(goalId=goal_id, requestHash=request_hash)

    def get(self, goal_id: str) -> GoalRecord | None:
        item = self._table.get_item(Key=_goal_key(goal_id), ConsistentRead=True).get("Item")
        return GoalRecord.model_validate(_decode(item)) if item else None

    def require(self, goal_id: str) -> GoalRecord:
        record = self.get(goal_id)
        if record is None:
            raise GoalNotFound(goal_id)
        return record

    def update(
        self,
        goal_id: str,
        *,
        status: GoalStatus | None = None,
        updated_at: str,
        condition_plan_hash: str | None = None,
        **fields: Any,
    ) -> None:
        """Sets fields; with ``status``, only from a status that may lead there."""
        values = _encode(fields)
        names = {f"#f{i}": name for i, name in enumerate(values)}
        attr_values: dict[str, Any] = {f":v{i}": value for i, value in enumerate(values.values())}
        sets = [f"#f{i} = :v{i}" for i in range(len(values))]
        sets.append("updatedAt = :now")
        attr_values[":now"] = updated_at
        conditions = ["attribute_exists(pk)"]
        if status is not None:
            if status not in ALLOWED_FROM:
                raise InvalidTransition(f"no goal may move to {status.value}")
            names["#status"] = "status"
            attr_values[":to"] = status.value
            sets.append("#status = :to")
            allowed = sorted(ALLOWED_FROM[status])
            placeholders = []
            for i, origin in enumerate(allowed):
                attr_values[f":from{i}"] = origin.value
                placeholders.append(f":from{i}")
            conditions.append(f"#status IN ({', '.join(placeholders)})")
        if condition_plan_hash is not None:
            names["#planHash"] = "planHash"
            attr_values[":planHash"] = condition_plan_hash
            conditions.append("#planHash = :planHash")
        try:
            self._table.update_item(
                Key=_goal_key(goal_id),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression=" AND ".join(conditions),
                ExpressionAttributeNames=names or None,
                ExpressionAttributeValues=attr_values,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                current = self.get(goal_id)
                if current is None:
                    raise GoalNotFound(goal_id) from exc
                raise InvalidTransition(
                    f"goal {goal_id} is {current.status.value}; cannot move to {status.value if status else '-'}"
                ) from exc
            raise

    def append_step(self, goal_id: str, result: StepResult, updated_at: str) -> None:
        """Records an executed step once, replacing an earlier record of the same step (a retry)."""
        record = self.require(goal_id)
        steps = [step for step in record.steps if step.stepId != result.stepId] + [result]
        self.update(goal_id, updated_at=updated_at, steps=steps)

    def advance_audit_head(self, goal_id: str, *, seq: int, head: str) -> None:
        """Remembers the newest audit record, so a deleted tail is detectable; never moves backwards."""
        try:
            self._table.update_item(
                Key=_goal_key(goal_id),
                UpdateExpression="SET auditHead = :head, auditSeq = :seq",
                ConditionExpression="attribute_exists(pk) AND (attribute_not_exists(auditSeq) OR auditSeq < :seq)",
                ExpressionAttributeValues={":head": head, ":seq": seq},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def undo_token(self, goal_id: str) -> str | None:
        """The task token of the open undo window; kept off GoalRecord so no view can leak it."""
        item = self._table.get_item(
            Key=_goal_key(goal_id), ConsistentRead=True, ProjectionExpression="undoToken"
        ).get("Item")
        return str(item["undoToken"]) if item and item.get("undoToken") else None

    def claim_undo(self, goal_id: str, requested_at: str) -> bool:
        """Records the first undo request; False when one was already recorded."""
        try:
            self._table.update_item(
                Key=_goal_key(goal_id),
                UpdateExpression="SET undoRequestedAt = :at",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(undoRequestedAt)",
                ExpressionAttributeValues={":at": requested_at},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def release_undo_claim(self, goal_id: str) -> None:
        try:
            self._table.update_item(
                Key=_goal_key(goal_id),
                UpdateExpression="REMOVE undoRequestedAt",
                # An unconditional update would create a stub item for an unknown goal.
                ConditionExpression="attribute_exists(pk)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def claim_return_settlement(self, goal_id: str, settled_at: str) -> bool:
        """Records that the goal's return refund is being settled; False when it already was."""
        try:
            self._table.update_item(
                Key=_goal_key(goal_id),
                UpdateExpression="SET returnSettledAt = :at",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(returnSettledAt)",
                ExpressionAttributeValues={":at": settled_at},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def release_return_settlement(self, goal_id: str) -> None:
        try:
            self._table.update_item(
                Key=_goal_key(goal_id),
                UpdateExpression="REMOVE returnSettledAt",
                ConditionExpression="attribute_exists(pk)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
