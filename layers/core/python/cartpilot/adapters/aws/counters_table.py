"""Order counters on DynamoDB: atomic counters the spend and velocity policies read.

One item per user per UTC hour (``pk = "user#<userId>#<yyyy-mm-ddThh>"``) holds the number
of orders completed in that hour and their spend per currency, added with ``ADD`` so
concurrent receipts never lose an update. The last 24 hours are the current bucket and the
23 before it. Items expire by TTL (``expiresAt``, epoch seconds) once no window can read them.

Each completed order is counted once: a marker item per goal (``pk = "order#<goalId>"``) is
written in the same transaction, so a retried receipt does not count it again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from cartpilot.brands.activity import WINDOW_HOURS, RecentActivity
from cartpilot.kernel.money import Money

# Buckets outlive the window by a day; TTL deletion is lazy, and reads name their buckets anyway.
_TTL = timedelta(hours=WINDOW_HOURS * 2)
# BatchGetItem may leave keys unprocessed under throttling; the caller fails closed after this.
_BATCH_ATTEMPTS = 3


def hour_bucket(at: datetime) -> str:
    # Buckets are UTC hours, whatever zone the caller's clock speaks.
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H")


def _bucket_key(user_id: str, at: datetime) -> str:
    return f"user#{user_id}#{hour_bucket(at)}"


def _window_keys(user_id: str, now: datetime) -> list[str]:
    return [_bucket_key(user_id, now - timedelta(hours=back)) for back in range(WINDOW_HOURS)]


def _spend_attribute(currency: str) -> str:
    return f"spend_{currency}"


def _expires_at(at: datetime) -> int:
    return int((at + _TTL).timestamp())


class DynamoDBOrderCounters:
    """The counters table of one brand (``COUNTERS_TABLE``)."""

    def __init__(self, table: Any) -> None:
        # The resource's client takes and returns plain Python values (it serialises them itself).
        self._client = table.meta.client
        self._name: str = table.name

    def record_order(self, goal_id: str, user_id: str, total: Money, *, at: datetime) -> bool:
        """Counts a completed order in the hour it completed; False when this goal was already counted."""
        expires = _expires_at(at)
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._name,
                            "Item": {
                                "pk": f"order#{goal_id}",
                                "bucket": hour_bucket(at),
                                "expiresAt": expires,
                            },
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self._name,
                            "Key": {"pk": _bucket_key(user_id, at)},
                            "UpdateExpression": "ADD orders :one, #spend :amount SET expiresAt = :expires",
                            "ExpressionAttributeNames": {"#spend": _spend_attribute(total.currency)},
                            "ExpressionAttributeValues": {
                                ":one": 1,
                                ":amount": total.amount_minor,
                                ":expires": expires,
                            },
                        }
                    },
                ]
            )
        except ClientError as exc:
            if _already_counted(exc):
                return False
            raise
        return True

    def recent_activity(self, user_id: str, *, now: datetime) -> RecentActivity:
        """Sums the user's buckets for the last 24 hours, read consistently."""
        orders = 0
        spend: dict[str, int] = {}
        for item in self._read(_window_keys(user_id, now)):
            orders += int(item.get("orders", 0))
            for name, value in item.items():
                if name.startswith("spend_"):
                    currency = name.removeprefix("spend_")
                    spend[currency] = spend.get(currency, 0) + int(value)
        return RecentActivity(orders=orders, spend_minor=spend)

    def _read(self, keys: Iterable[str]) -> list[dict[str, Any]]:
        pending: list[dict[str, Any]] = [{"pk": key} for key in keys]
        items: list[dict[str, Any]] = []
        for _ in range(_BATCH_ATTEMPTS):
            response = self._client.batch_get_item(
                RequestItems={self._name: {"Keys": pending, "ConsistentRead": True}}
            )
            items += response.get("Responses", {}).get(self._name, [])
            pending = response.get("UnprocessedKeys", {}).get(self._name, {}).get("Keys", [])
            if not pending:
                return items
        # A partial sum would under-count and let an order through a limit: refuse instead.
        raise RuntimeError(f"could not read {len(pending)} order counters from {self._name}")


def _already_counted(error: ClientError) -> bool:
    if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return False
    reasons = error.response.get("CancellationReasons") or []
    if reasons:
        return bool(reasons[0].get("Code") == "ConditionalCheckFailed")
    # Some emulators omit the reasons; the message still names the failed condition.
    return "ConditionalCheckFailed" in str(error)
