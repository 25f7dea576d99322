"""Due status notices and approval reminders on the goals table, each behind a sparse index.

A goal with notices to tell carries ``noticesDue`` (a string set) and the index keys ``noticeQueue``
and ``noticeSince``, set by the goal store's status write that makes the notice due
(``due_notice_clauses``); told notices move to ``noticesSent``, so a retried transition cannot queue
a told one again. A relay sending a notice holds a lease on it (``noticeLease:<token>``, epoch seconds it
runs until); the notice stays due until it is marked sent, so a relay that dies mid-send leaves a lease
that expires and the next sweep takes the notice again. A pending approval carries ``reminderQueue`` and ``reminderAt`` (its link's expiry, epoch seconds;
written when the approval is created, ``approvals_table.py``) until it is reminded, decided or expired.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

NOTICES_DUE_INDEX = "noticesDue"
NOTICE_QUEUE_KEY = "noticeQueue"
NOTICE_SINCE_KEY = "noticeSince"
REMINDERS_DUE_INDEX = "remindersDue"
REMINDER_QUEUE_KEY = "reminderQueue"
REMINDER_EXPIRY_KEY = "reminderAt"
_DUE = "DUE"
_PENDING = "PENDING"


def _goal_key(goal_id: str) -> dict[str, str]:
    return {"pk": f"GOAL#{goal_id}"}


def _approval_key(approval_id: str) -> dict[str, str]:
    return {"pk": f"APPROVAL#{approval_id}"}


def _lease_attribute(status: str) -> str:
    return f"noticeLease:{status}"


def _conditional(call: Any, **kwargs: Any) -> bool:
    """The update, or False when its condition did not hold."""
    try:
        call(**kwargs)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def _query_ids(table: Any, query: dict[str, Any], prefix: str) -> list[str]:
    ids: list[str] = []
    while True:
        page = table.query(**query)
        ids.extend(str(item["pk"]).removeprefix(prefix) for item in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return ids
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@dataclass(frozen=True)
class DueNoticeClauses:
    """The parts of an UpdateItem that queue one notice on a goal's item, for the outbox's own write
    and for the goal store's status write that carries it (``GoalStore.update(notice=...)``)."""

    sets: tuple[str, ...]
    add: str
    # Holds unless the notice was told already: a retried transition must not queue it again.
    condition: str
    values: dict[str, Any]


def due_notice_clauses(token: str, *, at: str) -> DueNoticeClauses:
    return DueNoticeClauses(
        sets=(
            f"{NOTICE_QUEUE_KEY} = :noticeDue",
            f"{NOTICE_SINCE_KEY} = if_not_exists({NOTICE_SINCE_KEY}, :noticeAt)",
        ),
        add="noticesDue :noticeTokens",
        condition="NOT contains(noticesSent, :noticeToken)",
        values={":noticeDue": _DUE, ":noticeAt": at, ":noticeTokens": {token}, ":noticeToken": token},
    )


def notice_told(item: dict[str, Any], token: str) -> bool:
    """Whether the goal's item (as read) holds ``token`` among its told notices."""
    return token in (item.get("noticesSent") or set())


