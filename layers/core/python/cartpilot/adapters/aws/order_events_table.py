"""Order links, event claims and notice claims, as items of the goals table (single-table, ``pk``).

- ``ORDER#{merchantId}#{orderId}``: the goal an order belongs to, and the newest pushed snapshot not yet
  applied. It carries the keys of the sparse ``openTracking`` index while the tracking sweep has work
  there: ``poll`` until a polled order's shipment stops moving, ``pending`` while a snapshot waits.
- ``ORDEREVENT#{merchantId}#{eventId}``: one received event (a webhook's id, or a poll's content hash).
- ``NOTICE#{goalId}#{kind}``: one shipment notice told to the shopper.

Every write is an ``UpdateItem`` with a condition (DynamoDB creates the item when it is missing), so
the functions that record events need no ``PutItem`` and a duplicate never overwrites a record.
"""

from __future__ import annotations

from typing import Any, Final

from botocore.exceptions import ClientError

from cartpilot.kernel.clock import utc_now_iso
from cartpilot.orders.ports import OrderLink, OrderListing

OPEN_TRACKING_INDEX: Final = "openTracking"
OPEN_TRACKING_KEY: Final = "openTracking"
OPEN_SINCE_KEY: Final = "openSince"
# The index's two partitions: polled orders whose shipment may still move, and pushed orders with a
# snapshot waiting to be applied.
_POLLED: Final = "poll"
_PENDING: Final = "pending"


def _order_key(merchant_id: str, order_id: str) -> dict[str, str]:
    return {"pk": f"ORDER#{merchant_id}#{order_id}"}


def _event_key(merchant_id: str, event_id: str) -> dict[str, str]:
    return {"pk": f"ORDEREVENT#{merchant_id}#{event_id}"}


def _notice_key(goal_id: str, kind: str) -> dict[str, str]:
    return {"pk": f"NOTICE#{goal_id}#{kind}"}


def _condition_failed(exc: ClientError) -> bool:
    return bool(exc.response["Error"]["Code"] == "ConditionalCheckFailedException")


