"""Undo after shipment: the order's state at undo time decides between cancel and return.

The merchant is the authority on whether an order has shipped: its order (``GET /orders/{id}``,
UCP line statuses ``partial``/``fulfilled``) or, where the version has no order route, the
tracking its order events gave the goal. A cancel the merchant refuses because the order shipped
means the same. A shipped order is returned where the merchant offers returns (the goal becomes
``RETURN_REQUESTED`` with the merchant's return id, ``RETURNED`` once its refund arrives:
orders/returns.py); where it offers none, nothing automatic can take it back, and the goal ends
``NEEDS_ATTENTION`` for a person at once instead of retrying a cancel that cannot succeed.
"""

from __future__ import annotations

from cartpilot.commerce.errors import ConnectorError, MerchantRejected, UndoUnsupported
from cartpilot.commerce.ports import Merchant, Order
from cartpilot.execution.keys import step_idempotency_key
from cartpilot.goals.events import CompensationResult
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.model import GoalRecord, GoalStatus
from cartpilot.goals.ports import Notifier
from cartpilot.goals.reasons import REASON_MESSAGES, ReasonCode
from cartpilot.goals.undo import offers_return
from cartpilot.kernel.observability import logger, metrics

# wire.order_status once something has left the warehouse.
SHIPPED_ORDER_STATUSES = frozenset({"partial", "fulfilled"})
# Tracking statuses (fulfillment_event.json types) that mean the parcel is on its way or there.
SHIPPED_TRACKING = frozenset({"shipped", "in_transit", "out_for_delivery", "delivered"})
# What a merchant says when it will not cancel an order that has shipped.
SHIPPED_REFUSAL_CODES = frozenset({"order_fulfilled", "order_shipped", "already_fulfilled"})


def tracking_shows_shipment(goal: GoalRecord) -> bool:
    """Whether the goal's tracking (from the merchant's order events) says the order has shipped."""
    return goal.tracking is not None and goal.tracking.status.lower() in SHIPPED_TRACKING


def refused_as_shipped(error: Exception) -> bool:
    """A cancel the merchant refused because the order has shipped."""
    return isinstance(error, MerchantRejected) and (error.code or "") in SHIPPED_REFUSAL_CODES


def has_shipped(goal: GoalRecord, order: Order | None) -> bool:
    return (order is not None and order.status in SHIPPED_ORDER_STATUSES) or tracking_shows_shipment(goal)


def read_order(goal: GoalRecord, merchant: Merchant) -> Order | None:
    """The order as the merchant holds it; None where it cannot say (no order route, refused)."""
    if goal.receipt is None:
        return None
    try:
        return merchant.orders.get(goal.receipt.orderId, goal.receipt.checkoutId)
    except MerchantRejected as exc:
        logger.info("order not readable at undo", extra={"goalId": goal.goalId, "code": exc.code})
        return None


def undo_shipped_order(
    goal_id: str,
    *,
    ledger: GoalLedger,
    merchant: Merchant,
    notifier: Notifier | None,
    refused_shipped: bool = False,
) -> CompensationResult | None:
    """Files a return where the goal's order has shipped; None where it has not (cancel it then).

    ``refused_shipped``: the merchant has just refused to cancel because the order shipped.
    Transient merchant errors propagate, so the flow retries with the same idempotency key.
    """
    goal = ledger.store.require(goal_id)
    if goal.status is GoalStatus.RETURN_REQUESTED:
        # A retried step: the return was filed and told.
        return CompensationResult(status=goal.status, undone=[f"return {goal.returnId} filed"])
    if goal.receipt is None:
        return None
    if not refused_shipped and not has_shipped(goal, read_order(goal, merchant)):
        return None
    plan = goal.current_plan()
    order_id = goal.receipt.orderId
    if not offers_return(plan):
        return _needs_a_person(
            ledger, goal, f"order {order_id} has shipped and the merchant offers no returns here"
        )
    try:
        filed = merchant.orders.file_return(order_id, step_idempotency_key(goal_id, order_id, "return"))
    except (UndoUnsupported, MerchantRejected) as exc:
        # Retrying cannot help: the merchant will not take this return through us.
        return _needs_a_person(ledger, goal, f"order {order_id}: the return was refused: {exc}")
    except ConnectorError:
        raise
    ledger.transition(
        goal_id,
        GoalStatus.RETURN_REQUESTED,
        actor="compensator",
        event="return.requested",
        plan_hash=goal.planHash,
        detail={"orderId": order_id, "returnId": filed.returnId},
        returnId=filed.returnId,
    )
    metrics.add_metric(name="ReturnsRequested", unit="Count", value=1)
    if notifier is not None:
        notifier.send(
            kind="return-requested",
            goal_id=goal_id,
            user_id=goal.userId,
            subject=f"Return filed for order {order_id}",
            body={
                "orderId": order_id,
                "returnId": filed.returnId,
                "refund": "when the merchant receives the goods",
            },
        )
    return CompensationResult(status=GoalStatus.RETURN_REQUESTED, undone=[f"return {filed.returnId} filed"])


def _needs_a_person(ledger: GoalLedger, goal: GoalRecord, why: str) -> CompensationResult:
    ledger.transition(
        goal.goalId,
        GoalStatus.NEEDS_ATTENTION,
        actor="compensator",
        event="undo.shipped-not-returnable",
        plan_hash=goal.planHash,
        detail={"leftToFixByHand": [why]},
        failure=REASON_MESSAGES[ReasonCode.NEEDS_ATTENTION],
        reasonCode=ReasonCode.NEEDS_ATTENTION.value,
    )
    metrics.add_metric(name="NeedsAttention", unit="Count", value=1)
    return CompensationResult(status=GoalStatus.NEEDS_ATTENTION, undone=[], left=[why])