class DynamoDBNoticeOutbox:
    def __init__(self, table: Any) -> None:
        self._table = table

    def shares_items_with(self, goals: object) -> bool:
        """True for the goal store over this same table: its status writes queue notices here."""
        from cartpilot.adapters.aws.goals_table import DynamoDBGoalStore

        return isinstance(goals, DynamoDBGoalStore) and goals.table_name == self._table.name

    def mark_due(self, goal_id: str, status: str, *, at: str) -> bool:
        clauses = due_notice_clauses(status, at=at)
        return _conditional(
            self._table.update_item,
            Key=_goal_key(goal_id),
            UpdateExpression=f"SET {', '.join(clauses.sets)} ADD {clauses.add}",
            ConditionExpression=f"attribute_exists(pk) AND {clauses.condition}",
            ExpressionAttributeValues=clauses.values,
        )

    def due_goals(self) -> list[str]:
        query = {
            "IndexName": NOTICES_DUE_INDEX,
            "KeyConditionExpression": Key(NOTICE_QUEUE_KEY).eq(_DUE),
            "ProjectionExpression": "pk",
        }
        return _query_ids(self._table, query, "GOAL#")

    def due(self, goal_id: str) -> list[str]:
        item = self._table.get_item(
            Key=_goal_key(goal_id), ConsistentRead=True, ProjectionExpression="noticesDue"
        ).get("Item")
        return sorted(str(token) for token in (item or {}).get("noticesDue", set()))

    def claim(self, goal_id: str, status: str, *, now: int, until: int) -> bool:
        return _conditional(
            self._table.update_item,
            Key=_goal_key(goal_id),
            UpdateExpression="SET #lease = :until",
            ConditionExpression="contains(noticesDue, :status) AND (attribute_not_exists(#lease) OR #lease <= :now)",
            ExpressionAttributeNames={"#lease": _lease_attribute(status)},
            ExpressionAttributeValues={":status": status, ":now": now, ":until": until},
        )

    def mark_sent(self, goal_id: str, status: str) -> None:
        due = self.due(goal_id)
        if due == [status]:
            # The last notice due: told and out of the index in one write (``settle`` then has none).
            settled = _conditional(
                self._table.update_item,
                Key=_goal_key(goal_id),
                UpdateExpression=(
                    "DELETE noticesDue :token ADD noticesSent :token "
                    f"REMOVE #lease, {NOTICE_QUEUE_KEY}, {NOTICE_SINCE_KEY}"
                ),
                ConditionExpression="contains(noticesDue, :status) AND size(noticesDue) = :one",
                ExpressionAttributeNames={"#lease": _lease_attribute(status)},
                ExpressionAttributeValues={":token": {status}, ":status": status, ":one": 1},
            )
            if settled:
                return
        _conditional(
            self._table.update_item,
            Key=_goal_key(goal_id),
            UpdateExpression="DELETE noticesDue :token ADD noticesSent :token REMOVE #lease",
            ConditionExpression="contains(noticesDue, :status)",
            ExpressionAttributeNames={"#lease": _lease_attribute(status)},
            ExpressionAttributeValues={":token": {status}, ":status": status},
        )

    def release(self, goal_id: str, status: str, *, until: int) -> None:
        # Only this holder's lease: one that expired and was re-taken belongs to the other relay now.
        _conditional(
            self._table.update_item,
            Key=_goal_key(goal_id),
            UpdateExpression="REMOVE #lease",
            ConditionExpression="#lease = :until",
            ExpressionAttributeNames={"#lease": _lease_attribute(status)},
            ExpressionAttributeValues={":until": until},
        )

    def settle(self, goal_id: str) -> None:
        item = self._table.get_item(
            Key=_goal_key(goal_id), ConsistentRead=True, ProjectionExpression=NOTICE_QUEUE_KEY
        ).get("Item")
        if not item:
            return  # out of the index already (the last ``mark_sent`` took it out): nothing to write
        # DynamoDB drops a set emptied by DELETE, so "nothing due" is the attribute's absence.
        _conditional(
            self._table.update_item,
            Key=_goal_key(goal_id),
            UpdateExpression=f"REMOVE {NOTICE_QUEUE_KEY}, {NOTICE_SINCE_KEY}",
            ConditionExpression="attribute_exists(pk) AND attribute_not_exists(noticesDue)",
        )


class DynamoDBReminderQueue:
    def __init__(self, table: Any) -> None:
        self._table = table

    def expiring_before(self, epoch_seconds: int) -> list[str]:
        query = {
            "IndexName": REMINDERS_DUE_INDEX,
            "KeyConditionExpression": Key(REMINDER_QUEUE_KEY).eq(_PENDING)
            & Key(REMINDER_EXPIRY_KEY).lte(epoch_seconds),
            "ProjectionExpression": "pk",
        }
        return _query_ids(self._table, query, "APPROVAL#")

    def claim(self, approval_id: str, *, at: str) -> bool:
        return _conditional(
            self._table.update_item,
            Key=_approval_key(approval_id),
            UpdateExpression=f"REMOVE {REMINDER_QUEUE_KEY} SET remindedAt = :now",
            ConditionExpression=f"attribute_exists({REMINDER_QUEUE_KEY}) AND #status = :pending",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":pending": _PENDING, ":now": at},
        )

    def release(self, approval_id: str) -> None:
        _conditional(
            self._table.update_item,
            Key=_approval_key(approval_id),
            UpdateExpression=f"SET {REMINDER_QUEUE_KEY} = :pending REMOVE remindedAt",
            ConditionExpression="attribute_exists(pk) AND #status = :pending",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":pending": _PENDING},
        )

    def drop(self, approval_id: str) -> None:
        _conditional(
            self._table.update_item,
            Key=_approval_key(approval_id),
            UpdateExpression=f"REMOVE {REMINDER_QUEUE_KEY}",
            ConditionExpression=f"attribute_exists({REMINDER_QUEUE_KEY})",
        )
