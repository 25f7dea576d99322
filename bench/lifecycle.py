"""What follows a completed goal, for ``bench/cost.py``'s ``delivered`` path: the order ships and is
delivered, and the shopper is told of each.

The sandbox merchant's test routes (``POST /_sandbox/orders/{id}/ship`` and ``/deliver``) move the
order and push the order event to the brand's webhook, through API Gateway and the api function,
which records it and queues the snapshot on the order's link (``ORDER#<merchant>#<order>``). The
tracking sweep applies it: it updates the goal's tracking and sends each shipment notice once,
under a claim (``NOTICE#<goal>#<kind>``; a send that fails gives the claim back), then clears the
pending snapshot. The notices sweep tells due status changes (the completed goal's brand notice)
and takes them off the goal's ``noticesDue``.

So a step has settled, its notice sent, when its notice's claim is held and the order's link has
no snapshot waiting; the goal's life has ended when, besides, nothing is due on the goal's item and
the order has left the tracking sweep's list. Everything here reads the goals table from the bench,
not through a function: reads the bench makes are no cost of the goal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

# Each test route of the sandbox merchant and the shipment notice it leads to.
SHIPMENT_STEPS: Final = (("ship", "shipped"), ("deliver", "delivered"))


def notice_key(goal_id: str, kind: str) -> dict[str, str]:
    return {"pk": f"NOTICE#{goal_id}#{kind}"}


def goal_key(goal_id: str) -> dict[str, str]:
    return {"pk": f"GOAL#{goal_id}"}


def awaited(
    *,
    kinds: tuple[str, ...],
    notices: Mapping[str, Mapping[str, Any] | None],
    order_link: Mapping[str, Any] | None,
    goal: Mapping[str, Any] | None = None,
    final: bool = False,
) -> list[str]:
    """What the goal still waits for before the notices of ``kinds`` count as sent (empty: settled).

    ``notices`` maps each kind to its claim item (None: not claimed); ``order_link`` is the order's
    link item; with ``final``, the goal's item must have no notice due and the order must have left
    the tracking sweep's list (a pushed order leaves it with its snapshot, a polled one once its
    shipment stops moving)."""
    waiting: list[str] = []
    if order_link is None:
        waiting.append("the order's link")
    elif order_link.get("pendingOrder"):
        waiting.append("the tracking sweep to apply the order event")
    for kind in kinds:
        claim = notices.get(kind)
        if claim is None or claim.get("released"):
            waiting.append(f"the {kind} notice")
    if final:
        if goal is None:
            waiting.append("the goal")
        elif goal.get("noticesDue"):
            waiting.append(f"status notices {sorted(goal['noticesDue'])}")
        if order_link is not None and order_link.get("openTracking"):
            waiting.append("the order to leave the tracking sweep's list")
    return waiting


class GoalsTable:
    """The bench's own reads of the goals table (no function's call, so not metered)."""

    def __init__(self, brand: str, region: str = "us-east-1") -> None:
        import boto3

        self._table = boto3.resource("dynamodb", region_name=region).Table(f"cartpilot-{brand}-goals")

    def _get(self, key: Mapping[str, str]) -> dict[str, Any] | None:
        item = self._table.get_item(Key=dict(key), ConsistentRead=True).get("Item")
        return dict(item) if item else None

    def order_id(self, goal_id: str) -> str | None:
        """The order the goal placed, from its link (written with the receipt)."""
        link = self.order_link(goal_id) or {}
        return str(link["orderId"]) if link.get("orderId") else None

    def order_link(self, goal_id: str) -> dict[str, Any] | None:
        """The goal's ``ORDER#...`` link item (a scan: the bench's table holds a handful of goals)."""
        from boto3.dynamodb.conditions import Attr

        scan: dict[str, Any] = {
            "FilterExpression": Attr("pk").begins_with("ORDER#") & Attr("goalId").eq(goal_id)
        }
        while True:
            page = self._table.scan(**scan)
            if page.get("Items"):
                return dict(page["Items"][0])
            if "LastEvaluatedKey" not in page:
                return None
            scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def awaited(self, goal_id: str, kinds: tuple[str, ...], *, final: bool) -> list[str]:
        return awaited(
            kinds=kinds,
            notices={kind: self._get(notice_key(goal_id, kind)) for kind in kinds},
            order_link=self.order_link(goal_id),
            goal=self._get(goal_key(goal_id)) if final else None,
            final=final,
        )

    def sweeps_busy(self) -> list[str]:
        """Work the sweeps still have for any goal: due status notices, order events not applied.
        A goal's window opens only when there is none, so what the sweeps do in it is its own."""
        from boto3.dynamodb.conditions import Key

        busy: list[str] = []
        for index, name, value, what in (
            ("noticesDue", "noticeQueue", "DUE", "status notices due"),
            ("openTracking", "openTracking", "pending", "order events waiting"),
        ):
            page = self._table.query(IndexName=index, KeyConditionExpression=Key(name).eq(value), Limit=1)
            if page.get("Items"):
                busy.append(what)
        return busy
