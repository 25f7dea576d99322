"""Mandate budgets on the counters table: what each schedule's occurrences hold, within ``maxTotal``.

One item per schedule (``pk = "mandate#<scheduleId>"``) holds ``spent`` per currency; one item per
occurrence goal (``pk = "mandatehold#<goalId>"``) names its schedule, amount and state (held,
released). Every change is one transaction of the hold item (conditioned on the state it was read
in, so a retry never holds or gives back twice) and the schedule's total, whose ADD is conditioned on
the room left: ``spent <= maxTotal - amount``, so two occurrences cannot both take the last of it.
The role's actions on the table are those of the order counters (BatchGetItem, UpdateItem).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from cartpilot.kernel.money import Money
from cartpilot.plans.mandate_budget import MandateBudgetExhausted

HELD = "held"
RELEASED = "released"
_RACE_ATTEMPTS = 25


def _budget_key(schedule_id: str) -> str:
    return f"mandate#{schedule_id}"


def _hold_key(goal_id: str) -> str:
    return f"mandatehold#{goal_id}"


def _spent_attribute(currency: str) -> str:
    return f"spent_{currency}"


@dataclass(frozen=True)
class _Hold:
    state: str
    schedule_id: str
    amount: Money

    @classmethod
    def of(cls, item: dict[str, Any] | None) -> _Hold | None:
        if item is None or "state" not in item:
            return None
        return cls(
            state=str(item["state"]),
            schedule_id=str(item["scheduleId"]),
            amount=Money(amount_minor=int(item["amount"]), currency=str(item["currency"])),
        )


class _Raced(Exception):
    """A condition failed; ``args[0]`` holds the indexes of the failed operations."""


class DynamoDBMandateBudget:
    def __init__(self, table: Any) -> None:
        self._client = table.meta.client
        self._name: str = table.name

    def reserve(self, schedule_id: str, goal_id: str, amount: Money, max_total: Money) -> bool:
        if amount.currency != max_total.currency:
            raise ValueError(f"a hold in {amount.currency} against a budget in {max_total.currency}")
        for _ in range(_RACE_ATTEMPTS):
            hold = _Hold.of(self._get(_hold_key(goal_id)))
            held = hold if hold is not None and hold.state == HELD else None
            if held is not None and held.amount == amount and held.schedule_id == schedule_id:
                return False
            writes = [self._put_hold(goal_id, schedule_id, amount, HELD, hold)]
            add = amount.amount_minor
            if (
                held is not None
                and held.schedule_id == schedule_id
                and held.amount.currency == amount.currency
            ):
                add -= held.amount.amount_minor
            elif held is not None:
                writes.append(self._add(held.schedule_id, -held.amount.amount_minor, held.amount.currency))
            change = self._add(schedule_id, add, amount.currency)
            if add > 0:
                # The room left, written into the ADD's condition: the check and the add are one step.
                change["Update"]["ConditionExpression"] = "attribute_not_exists(#spent) OR #spent <= :most"
                change["Update"]["ExpressionAttributeValues"][":most"] = max_total.amount_minor - add
                if max_total.amount_minor - add < 0:
                    raise MandateBudgetExhausted(f"{amount.format()} is more than the mandate's whole budget")
            writes.insert(1, change)
            try:
                self._write(writes)
                return True
            except _Raced as raced:
                if raced.args and 1 in raced.args[0]:
                    raise MandateBudgetExhausted(
                        f"the mandate's budget of {max_total.format()} has no room for {amount.format()}"
                    ) from None
                continue
        raise RuntimeError(f"could not hold a mandate budget in {self._name}: too many racing changes")

    def release(self, goal_id: str) -> bool:
        for _ in range(_RACE_ATTEMPTS):
            hold = _Hold.of(self._get(_hold_key(goal_id)))
            if hold is None or hold.state != HELD:
                return False
            give_back = self._add(hold.schedule_id, -hold.amount.amount_minor, hold.amount.currency)
            try:
                self._write(
                    [self._put_hold(goal_id, hold.schedule_id, hold.amount, RELEASED, hold), give_back]
                )
                return True
            except _Raced:
                continue
        raise RuntimeError(f"could not release a mandate hold in {self._name}: too many racing changes")

    def spent(self, schedule_id: str, currency: str) -> Money:
        item = self._get(_budget_key(schedule_id)) or {}
        return Money(amount_minor=int(item.get(_spent_attribute(currency), 0)), currency=currency)

    def _get(self, key: str) -> dict[str, Any] | None:
        # BatchGetItem, as the order counters read: the role holds that one read action on the table.
        response = self._client.batch_get_item(
            RequestItems={self._name: {"Keys": [{"pk": key}], "ConsistentRead": True}}
        )
        if response.get("UnprocessedKeys", {}).get(self._name):
            raise RuntimeError(f"could not read {key.split('#', 1)[0]} from {self._name}")
        items = response.get("Responses", {}).get(self._name, [])
        return dict(items[0]) if items else None

    def _put_hold(
        self, goal_id: str, schedule_id: str, amount: Money, state: str, seen: _Hold | None
    ) -> dict[str, Any]:
        values: dict[str, Any] = {
            ":state": state,
            ":schedule": schedule_id,
            ":amount": amount.amount_minor,
            ":currency": amount.currency,
        }
        if seen is None:
            condition = "attribute_not_exists(#state)"
        else:
            condition = "#state = :seenState AND amount = :seenAmount AND scheduleId = :seenSchedule"
            values.update(
                {
                    ":seenState": seen.state,
                    ":seenAmount": seen.amount.amount_minor,
                    ":seenSchedule": seen.schedule_id,
                }
            )
        return {
            "Update": {
                "TableName": self._name,
                "Key": {"pk": _hold_key(goal_id)},
                "UpdateExpression": "SET #state = :state, scheduleId = :schedule, amount = :amount, "
                "currency = :currency",
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {"#state": "state"},
                "ExpressionAttributeValues": values,
            }
        }

    def _add(self, schedule_id: str, amount_minor: int, currency: str) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self._name,
                "Key": {"pk": _budget_key(schedule_id)},
                "UpdateExpression": "ADD #spent :amount",
                "ExpressionAttributeNames": {"#spent": _spent_attribute(currency)},
                "ExpressionAttributeValues": {":amount": amount_minor},
            }
        }

    def _write(self, items: list[dict[str, Any]]) -> None:
        try:
            self._client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = exc.response.get("CancellationReasons", [])
            failed = {i for i, reason in enumerate(reasons) if reason.get("Code") == "ConditionalCheckFailed"}
            raise _Raced(failed) from exc
