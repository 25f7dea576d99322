"""Approvals on DynamoDB: items in the goals table (``pk = APPROVAL#<id>``), decided with a conditional write."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from cartpilot.approvals.model import AlreadyDecided, Approval, ApprovalStatus, DroppedStep
from cartpilot.approvals.ports import ApprovalAlreadyExists


def _key(approval_id: str) -> dict[str, str]:
    return {"pk": f"APPROVAL#{approval_id}"}


class DynamoDBApprovalStore:
    """Approval items in the goals table, next to their goal."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def create(self, approval: Approval, task_token: str) -> None:
        item = {
            **_key(approval.approvalId),
            "doc": approval.model_dump_json(),
            "status": approval.status.value,
            "taskToken": task_token,
            "expiresAt": approval.expiresAt,
        }
        try:
            self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ApprovalAlreadyExists(approval.approvalId) from exc
            raise

    def get(self, approval_id: str) -> Approval | None:
        item = self._table.get_item(Key=_key(approval_id), ConsistentRead=True).get("Item")
        return _to_approval(item) if item else None

    def task_token(self, approval_id: str) -> str:
        item = self._table.get_item(
            Key=_key(approval_id), ConsistentRead=True, ProjectionExpression="taskToken"
        )
        return str(item["Item"]["taskToken"])

    def decide(
        self,
        approval_id: str,
        status: ApprovalStatus,
        *,
        decided_at: str,
        decided_by: str,
        approved_plan_hash: str | None = None,
        dropped: list[DroppedStep] | None = None,
    ) -> Approval:
        """Records the decision if, and only if, none was recorded before (a conditional write)."""
        current = self.get(approval_id)
        if current is None:
            raise LookupError(approval_id)
        decided = current.model_copy(
            update={
                "status": status,
                "decidedAt": decided_at,
                "decidedBy": decided_by,
                "approvedPlanHash": approved_plan_hash,
                "dropped": dropped or [],
            }
        )
        try:
            self._table.update_item(
                Key=_key(approval_id),
                UpdateExpression="SET #status = :to, doc = :doc",
                ConditionExpression="#status = :pending",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":to": status.value,
                    ":doc": decided.model_dump_json(),
                    ":pending": ApprovalStatus.PENDING.value,
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise AlreadyDecided(self.get(approval_id) or current) from exc
            raise
        return decided

    def mark_expired(self, approval_id: str, *, decided_at: str) -> None:
        """After the flow has stopped waiting: whatever was recorded, the link is dead."""
        current = self.get(approval_id)
        if current is None:
            return
        expired = current.model_copy(update={"status": ApprovalStatus.EXPIRED, "decidedAt": decided_at})
        self._table.update_item(
            Key=_key(approval_id),
            UpdateExpression="SET #status = :to, doc = :doc",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":to": ApprovalStatus.EXPIRED.value,
                ":doc": expired.model_dump_json(),
            },
        )


def _to_approval(item: dict[str, Any]) -> Approval:
    return Approval.model_validate_json(item["doc"])