class DynamoDBOrderEventStore:
    def __init__(self, table: Any) -> None:
        self._table = table

    def _claim(self, key: dict[str, str], values: dict[str, str]) -> bool:
        names = {f"#f{i}": name for i, name in enumerate(values)}
        attr_values: dict[str, Any] = {f":v{i}": value for i, value in enumerate(values.values())}
        attr_values[":released"] = True
        try:
            self._table.update_item(
                Key=key,
                UpdateExpression="SET "
                + ", ".join(f"#f{i} = :v{i}" for i in range(len(values)))
                + " REMOVE released",
                ConditionExpression="attribute_not_exists(pk) OR released = :released",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=attr_values,
            )
        except ClientError as exc:
            if _condition_failed(exc):
                return False
            raise
        return True

    def _release(self, key: dict[str, str]) -> None:
        try:
            self._table.update_item(
                Key=key,
                UpdateExpression="SET released = :released",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":released": True},
            )
        except ClientError as exc:
            if not _condition_failed(exc):
                raise

    def link_order(self, link: OrderLink, *, polled: bool) -> None:
        values: dict[str, Any] = {
            ":goal": link.goalId,
            ":merchant": link.merchantId,
            ":order": link.orderId,
        }
        sets = ["goalId = :goal", "merchantId = :merchant", "orderId = :order"]
        if polled:
            values |= {":open": _POLLED, ":since": utc_now_iso()}
            sets += [
                f"{OPEN_TRACKING_KEY} = :open",
                f"{OPEN_SINCE_KEY} = if_not_exists({OPEN_SINCE_KEY}, :since)",
            ]
        try:
            self._table.update_item(
                Key=_order_key(link.merchantId, link.orderId),
                UpdateExpression="SET " + ", ".join(sets),
                # An order id is one goal's for good: a second goal never takes it over.
                ConditionExpression="attribute_not_exists(pk) OR goalId = :goal",
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if not _condition_failed(exc):
                raise

    def goal_for_order(self, merchant_id: str, order_id: str) -> str | None:
        item = self._table.get_item(Key=_order_key(merchant_id, order_id), ConsistentRead=True).get("Item")
        return str(item["goalId"]) if item and item.get("goalId") else None

    def claim_event(self, merchant_id: str, event_id: str, goal_id: str, received_at: str) -> bool:
        return self._claim(_event_key(merchant_id, event_id), {"goalId": goal_id, "receivedAt": received_at})

    def release_event(self, merchant_id: str, event_id: str) -> None:
        self._release(_event_key(merchant_id, event_id))

    def claim_notice(self, goal_id: str, kind: str, sent_at: str) -> bool:
        return self._claim(_notice_key(goal_id, kind), {"goalId": goal_id, "sentAt": sent_at})

    def release_notice(self, goal_id: str, kind: str) -> None:
        self._release(_notice_key(goal_id, kind))

    def queue_snapshot(self, link: OrderLink, event_id: str, order_json: str, queued_at: str) -> None:
        self._table.update_item(
            Key=_order_key(link.merchantId, link.orderId),
            UpdateExpression=(
                f"SET pendingOrder = :order, pendingEventId = :event, pendingAt = :at, "
                f"{OPEN_TRACKING_KEY} = if_not_exists({OPEN_TRACKING_KEY}, :pending), "
                f"{OPEN_SINCE_KEY} = if_not_exists({OPEN_SINCE_KEY}, :at)"
            ),
            # The link exists (the event found its goal through it) and is this goal's.
            ConditionExpression="attribute_exists(pk) AND goalId = :goal",
            ExpressionAttributeValues={
                ":order": order_json,
                ":event": event_id,
                ":at": queued_at,
                ":pending": _PENDING,
                ":goal": link.goalId,
            },
        )

    def pending_snapshot(self, merchant_id: str, order_id: str) -> tuple[str, str] | None:
        item = self._table.get_item(Key=_order_key(merchant_id, order_id), ConsistentRead=True).get("Item")
        if not item or not item.get("pendingOrder"):
            return None
        return str(item["pendingOrder"]), str(item["pendingAt"])

    def clear_pending(self, merchant_id: str, order_id: str, queued_at: str) -> None:
        try:
            self._table.update_item(
                Key=_order_key(merchant_id, order_id),
                # A pushed order leaves the sweep's list with its snapshot; a polled one stays.
                UpdateExpression="REMOVE pendingOrder, pendingEventId, pendingAt"
                + (f", {OPEN_TRACKING_KEY}, {OPEN_SINCE_KEY}"),
                ConditionExpression=f"pendingAt = :at AND {OPEN_TRACKING_KEY} = :pending",
                ExpressionAttributeValues={":at": queued_at, ":pending": _PENDING},
            )
        except ClientError as exc:
            if not _condition_failed(exc):
                raise
            self._clear_polled_snapshot(merchant_id, order_id, queued_at)

    def _clear_polled_snapshot(self, merchant_id: str, order_id: str, queued_at: str) -> None:
        try:
            self._table.update_item(
                Key=_order_key(merchant_id, order_id),
                UpdateExpression="REMOVE pendingOrder, pendingEventId, pendingAt",
                ConditionExpression="pendingAt = :at",
                ExpressionAttributeValues={":at": queued_at},
            )
        except ClientError as exc:
            if not _condition_failed(exc):  # a newer snapshot was queued meanwhile: it stays
                raise

    def open_orders(self, limit: int) -> list[tuple[OrderLink, OrderListing]]:
        found: list[tuple[OrderLink, OrderListing]] = []
        listing: OrderListing
        for listing in (_PENDING, _POLLED):
            query: dict[str, Any] = {
                "IndexName": OPEN_TRACKING_INDEX,
                "KeyConditionExpression": f"{OPEN_TRACKING_KEY} = :open",
                "ExpressionAttributeValues": {":open": listing},
            }
            while len(found) < limit:
                query["Limit"] = limit - len(found)
                page = self._table.query(**query)
                found += [
                    (
                        OrderLink(
                            merchantId=str(i["merchantId"]),
                            orderId=str(i["orderId"]),
                            goalId=str(i["goalId"]),
                        ),
                        listing,
                    )
                    for i in page.get("Items", [])
                    if i.get("merchantId") and i.get("orderId") and i.get("goalId")
                ]
                if "LastEvaluatedKey" not in page:
                    break
                query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found[:limit]

    def close_polling(self, merchant_id: str, order_id: str) -> None:
        try:
            self._table.update_item(
                Key=_order_key(merchant_id, order_id),
                UpdateExpression=f"REMOVE {OPEN_TRACKING_KEY}, {OPEN_SINCE_KEY}",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(pendingOrder)",
            )
            return
        except ClientError as exc:
            if not _condition_failed(exc):
                raise
        try:
            # A pushed snapshot still waits: the order stays listed, as pending, until it is applied.
            self._table.update_item(
                Key=_order_key(merchant_id, order_id),
                UpdateExpression=f"SET {OPEN_TRACKING_KEY} = :pending",
                ConditionExpression="attribute_exists(pendingOrder)",
                ExpressionAttributeValues={":pending": _PENDING},
            )
        except ClientError as exc:
            if not _condition_failed(exc):  # unknown order, or the snapshot was applied meanwhile
                raise
