"""How a goal ends: confirming the order, the receipt, and the notices for every other ending."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cartpilot.approvals.delivery import close_on_expiry
from cartpilot.approvals.model import STEP_UP_LOCK
from cartpilot.approvals.ports import ApprovalStore
from cartpilot.audit.privacy import describe_recipient, scrub_text
from cartpilot.brands.activity import OrderCounters
from cartpilot.brands.config import BrandConfig
from cartpilot.commerce.errors import PlanIntegrityError
from cartpilot.commerce.ports import Merchant
from cartpilot.goals.events import OutcomeRecorded, ReceiptSent
from cartpilot.goals.ledger import DeferredHead, GoalLedger
from cartpilot.goals.model import GoalStatus, Receipt, ReceiptLine, delivery_estimate
from cartpilot.goals.ports import Notifier
from cartpilot.goals.reasons import ReasonCode, reason_for_error, shopper_reason
from cartpilot.goals.undo import undo_action, undo_deadline, undo_notice
from cartpilot.kernel.clock import utc_now, utc_now_iso
from cartpilot.kernel.money import Money
from cartpilot.plans.drift import within_tolerance
from cartpilot.plans.model import Plan
from cartpilot.plans.reservations import confirm_for_goal, release_for_goal
from cartpilot.plans.verdicts import RiskTier, Verdict
from cartpilot.shopper_view.links import ViewLinks

_OUTCOME_SUBJECTS = {
    GoalStatus.DENIED: "We could not place your order",
    GoalStatus.REJECTED: "Your order was not approved",
    GoalStatus.EXPIRED: "Your order approval expired",
    GoalStatus.FAILED: "We could not plan your order",
    GoalStatus.NEEDS_ATTENTION: "Your order needs our attention",
    GoalStatus.PLANNED_ONLY: "Your order was planned but not placed",
}


_ENDED_WITHOUT_ORDER = frozenset(
    {GoalStatus.DENIED, GoalStatus.REJECTED, GoalStatus.EXPIRED, GoalStatus.FAILED, GoalStatus.PLANNED_ONLY}
)


def _order_output(outputs: dict[str, Any]) -> dict[str, Any]:
    for output in outputs.values():
        if isinstance(output, dict) and output.get("orderId"):
            return output
    raise PlanIntegrityError("no order was placed")


def confirm_order(
    goal_id: str,
    outputs: dict[str, Any],
    *,
    ledger: GoalLedger,
    merchants: Callable[[str], Merchant],
    tolerance_percent: int = 0,
) -> dict[str, Any]:
    """Reads the order back from the plan's merchant and checks it is what the plan bought: at the
    total the payment step accepted, which the drift rule keeps within tolerance of the approved one."""
    goal = ledger.store.require(goal_id)
    plan = goal.current_plan()
    placed = _order_output(outputs)
    order = merchants(plan.merchant.id).orders.get(str(placed["orderId"]), placed.get("checkoutId"))
    accepted = Money.model_validate(placed["total"]) if placed.get("total") else plan.summary.total
    if order.total != accepted or not within_tolerance(plan.summary.total, accepted, tolerance_percent):
        raise PlanIntegrityError(
            f"order {order.id} totals {order.total.format()}, not {plan.summary.total.format()}"
        )
    confirmation = {
        "orderId": order.id,
        "checkoutId": order.checkoutId,
        "status": order.status,
        "total": order.total.model_dump(mode="json"),
    }
    # The flow's next step writes the goal in every case (the receipt's move to COMPLETED, or the
    # undo of the steps when it fails), pointing the chain head past this record: no head write here.
    # Until then the record follows the head, anchored as every record is.
    ledger.note(
        goal_id,
        actor="connector:orders",
        event="order.confirmed",
        plan_hash=goal.planHash,
        detail=confirmation,
        move_head=False,
    )
    return {**outputs, "confirm": confirmation}


def send_receipt(
    goal_id: str,
    outputs: dict[str, Any],
    *,
    ledger: GoalLedger,
    notifier: Notifier,
    brand: BrandConfig,
    counters: OrderCounters,
    view_links: ViewLinks | None = None,
) -> ReceiptSent:
    """``view_links``: signs the shopper's view link the receipt carries as ``viewUrl``."""
    goal = ledger.store.require(goal_id)
    if goal.status is GoalStatus.COMPLETED and goal.receipt is not None:
        # A retry after the goal was completed: finish what the failed attempt left undone,
        # keeping the receipt and the undo window the first attempt recorded.
        if goal.receiptSentAt is None:
            _record_completion_once(ledger, goal.goalId, goal.receipt, goal.planHash)
            with ledger.head_deferred(goal_id) as delivered:
                _tell_shopper(
                    notifier, goal.goalId, goal.userId, goal.receipt, goal.undoUntil, goal.current_plan(),
                    view_links,
                )  # fmt: skip
            _mark_receipt_sent(ledger, goal_id, delivered)
        return ReceiptSent(orderId=goal.receipt.orderId, undoUntil=goal.undoUntil)
    plan = goal.current_plan()
    order = outputs.get("confirm") or _order_output(outputs)
    summary = plan.summary
    receipt = Receipt(
        orderId=str(order["orderId"]),
        checkoutId=str(order["checkoutId"]),
        # What the merchant charged: the approved total, or a move within tolerance the audit names.
        total=Money.model_validate(order["total"]) if order.get("total") else summary.total,
        items=[
            ReceiptLine(title=item.title, quantity=item.quantity, unitPrice=item.unitPrice)
            for item in summary.items
        ],
        recipient=describe_recipient(summary.recipient),
        deliveryEstimate=delivery_estimate(summary.shipping),
        merchantStatus=str(order.get("status", "")),
    )
    # None where the merchant offers no way to cancel: no undo window opens (the flow skips it).
    undo_until = undo_deadline(plan, brand.undoWindowSeconds, utc_now())
    # Confirmed before the goal is marked complete (the order exists either way), at what the
    # merchant charged; a retried receipt confirms it once. The spend and velocity policies read it.
    confirm_for_goal(goal_id, goal.userId, receipt.total, brand=brand, counters=counters, at=utc_now())
    ledger.transition(
        goal_id,
        GoalStatus.COMPLETED,
        actor="notify",
        event="order.completed",
        plan_hash=goal.planHash,
        detail={"orderId": receipt.orderId, "total": receipt.total.model_dump(mode="json")},
        receipt=receipt,
        undoUntil=undo_until,
    )
    with ledger.head_deferred(goal_id) as delivered:
        _tell_shopper(notifier, goal_id, goal.userId, receipt, undo_until, plan, view_links)
    _mark_receipt_sent(ledger, goal_id, delivered)
    return ReceiptSent(orderId=receipt.orderId, undoUntil=undo_until)


