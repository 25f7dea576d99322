"""The schedules table on DynamoDB: one item per schedule (``scheduleId``).

Structured fields are JSON strings, as in the goals table, so amounts keep their integer form. The
sweep finds due schedules through a sparse index: only an item that may still fire carries ``sweep``
(SCHEDULED with a next occurrence, or with an occurrence being fired), keyed by ``nextAt``. A
second index, over every item, keys schedules by ``userId`` and ``createdAt`` (a shopper's list). Every
move is a conditional write, so two sweeps, or a sweep and a shopper's cancel, never both win.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from cartpilot.schedules.model import Occurrence, ScheduleRecord, ScheduleStatus
from cartpilot.schedules.ports import ScheduleAlreadyExists

DUE_SCHEDULES_INDEX = "dueSchedules"
# Every schedule by its user, newest first (``userId``, ``createdAt``): a shopper's schedules.
USER_SCHEDULES_INDEX = "schedulesByUser"
SWEEP_KEY = "sweep"
SWEEP_VALUE = "due"
_JSON_FIELDS = ("context", "definition", "signedMandate", "occurrences")


def _key(schedule_id: str) -> dict[str, str]:
    return {"scheduleId": schedule_id}


def _encode(record: ScheduleRecord) -> dict[str, Any]:
    item: dict[str, Any] = record.model_dump(mode="json", exclude_none=True)
    for name in _JSON_FIELDS:
        if name in item:
            item[name] = json.dumps(item[name], separators=(",", ":"), ensure_ascii=False)
    if record.status is ScheduleStatus.SCHEDULED and record.nextAt is not None:
        item[SWEEP_KEY] = SWEEP_VALUE
    return item


def _decode(item: dict[str, Any]) -> ScheduleRecord:
    decoded = dict(item)
    for name in _JSON_FIELDS:
        if isinstance(decoded.get(name), str):
            decoded[name] = json.loads(decoded[name])
    decoded.pop(SWEEP_KEY, None)
    return ScheduleRecord.model_validate(decoded)


def _occurrences_json(occurrences: list[Occurrence]) -> str:
    return json.dumps(
        [o.model_dump(mode="json", exclude_none=True) for o in occurrences], separators=(",", ":")
    )


def _conditional_failed(exc: ClientError) -> bool:
    return bool(exc.response["Error"]["Code"] == "ConditionalCheckFailedException")


class DynamoDBScheduleStore:
    def __init__(self, table: Any) -> None:
        self._table = table

    def _update(self, schedule_id: str, **request: Any) -> bool:
        try:
            self._table.update_item(Key=_key(schedule_id), **request)
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def create(self, record: ScheduleRecord) -> None:
        try:
            self._table.put_item(Item=_encode(record), ConditionExpression="attribute_not_exists(scheduleId)")
        except ClientError as exc:
            if _conditional_failed(exc):
                raise ScheduleAlreadyExists(record.scheduleId) from None
            raise

    def get(self, schedule_id: str) -> ScheduleRecord | None:
        item = self._table.get_item(Key=_key(schedule_id), ConsistentRead=True).get("Item")
        return _decode(item) if item else None

    def of_user(self, user_id: str, *, client_id: str, limit: int) -> list[ScheduleRecord]:
        found: list[ScheduleRecord] = []
        query: dict[str, Any] = {
            "IndexName": USER_SCHEDULES_INDEX,
            "KeyConditionExpression": "userId = :user",
            # Another client's schedules of the same user are not this client's to see.
            "FilterExpression": "clientId = :client",
            "ExpressionAttributeValues": {":user": user_id, ":client": client_id},
            "ScanIndexForward": False,
        }
        while len(found) < limit:
            page = self._table.query(**query)
            found.extend(_decode(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found[:limit]

    def due(self, now: str, *, limit: int) -> list[str]:
        found: list[str] = []
        query: dict[str, Any] = {
            "IndexName": DUE_SCHEDULES_INDEX,
            "KeyConditionExpression": "#sweep = :due AND nextAt <= :now",
            "ExpressionAttributeNames": {"#sweep": SWEEP_KEY},
            "ExpressionAttributeValues": {":due": SWEEP_VALUE, ":now": now},
        }
        while len(found) < limit:
            page = self._table.query(**query)
            found.extend(str(item["scheduleId"]) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found[:limit]

    def pause(self, schedule_id: str, *, updated_at: str) -> bool:
        values = {":scheduled": "SCHEDULED", ":paused": "PAUSED", ":now": updated_at}
        names = {"#status": "status", "#sweep": SWEEP_KEY}
        # Out of the sweep's index, unless an occurrence is mid-fire: that one is finished first.
        if self._update(
            schedule_id,
            UpdateExpression="SET #status = :paused, updatedAt = :now REMOVE #sweep",
            ConditionExpression="#status = :scheduled AND attribute_not_exists(firing)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        ):
            return True
        return self._update(
            schedule_id,
            UpdateExpression="SET #status = :paused, updatedAt = :now",
            ConditionExpression="#status = :scheduled",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=values,
        )

    def resume(
        self, schedule_id: str, *, next_at: str | None, skipped: list[Occurrence], updated_at: str
    ) -> bool:
        record = self.get(schedule_id)
        if record is None or record.status is not ScheduleStatus.PAUSED or record.firing is not None:
            return False
        occurrences = _occurrences_json([*record.occurrences, *skipped])
        names = {"#status": "status", "#sweep": SWEEP_KEY}
        values: dict[str, Any] = {":paused": "PAUSED", ":now": updated_at, ":occurrences": occurrences}
        # Only a firing writes occurrences, and none can start while paused: the status is the guard.
        condition = "#status = :paused AND attribute_not_exists(firing)"
        if next_at is None:
            values[":finished"] = "FINISHED"
            return self._update(
                schedule_id,
                UpdateExpression="SET #status = :finished, updatedAt = :now, occurrences = :occurrences "
                "REMOVE nextAt, #sweep",
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        values |= {":scheduled": "SCHEDULED", ":next": next_at, ":due": SWEEP_VALUE}
        return self._update(
            schedule_id,
            UpdateExpression="SET #status = :scheduled, updatedAt = :now, occurrences = :occurrences, "
            "nextAt = :next, #sweep = :due",
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def cancel(self, schedule_id: str, *, updated_at: str) -> bool:
        values = {
            ":scheduled": "SCHEDULED",
            ":paused": "PAUSED",
            ":cancelled": "CANCELLED",
            ":now": updated_at,
        }
        active = "(#status = :scheduled OR #status = :paused)"
        if self._update(
            schedule_id,
            UpdateExpression="SET #status = :cancelled, updatedAt = :now REMOVE #sweep",
            ConditionExpression=f"{active} AND attribute_not_exists(firing)",
            ExpressionAttributeNames={"#status": "status", "#sweep": SWEEP_KEY},
            ExpressionAttributeValues=values,
        ):
            return True
        return self._update(
            schedule_id,
            UpdateExpression="SET #status = :cancelled, updatedAt = :now",
            ConditionExpression=active,
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=values,
        )

    def claim_occurrence(self, schedule_id: str, at: str) -> bool:
        return self._update(
            schedule_id,
            UpdateExpression="SET firing = :at",
            ConditionExpression="(#status = :scheduled AND nextAt = :at AND attribute_not_exists(firing)) "
            "OR firing = :at",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":scheduled": "SCHEDULED", ":at": at},
        )

    def record_occurrence(
        self, schedule_id: str, occurrence: Occurrence, *, next_at: str | None, updated_at: str
    ) -> bool:
        record = self.get(schedule_id)
        if record is None or record.firing != occurrence.at:
            return False
        values: dict[str, Any] = {
            ":at": occurrence.at,
            ":now": updated_at,
            ":occurrences": _occurrences_json([*record.occurrences, occurrence]),
            ":scheduled": "SCHEDULED",
        }
        names = {"#status": "status", "#sweep": SWEEP_KEY}
        # The claim makes this the only writer of occurrences; status may still move (pause, cancel).
        if next_at is not None:
            if self._update(
                schedule_id,
                UpdateExpression="SET occurrences = :occurrences, nextAt = :next, updatedAt = :now REMOVE firing",
                ConditionExpression="firing = :at AND #status = :scheduled",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values | {":next": next_at},
            ):
                return True
        else:
            if self._update(
                schedule_id,
                UpdateExpression="SET occurrences = :occurrences, #status = :finished, updatedAt = :now "
                "REMOVE firing, nextAt, #sweep",
                ConditionExpression="firing = :at AND #status = :scheduled",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values | {":finished": "FINISHED"},
            ):
                return True
        # Paused or cancelled while it fired: record it and leave the sweep's index.
        values.pop(":scheduled")
        if next_at is not None:
            values[":next"] = next_at
        moved = "SET occurrences = :occurrences, updatedAt = :now" + (", nextAt = :next" if next_at else "")
        return self._update(
            schedule_id,
            UpdateExpression=f"{moved} REMOVE firing, #sweep" + ("" if next_at else ", nextAt"),
            ConditionExpression="firing = :at",
            ExpressionAttributeNames={"#sweep": SWEEP_KEY},
            ExpressionAttributeValues=values,
        )
