"""Order counters on DynamoDB: reservations against the daily limits, held atomically.

One item per user per UTC hour (``pk = "user#<userId>#<yyyy-mm-ddThh>"``) holds the number of
orders reserved or placed in that hour and their spend per currency. The last 24 hours are the
current bucket and the 23 before it. Items expire by TTL (``expiresAt``, epoch seconds) once no
window can read them.

Each goal holds at most one reservation, an item ``pk = "hold#<goalId>"`` naming its bucket, amount
and state (held, confirmed, released). Every change is one transaction of the hold item (conditioned
on the state it was read in, so a retry never reserves or releases twice) and the bucket counters;
a change of the hold item alone (an order confirmed at its reserved total) is one conditional update.
A reservation adds to the current bucket under a condition that encodes the limits: the bucket may
hold at most what the limits leave after the rest of the window (read consistently just before).
The rest of the window only shrinks meanwhile (releases), except the previous hour, which a caller
whose clock has not yet turned the hour may still add to; a condition check pins it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from cartpilot.brands.activity import WINDOW_HOURS, DailyLimits, LimitReached, RecentActivity
from cartpilot.kernel.money import Money

# Buckets outlive the window by a day; TTL deletion is lazy, and reads name their buckets anyway.
_TTL = timedelta(hours=WINDOW_HOURS * 2)
# BatchGetItem may leave keys unprocessed under throttling; the caller fails closed after this.
_BATCH_ATTEMPTS = 3
# Racing reservations of one user retry on a fresh read; each round at least one of them wins.
_RACE_ATTEMPTS = 25

HELD = "held"
CONFIRMED = "confirmed"
RELEASED = "released"


def hour_bucket(at: datetime) -> str:
    # Buckets are UTC hours, whatever zone the caller's clock speaks.
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H")


def _bucket_key(user_id: str, at: datetime) -> str:
    return f"user#{user_id}#{hour_bucket(at)}"


def _window_keys(user_id: str, now: datetime) -> list[str]:
    return [_bucket_key(user_id, now - timedelta(hours=back)) for back in range(WINDOW_HOURS)]


def _hold_key(goal_id: str) -> str:
    return f"hold#{goal_id}"


def _spend_attribute(currency: str) -> str:
    return f"spend_{currency}"


def _expires_at(at: datetime) -> int:
    return int((at + _TTL).timestamp())


@dataclass(frozen=True)
class _Hold:
    state: str
    bucket_key: str
    amount: Money

    @classmethod
    def of(cls, item: dict[str, Any] | None) -> _Hold | None:
        if item is None or "state" not in item:
            return None
        return cls(
            state=str(item["state"]),
            bucket_key=str(item["bucketKey"]),
            amount=Money(amount_minor=int(item["amount"]), currency=str(item["currency"])),
        )

    def condition(self) -> tuple[str, dict[str, Any]]:
        """Matches this hold exactly as it was read."""
        return (
            "#state = :seenState AND amount = :seenAmount AND bucketKey = :seenBucket",
            {
                ":seenState": self.state,
                ":seenAmount": self.amount.amount_minor,
                ":seenBucket": self.bucket_key,
            },
        )


@dataclass(frozen=True)
class _Counts:
    orders: int
    spend: int


def _counts(item: dict[str, Any] | None, currency: str) -> _Counts:
    if item is None:
        return _Counts(0, 0)
    return _Counts(int(item.get("orders", 0)), int(item.get(_spend_attribute(currency), 0)))


class _Raced(Exception):
    """Something this change was computed from moved before it was written: read again."""


class DynamoDBOrderCounters:
    """The counters table of one brand (``COUNTERS_TABLE``)."""

    def __init__(self, table: Any) -> None:
        # The resource's client takes and returns plain Python values (it serialises them itself).
        self._client = table.meta.client
        self._name: str = table.name

    # ---- reservations ---------------------------------------------------------------------

    def reserve(
        self, goal_id: str, user_id: str, amount: Money, limits: DailyLimits, *, now: datetime
    ) -> bool:
        if amount.currency != limits.max_spend.currency:
            raise ValueError(
                f"a reservation in {amount.currency} against limits in {limits.max_spend.currency}"
            )
        for _ in range(_RACE_ATTEMPTS):
            try:
                return self._reserve_once(goal_id, user_id, amount, limits, now)
            except _Raced:
                continue
        raise RuntimeError(f"could not reserve against the limits of {self._name}: too many racing changes")

    def _reserve_once(
        self, goal_id: str, user_id: str, amount: Money, limits: DailyLimits, now: datetime
    ) -> bool:
        window = _window_keys(user_id, now)
        items = self._read([_hold_key(goal_id), *window])
        hold = _Hold.of(items.get(_hold_key(goal_id)))
        if hold is not None and hold.state == CONFIRMED:
            return False  # the order is placed: its count is final
        held = hold if hold is not None and hold.state == HELD else None
        if held is not None and held.amount == amount:
            return False
        if (
            held is not None
            and held.amount.currency == amount.currency
            and amount.amount_minor < held.amount.amount_minor
        ):
            # Lowering (an approver left gift-wrap out) never breaks a limit: no limit condition.
            self._write(
                [
                    self._put_hold(goal_id, user_id, held.bucket_key, amount, HELD, now, hold),
                    self._add(
                        held.bucket_key,
                        0,
                        amount.amount_minor - held.amount.amount_minor,
                        amount.currency,
                        now,
                    ),
                ]
            )
            return True

        currency = amount.currency
        current_key, previous_key = window[0], window[1]
        window_orders = sum(_counts(items.get(key), currency).orders for key in window)
        window_spend = sum(_counts(items.get(key), currency).spend for key in window)
        current = _counts(items.get(current_key), currency)
        # The rest of the window once this change is written: the old hold leaves its bucket.
        rest_orders = window_orders - current.orders
        rest_spend = window_spend - current.spend
        add_orders, add_spend = 1, amount.amount_minor
        if held is not None and held.bucket_key == current_key:
            add_orders, add_spend = 0, amount.amount_minor - held.amount.amount_minor
        elif held is not None and held.bucket_key in window and held.amount.currency == currency:
            rest_orders -= 1
            rest_spend -= held.amount.amount_minor
        # The most the current bucket may hold before this change for the window to stay within limits.
        most_orders = limits.max_orders - rest_orders - add_orders
        most_spend = limits.max_spend.amount_minor - rest_spend - add_spend
        if current.orders > most_orders or current.spend > most_spend:
            raise LimitReached(
                f"{window_orders} orders and {Money(amount_minor=window_spend, currency=currency).format()} "
                "in the last 24 hours leave no room for this order"
            )
        spend_name = _spend_attribute(currency)
        writes: list[dict[str, Any]] = [
            self._put_hold(goal_id, user_id, current_key, amount, HELD, now, hold),
            {
                "Update": {
                    "TableName": self._name,
                    "Key": {"pk": current_key},
                    "UpdateExpression": "ADD orders :orders, #spend :spend SET expiresAt = :expires",
                    "ConditionExpression": "(attribute_not_exists(orders) OR orders <= :mostOrders) "
                    "AND (attribute_not_exists(#spend) OR #spend <= :mostSpend)",
                    "ExpressionAttributeNames": {"#spend": spend_name},
                    "ExpressionAttributeValues": {
                        ":orders": add_orders,
                        ":spend": add_spend,
                        ":expires": _expires_at(now),
                        ":mostOrders": most_orders,
                        ":mostSpend": most_spend,
                    },
                }
            },
        ]
        seen = _counts(items.get(previous_key), currency)
        pinned: dict[str, Any] = {
            "ConditionExpression": "(attribute_not_exists(orders) OR orders <= :seenOrders) "
            "AND (attribute_not_exists(#spend) OR #spend <= :seenSpend)",
            "ExpressionAttributeNames": {"#spend": spend_name},
            "ExpressionAttributeValues": {":seenOrders": seen.orders, ":seenSpend": seen.spend},
        }
        if held is not None and held.bucket_key != current_key:
            old = self._add(held.bucket_key, -1, -held.amount.amount_minor, held.amount.currency, now)
            if held.bucket_key == previous_key:
                # One operation per item in a transaction: the pin rides on the old bucket's update.
                old["Update"]["ConditionExpression"] = pinned["ConditionExpression"]
                old["Update"]["ExpressionAttributeNames"] = {
                    **old["Update"]["ExpressionAttributeNames"],
                    **pinned["ExpressionAttributeNames"],
                }
                old["Update"]["ExpressionAttributeValues"].update(pinned["ExpressionAttributeValues"])
            writes.append(old)
        if held is None or held.bucket_key != previous_key:
            writes.append(
                {"ConditionCheck": {"TableName": self._name, "Key": {"pk": previous_key}, **pinned}}
            )
        self._write(writes)
        return True

    def release(self, goal_id: str, *, at: datetime) -> bool:
        for _ in range(_RACE_ATTEMPTS):
            hold = _Hold.of(self._get(_hold_key(goal_id)))
            if hold is None or hold.state == RELEASED:
                return False
            update_hold = self._put_hold(goal_id, None, hold.bucket_key, hold.amount, RELEASED, at, hold)
            give_back = self._add(hold.bucket_key, -1, -hold.amount.amount_minor, hold.amount.currency, at)
            # Never below zero: a bucket gone by TTL (or never written) has nothing to give back.
            give_back["Update"]["ConditionExpression"] = "orders >= :one AND #spend >= :amount"
            give_back["Update"]["ExpressionAttributeValues"].update(
                {":one": 1, ":amount": hold.amount.amount_minor}
            )
            try:
                self._write([update_hold, give_back])
                return True
            except _Raced as raced:
                if raced.args and raced.args[0] == {1}:
                    try:
                        self._write([update_hold])
                        return True
                    except _Raced:
                        continue
                continue
        raise RuntimeError(f"could not release a reservation in {self._name}: too many racing changes")

    def record_order(self, goal_id: str, user_id: str, total: Money, *, at: datetime) -> bool:
        """Confirms the order at its final total; an order that reserved nothing is counted in this hour."""
        for _ in range(_RACE_ATTEMPTS):
            hold = _Hold.of(self._get(_hold_key(goal_id)))
            if hold is not None and hold.state == CONFIRMED:
                return False
            if hold is not None and hold.state == HELD and hold.amount.currency == total.currency:
                # The order exists whatever it cost: its final total replaces the reservation.
                writes = [self._put_hold(goal_id, user_id, hold.bucket_key, total, CONFIRMED, at, hold)]
                if total != hold.amount:
                    writes.append(
                        self._add(
                            hold.bucket_key,
                            0,
                            total.amount_minor - hold.amount.amount_minor,
                            total.currency,
                            at,
                        )
                    )
            else:
                writes = [
                    self._put_hold(goal_id, user_id, _bucket_key(user_id, at), total, CONFIRMED, at, hold)
                ]
                if hold is not None and hold.state == HELD:
                    writes.append(
                        self._add(hold.bucket_key, -1, -hold.amount.amount_minor, hold.amount.currency, at)
                    )
                writes.append(self._add(_bucket_key(user_id, at), 1, total.amount_minor, total.currency, at))
            try:
                self._write(writes)
                return True
            except _Raced:
                continue
        raise RuntimeError(f"could not confirm an order in {self._name}: too many racing changes")

    # ---- reading --------------------------------------------------------------------------

    def recent_activity(self, user_id: str, *, now: datetime, excluding: str | None = None) -> RecentActivity:
        """Sums the user's buckets for the last 24 hours, read consistently."""
        window = _window_keys(user_id, now)
        keys = [*window, _hold_key(excluding)] if excluding else window
        items = self._read(keys)
        orders = 0
        spend: dict[str, int] = {}
        for key in window:
            item = items.get(key) or {}
            orders += int(item.get("orders", 0))
            for name, value in item.items():
                if name.startswith("spend_"):
                    currency = name.removeprefix("spend_")
                    spend[currency] = spend.get(currency, 0) + int(value)
        own = _Hold.of(items.get(_hold_key(excluding))) if excluding else None
        if own is not None and own.state != RELEASED and own.bucket_key in window:
            orders -= 1
            currency = own.amount.currency
            spend[currency] = spend.get(currency, 0) - own.amount.amount_minor
        return RecentActivity(orders=orders, spend_minor={c: v for c, v in spend.items() if v})

    def _get(self, key: str) -> dict[str, Any] | None:
        # BatchGetItem, as every read here: the role holds one read action on this table.
        return self._read([key]).get(key)

    def _read(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        pending: list[dict[str, Any]] = [{"pk": key} for key in keys]
        items: dict[str, dict[str, Any]] = {}
        for _ in range(_BATCH_ATTEMPTS):
            response = self._client.batch_get_item(
                RequestItems={self._name: {"Keys": pending, "ConsistentRead": True}}
            )
            for item in response.get("Responses", {}).get(self._name, []):
                items[str(item["pk"])] = item
            pending = response.get("UnprocessedKeys", {}).get(self._name, {}).get("Keys", [])
            if not pending:
                return items
        # A partial sum would under-count and let an order through a limit: refuse instead.
        raise RuntimeError(f"could not read {len(pending)} order counters from {self._name}")

    # ---- writing --------------------------------------------------------------------------

    def _put_hold(
        self,
        goal_id: str,
        user_id: str | None,
        bucket_key: str,
        amount: Money,
        state: str,
        at: datetime,
        seen: _Hold | None,
    ) -> dict[str, Any]:
        names = {"#state": "state"}
        values: dict[str, Any] = {
            ":state": state,
            ":bucket": bucket_key,
            ":amount": amount.amount_minor,
            ":currency": amount.currency,
            ":expires": _expires_at(at),
            ":at": at.astimezone(UTC).isoformat(timespec="seconds"),
        }
        expression = "SET #state = :state, bucketKey = :bucket, amount = :amount, currency = :currency, "
        expression += "expiresAt = :expires, changedAt = :at"
        if user_id is not None:
            expression += ", userId = :user"
            values[":user"] = user_id
        if seen is None:
            condition = "attribute_not_exists(#state)"
        else:
            condition, seen_values = seen.condition()
            values.update(seen_values)
        return {
            "Update": {
                "TableName": self._name,
                "Key": {"pk": _hold_key(goal_id)},
                "UpdateExpression": expression,
                "ConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def _add(self, bucket_key: str, orders: int, spend: int, currency: str, at: datetime) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self._name,
                "Key": {"pk": bucket_key},
                "UpdateExpression": "ADD orders :orders, #spend :spend SET expiresAt = if_not_exists(expiresAt, :expires)",
                "ExpressionAttributeNames": {"#spend": _spend_attribute(currency)},
                "ExpressionAttributeValues": {
                    ":orders": orders,
                    ":spend": spend,
                    ":expires": _expires_at(at),
                },
            }
        }

    def _write(self, items: list[dict[str, Any]]) -> None:
        if len(items) == 1 and "Update" in items[0]:
            # One item needs no transaction: a conditional update is as atomic at half the write units.
            try:
                self._client.update_item(**items[0]["Update"])
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                    raise _Raced({0}) from exc
                raise
            return
        try:
            self._client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            failed = _failed_conditions(exc)
            if failed is None:
                raise
            raise _Raced(failed) from exc


def _failed_conditions(error: ClientError) -> set[int] | None:
    """The positions whose condition failed or conflicted, or None when the error is no such thing."""
    if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return None
    reasons = error.response.get("CancellationReasons") or []
    failed = {
        position
        for position, reason in enumerate(reasons)
        if reason.get("Code") in ("ConditionalCheckFailed", "TransactionConflict")
    }
    if reasons:
        return failed or None
    # Some emulators omit the reasons; the message still names the failed condition.
    return {-1} if "ConditionalCheckFailed" in str(error) or "TransactionConflict" in str(error) else None