def _mark_receipt_sent(ledger: GoalLedger, goal_id: str, delivered: DeferredHead) -> None:
    """The receipt's sent mark, pointing the chain head past what its delivery recorded (the email's
    ``notification.delivered``) in the same write, instead of a head write of its own."""
    now = utc_now_iso()
    ledger.store.update(goal_id, updated_at=now, receiptSentAt=now, **delivered.fields())


def _record_completion_once(
    ledger: GoalLedger, goal_id: str, receipt: Receipt, plan_hash: str | None
) -> None:
    """The status was written before its audit record; a failure in between leaves the record to write."""
    if any(record.event == "order.completed" for record in ledger.audit.records(goal_id)):
        return
    ledger.note(
        goal_id,
        actor="notify",
        event="order.completed",
        status=GoalStatus.COMPLETED,
        plan_hash=plan_hash,
        detail={"orderId": receipt.orderId, "total": receipt.total.model_dump(mode="json")},
    )


def _tell_shopper(
    notifier: Notifier,
    goal_id: str,
    user_id: str,
    receipt: Receipt,
    undo_until: str | None,
    plan: Plan,
    view_links: ViewLinks | None = None,
) -> None:
    body: dict[str, Any] = {
        "orderId": receipt.orderId,
        "total": receipt.total.format(),
        "undoUntil": undo_until,
        # Cancel before shipment, return after, or none: as the approval page said.
        "undoAction": undo_action(plan),
    }
    notice = undo_notice(plan)
    if notice is not None:
        body["undo"] = notice
    if view_links is not None:
        # The shopper's own page of the order: status, tracking, undo (shopper_view).
        body["viewUrl"] = view_links.url_for(goal_id, user_id)
    notifier.send(
        kind="receipt",
        goal_id=goal_id,
        user_id=user_id,
        subject=f"Order {receipt.orderId} placed: {receipt.total.format()}",
        body=body,
    )


