"""Approvals on DynamoDB: items in the goals table (``pk = APPROVAL#<id>``), decided with a conditional write."""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from cartpilot.approvals.model import AlreadyDecided, Approval, ApprovalStatus, Delivery, DroppedStep
from cartpilot.approvals.ports import ApprovalAlreadyExists

# A sparse index: only a decision waiting for delivery carries its key attributes (set when it is
# recorded, removed when it is delivered or expired), so the redelivery sweep reads just those.
PENDING_DELIVERY_INDEX = "pendingDelivery"
PENDING_DELIVERY_KEY = "pendingDelivery"
PENDING_SINCE_KEY = "pendingSince"
_PENDING = "PENDING"


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
            # Queued for one reminder before the link expires (``adapters/aws/notices_table.py``).
            "reminderQueue": _PENDING,
            "reminderAt": approval.expiresAt,
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
                "delivery": Delivery.PENDING,
            }
        )
        try:
            # The delivery state is an attribute of its own too, for the conditional writes below.
            self._table.update_item(
                Key=_key(approval_id),
                UpdateExpression=(
                    "SET #status = :to, doc = :doc, delivery = :undelivered, "
                    f"{PENDING_DELIVERY_KEY} = :queue, {PENDING_SINCE_KEY} = :since REMOVE reminderQueue"
                ),
                ConditionExpression="#status = :pending",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":to": status.value,
                    ":doc": decided.model_dump_json(),
                    ":pending": ApprovalStatus.PENDING.value,
                    ":undelivered": Delivery.PENDING.value,
                    ":queue": _PENDING,
                    ":since": decided_at,
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise AlreadyDecided(self.get(approval_id) or current) from exc
            raise
        return decided

    def mark_delivered(self, approval_id: str, *, delivered_at: str) -> bool:
        """The flow took the recorded decision; only while it is recorded and pending delivery."""
        current = self.get(approval_id)
        if current is None or not current.undelivered:
            return False
        delivered = current.model_copy(update={"delivery": Delivery.DELIVERED, "deliveredAt": delivered_at})
        try:
            self._table.update_item(
                Key=_key(approval_id),
                UpdateExpression=(
                    f"SET doc = :doc, delivery = :delivered REMOVE {PENDING_DELIVERY_KEY}, {PENDING_SINCE_KEY}"
                ),
                ConditionExpression="#status = :decided AND delivery = :undelivered",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":doc": delivered.model_dump_json(),
                    ":decided": current.status.value,
                    ":delivered": Delivery.DELIVERED.value,
                    ":undelivered": Delivery.PENDING.value,
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def undelivered(self, *, decided_before: str) -> list[str]:
        """From the sparse index (eventually consistent: the sweep re-reads each approval)."""
        ids: list[str] = []
        query: dict[str, Any] = {
            "IndexName": PENDING_DELIVERY_INDEX,
            "KeyConditionExpression": Key(PENDING_DELIVERY_KEY).eq(_PENDING)
            & Key(PENDING_SINCE_KEY).lt(decided_before),
            "ProjectionExpression": "pk",
        }
        while True:
            page = self._table.query(**query)
            ids.extend(str(item["pk"]).removeprefix("APPROVAL#") for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return ids
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def mark_expired(self, approval_id: str, *, decided_at: str) -> bool:
        """After the flow has stopped waiting: whatever was recorded, the link is dead; a decision
        the flow took stands."""
        current = self.get(approval_id)
        if current is None or current.delivery is Delivery.DELIVERED:
            return False
        expired = current.model_copy(update={"status": ApprovalStatus.EXPIRED, "decidedAt": decided_at})
        try:
            self._table.update_item(
                Key=_key(approval_id),
                UpdateExpression=(
                    f"SET #status = :to, doc = :doc REMOVE {PENDING_DELIVERY_KEY}, {PENDING_SINCE_KEY}, reminderQueue"
                ),
                ConditionExpression="attribute_not_exists(delivery) OR delivery <> :delivered",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":to": ApprovalStatus.EXPIRED.value,
                    ":doc": expired.model_dump_json(),
                    ":delivered": Delivery.DELIVERED.value,
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True


def _to_approval(item: dict[str, Any]) -> Approval:
    return Approval.model_validate_json(item["doc"])