def record_outcome(
    goal_id: str,
    status: GoalStatus,
    *,
    error: dict[str, Any] | None,
    ledger: GoalLedger,
    notifier: Notifier,
    approvals: ApprovalStore | None = None,
    counters: OrderCounters | None = None,
    view_links: ViewLinks | None = None,
) -> OutcomeRecorded:
    """Ends a goal that did not complete, says why in the audit, and tells the shopper.

    A goal that ends without an order gives its hold on the daily limits back; one that needs a
    person keeps it (the merchant may have charged)."""
    goal = ledger.store.require(goal_id)
    reason = shopper_reason(outcome_reason(status, error))
    if status is GoalStatus.PLANNED_ONLY and goal.plannedOnly is not None:
        # Why the brand's rollout held the plan back (the validator recorded it on the goal).
        reason = shopper_reason(ReasonCode(goal.plannedOnly.reason.value))
    if status is GoalStatus.REJECTED and goal.approval and goal.approval.decidedBy == STEP_UP_LOCK:
        # Nobody said no: the approval locked after too many wrong one-time codes.
        reason = shopper_reason(ReasonCode.VERIFICATION_LOCKED)
    # The goal moves first: if it has moved on (approved at the last moment), nothing else changes.
    # The details (an exception's words, a merchant's) go to the audit only, masked there.
    ledger.transition(
        goal_id,
        status,
        actor="flow",
        event=f"goal.{status.value.lower()}",
        plan_hash=goal.planHash,
        detail={
            "reason": _detail(status, error, goal.verdict),
            "error": (error or {}).get("Error"),
            "reasonCode": reason.code.value,
        },
        failure=reason.message,
        reasonCode=reason.code.value,
    )
    if status is GoalStatus.EXPIRED and approvals is not None and goal.approval:
        close_on_expiry(goal, approvals=approvals, ledger=ledger)
    if counters is not None and status in _ENDED_WITHOUT_ORDER:
        release_for_goal(
            goal_id, counters=counters, ledger=ledger, actor="flow", why=f"goal {status.value.lower()}",
            at=utc_now(),
        )  # fmt: skip
    body: dict[str, Any] = {"status": status.value, "reason": reason.message, "reasonCode": reason.code.value}
    if view_links is not None:
        body["viewUrl"] = view_links.url_for(goal_id, goal.userId)
    notifier.send(
        kind="outcome",
        goal_id=goal_id,
        user_id=goal.userId,
        subject=_OUTCOME_SUBJECTS.get(status, "Your order"),
        body=body,
    )
    return OutcomeRecorded(status=status)


_REASON_BY_STATUS = {
    GoalStatus.DENIED: ReasonCode.POLICY_DENIED,
    GoalStatus.REJECTED: ReasonCode.APPROVAL_REJECTED,
    GoalStatus.EXPIRED: ReasonCode.APPROVAL_EXPIRED,
    GoalStatus.NEEDS_ATTENTION: ReasonCode.NEEDS_ATTENTION,
    GoalStatus.PLANNED_ONLY: ReasonCode.ROLLOUT_READ_ONLY,
}


def outcome_reason(status: GoalStatus, error: dict[str, Any] | None) -> ReasonCode:
    """What the shopper is told about a goal that ended ``status`` after ``error`` (if any)."""
    if status in _REASON_BY_STATUS:
        return _REASON_BY_STATUS[status]
    return reason_for_error((error or {}).get("Error"))


def failure_code(error: dict[str, Any] | None) -> ReasonCode | None:
    """The shopper's reason for a Step Functions error, or None when there was none."""
    return reason_for_error(error.get("Error")) if error else None


def _detail(status: GoalStatus, error: dict[str, Any] | None, verdict: Verdict | None) -> str:
    if status is GoalStatus.DENIED and verdict:
        denials = [r.message for r in verdict.reasons if r.tier is RiskTier.DENY]
        return "; ".join(denials) or "the plan breaks the brand's policies"
    if status is GoalStatus.PLANNED_ONLY:
        return "the brand's rollout let the plan be checked but nothing mutating run"
    if status is GoalStatus.REJECTED:
        return "the approver rejected the plan"
    if status is GoalStatus.EXPIRED:
        return "nobody approved the plan in time"
    if error:
        return scrub_text(_cause_message(error))[:500]
    return status.value.lower()


def _cause_message(error: dict[str, Any]) -> str:
    """Step Functions passes a Lambda error as JSON text in ``Cause``; show its message."""
    cause = error.get("Cause")
    if isinstance(cause, str):
        try:
            parsed = json.loads(cause)
        except ValueError:
            return cause
        if isinstance(parsed, dict) and parsed.get("errorMessage"):
            return str(parsed["errorMessage"])
    return str(error.get("Error", "unknown error"))


def failure_reason(error: dict[str, Any] | None) -> str | None:
    """The error's own words for the audit (masked), or None when there was none. Never shown to
    the shopper: ``failure_code`` says what they see."""
    return scrub_text(_cause_message(error))[:500] if error else None
