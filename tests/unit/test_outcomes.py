"""How a goal ends, on the fakes: the order confirmed against the plan, the receipt counted once,
and every other ending recorded with its reason and told to the shopper."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

import pytest

from cartpilot.approvals.model import ApprovalStatus
from cartpilot.audit.chain import AuditRecord, verify_chain
from cartpilot.audit.ports import AuditRecords
from cartpilot.audit.trail import AuditTrail
from cartpilot.brands.config import BrandConfig
from cartpilot.brands.users import UserDirectory
from cartpilot.commerce.errors import PlanIntegrityError
from cartpilot.execution.outcomes import confirm_order, failure_reason, record_outcome, send_receipt
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.lifecycle import InvalidTransition
from cartpilot.goals.model import GoalStatus
from cartpilot.goals.reasons import REASON_MESSAGES, ReasonCode
from cartpilot.goals.undo import undo_action
from cartpilot.kernel.clock import utc_now
from cartpilot.plans.reservations import daily_limits
from cartpilot.plans.verdicts import Finding, RiskTier
from tests.conftest import SEED_GOAL, make_plan
from tests.fakes import (
    FakeMerchant,
    InMemoryAuditRecords,
    InMemoryGoalStore,
    InMemoryOrderCounters,
    RecordingNotifier,
)
from tests.fakes.merchant import cny
from tests.unit.stages import OrderFlow, verdict_for


def receipt(flow: OrderFlow, outputs: dict[str, Any]) -> dict[str, Any]:
    return send_receipt(
        flow.goal_id,
        outputs,
        ledger=flow.ledger,
        notifier=flow.notifier,
        brand=flow.brand,
        counters=flow.counters,
    ).model_dump(mode="json")


def outcome(
    flow: OrderFlow, status: GoalStatus, error: dict[str, Any] | None = None, *, with_approvals: bool = True
) -> dict[str, Any]:
    return record_outcome(
        flow.goal_id, status, error=error, ledger=flow.ledger, notifier=flow.notifier,
        approvals=flow.approvals if with_approvals else None,
    ).model_dump(mode="json")  # fmt: skip


def lambda_error(error_type: str, message: str) -> dict[str, Any]:
    """What Step Functions hands the Catch of a failed Lambda task."""
    return {
        "Error": error_type,
        "Cause": json.dumps({"errorMessage": message, "errorType": error_type, "stackTrace": ["..."]}),
    }


# --- confirming the order -----------------------------------------------------------------------------


def test_the_order_is_read_back_and_confirmed(flow: OrderFlow):
    outputs = flow.run_steps()
    order_id, session = outputs["s4"]["orderId"], outputs["s4"]["checkoutId"]

    confirmed = confirm_order(flow.goal_id, outputs, ledger=flow.ledger, merchants=flow.merchants)

    assert confirmed == {
        **outputs,
        "confirm": {
            "orderId": order_id,
            "checkoutId": session,
            "status": "confirmed",
            "total": flow.plan.summary.total.model_dump(mode="json"),
        },
    }
    assert [call.target for call in flow.shop.calls if call.operation == "orders.get"] == [order_id]
    record = flow.records()[-1]
    assert (record.event, record.actor, record.planHash) == (
        "order.confirmed",
        "connector:orders",
        flow.plan.plan_hash(),
    )
    assert record.detail == confirmed["confirm"]


def test_an_order_whose_total_differs_from_the_plan_is_refused(flow: OrderFlow):
    outputs = flow.run_steps()
    order_id = outputs["s4"]["orderId"]
    flow.shop.orders[order_id] = flow.shop.orders[order_id].model_copy(update={"total": cny("799.00")})
    events = flow.events()

    with pytest.raises(
        PlanIntegrityError, match=re.escape(f"order {order_id} totals 799.00 CNY, not 719.00 CNY")
    ):
        confirm_order(flow.goal_id, outputs, ledger=flow.ledger, merchants=flow.merchants)

    assert flow.events() == events  # nothing confirmed on record


def test_there_is_nothing_to_confirm_without_an_order(flow: OrderFlow):
    outputs = flow.run_steps("s1", "s2", "s3")
    with pytest.raises(PlanIntegrityError, match="no order was placed"):
        confirm_order(flow.goal_id, outputs, ledger=flow.ledger, merchants=flow.merchants)


# --- the receipt -------------------------------------------------------------------------------------------


def test_the_receipt_completes_the_goal_counts_the_order_and_tells_the_shopper(flow: OrderFlow):
    outputs = confirm_order(flow.goal_id, flow.run_steps(), ledger=flow.ledger, merchants=flow.merchants)
    order_id, summary = outputs["confirm"]["orderId"], flow.plan.summary
    before = utc_now()

    answer = receipt(flow, outputs)

    window = timedelta(seconds=flow.brand.undoWindowSeconds)
    undo_until = datetime.fromisoformat(answer["undoUntil"])
    assert before.replace(microsecond=0) + window <= undo_until <= utc_now() + window
    assert answer == {"orderId": order_id, "undoUntil": answer["undoUntil"]}

    goal = flow.goal()
    assert (goal.status, goal.undoUntil) == (GoalStatus.COMPLETED, answer["undoUntil"])
    assert goal.receipt is not None
    assert goal.receipt.model_dump(mode="json") == {
        "orderId": order_id,
        "checkoutId": outputs["confirm"]["checkoutId"],
        "total": summary.total.model_dump(mode="json"),
        "items": [
            {"title": "Swift Runner", "quantity": 1, "unitPrice": cny("699.00").model_dump(mode="json")},
            {"title": "Gift Wrap", "quantity": 1, "unitPrice": cny("20.00").model_dump(mode="json")},
        ],
        "recipient": "Zhang M., Beijing, BJ, CN (•••• 2266)",
        "deliveryEstimate": "2026-11-28 to 2026-12-01",
        "merchantStatus": "confirmed",
    }

    recent = flow.counters.recent_activity(flow.plan.userId, now=utc_now())
    assert (recent.orders, recent.spend("CNY")) == (1, summary.total)

    (message,) = flow.notifier.of_kind("receipt")
    assert message == {
        "kind": "receipt", "goalId": flow.goal_id, "userId": "user-1",
        "subject": f"Order {order_id} placed: 719.00 CNY",
        "orderId": order_id, "total": "719.00 CNY", "undoUntil": answer["undoUntil"],
        "undoAction": undo_action(flow.plan),
    }  # fmt: skip
    assert message["undoAction"].startswith("before it ships, the order is cancelled")
    record = flow.records()[-1]
    assert (record.event, record.actor, record.status) == ("order.completed", "notify", "COMPLETED")
    assert record.detail == {"orderId": order_id, "total": summary.total.model_dump(mode="json")}


def test_a_retried_receipt_counts_the_order_once(flow: OrderFlow):
    outputs = confirm_order(flow.goal_id, flow.run_steps(), ledger=flow.ledger, merchants=flow.merchants)
    first = receipt(flow, outputs)
    events = flow.events()
    second = receipt(flow, outputs)

    recent = flow.counters.recent_activity(flow.plan.userId, now=utc_now())
    assert (recent.orders, recent.spend("CNY")) == (1, flow.plan.summary.total)
    assert flow.goal().status is GoalStatus.COMPLETED
    assert second == first, "the undo window a shopper was told about does not move"
    assert [m["orderId"] for m in flow.notifier.of_kind("receipt")] == [outputs["confirm"]["orderId"]]
    assert flow.events() == events


def test_the_receipt_falls_back_to_the_payment_output_without_a_confirmation(flow: OrderFlow):
    outputs = flow.run_steps()
    assert receipt(flow, outputs)["orderId"] == outputs["s4"]["orderId"]
    assert flow.goal().receipt.merchantStatus == "confirmed"  # type: ignore[union-attr]


def test_a_receipt_message_carries_no_address_or_phone(flow: OrderFlow):
    flow.completed()
    text = json.dumps(flow.notifier.sent, ensure_ascii=False)
    for personal in ("Gongti", "1088", "100027", "Zhang Min"):
        assert personal not in text


# --- every other ending ----------------------------------------------------------------------------------


def test_a_denied_goal_says_which_policies_said_no(flow_for):
    denied = flow_for(route="deny")
    verdict = verdict_for(denied.plan, RiskTier.DENY).model_copy(
        update={"reasons": [
            Finding(policyId="limit.per-order", tier=RiskTier.DENY, message="3100.00 CNY is above the limit"),
            Finding(policyId="recipient.not-home", tier=RiskTier.APPROVAL, message="ships to a friend"),
            Finding(policyId="category.restricted", tier=RiskTier.DENY, message="knives are not sold here"),
        ]}
    )  # fmt: skip
    denied.ledger.store.update(denied.goal_id, updated_at="2026-11-25T12:00:00Z", verdict=verdict)

    assert outcome(denied, GoalStatus.DENIED) == {"status": "DENIED"}

    which = "3100.00 CNY is above the limit; knives are not sold here"
    shown = REASON_MESSAGES[ReasonCode.POLICY_DENIED]
    goal = denied.goal()
    assert (goal.status, goal.failure, goal.reasonCode) == (
        GoalStatus.DENIED,
        shown,
        ReasonCode.POLICY_DENIED,
    )
    record = denied.records()[-1]
    assert (record.event, record.actor, record.status) == ("goal.denied", "flow", "DENIED")
    # Which policies said no: in the audit (and the goal's verdict), not in the shopper's sentence.
    assert record.detail == {"reason": which, "error": None, "reasonCode": "POLICY_DENIED"}
    assert denied.notifier.sent == [
        {"kind": "outcome", "goalId": denied.goal_id, "userId": "user-1",
         "subject": "We could not place your order", "status": "DENIED", "reason": shown,
         "reasonCode": "POLICY_DENIED"},
    ]  # fmt: skip


def test_a_denial_without_a_denying_reason_still_says_why(flow_for):
    denied = flow_for(route="deny")
    verdict = verdict_for(denied.plan, RiskTier.DENY).model_copy(update={"reasons": []})
    denied.ledger.store.update(denied.goal_id, updated_at="2026-11-25T12:00:00Z", verdict=verdict)
    outcome(denied, GoalStatus.DENIED)
    assert denied.goal().failure == REASON_MESSAGES[ReasonCode.POLICY_DENIED]
    assert denied.records()[-1].detail["reason"] == "the plan breaks the brand's policies"


def test_a_rejected_goal_says_the_approver_said_no(flow_for):
    waiting = flow_for(route="pending")
    outcome(waiting, GoalStatus.REJECTED, {"Error": "ApprovalRejected", "Cause": "The approver said no."})

    goal = waiting.goal()
    assert (goal.status, goal.failure) == (GoalStatus.REJECTED, REASON_MESSAGES[ReasonCode.APPROVAL_REJECTED])
    assert waiting.records()[-1].detail == {
        "reason": "the approver rejected the plan",
        "error": "ApprovalRejected",
        "reasonCode": "APPROVAL_REJECTED",
    }
    (message,) = waiting.notifier.of_kind("outcome")
    assert message["subject"] == "Your order was not approved"


def test_an_expired_goal_marks_its_approval_expired(flow_for):
    waiting = flow_for(route="pending")
    approval_id = waiting.goal().approval.approvalId  # type: ignore[union-attr]
    assert waiting.approvals.get(approval_id).status is ApprovalStatus.PENDING  # type: ignore[union-attr]

    outcome(waiting, GoalStatus.EXPIRED, {"Error": "States.Timeout", "Cause": ""})

    approval = waiting.approvals.get(approval_id)
    assert approval is not None and approval.status is ApprovalStatus.EXPIRED
    assert approval.decidedAt is not None and approval.decidedBy is None
    goal = waiting.goal()
    assert (goal.status, goal.failure) == (GoalStatus.EXPIRED, REASON_MESSAGES[ReasonCode.APPROVAL_EXPIRED])
    (message,) = waiting.notifier.of_kind("outcome")
    assert (message["subject"], message["status"]) == ("Your order approval expired", "EXPIRED")


def test_an_expiry_recorded_without_the_approval_store_leaves_the_approval_alone(flow_for):
    waiting = flow_for(route="pending")
    approval_id = waiting.goal().approval.approvalId  # type: ignore[union-attr]
    outcome(waiting, GoalStatus.EXPIRED, with_approvals=False)
    assert waiting.goal().status is GoalStatus.EXPIRED
    assert waiting.approvals.get(approval_id).status is ApprovalStatus.PENDING  # type: ignore[union-attr]


def test_only_an_expiry_touches_the_approval(flow_for):
    waiting = flow_for(route="pending")
    approval_id = waiting.goal().approval.approvalId  # type: ignore[union-attr]
    outcome(waiting, GoalStatus.REJECTED)
    assert waiting.approvals.get(approval_id).status is ApprovalStatus.PENDING  # type: ignore[union-attr]


def test_a_failed_goal_tells_the_shopper_a_reason_and_keeps_the_message_masked_in_the_audit(flow_for):
    failed = flow_for(route="auto")
    error = lambda_error(
        "PlanningFailed", "no size 42 in stock; call me on +86 139 1088 2266 or lin.wei@example.com"
    )

    outcome(failed, GoalStatus.FAILED, error)

    detail = "no size 42 in stock; call me on ***** or *****"
    shown = REASON_MESSAGES[ReasonCode.PLAN_NOT_POSSIBLE]
    goal = failed.goal()
    assert (goal.status, goal.failure, goal.reasonCode) == (
        GoalStatus.FAILED,
        shown,
        ReasonCode.PLAN_NOT_POSSIBLE,
    )
    assert failed.records()[-1].detail == {
        "reason": detail,
        "error": "PlanningFailed",
        "reasonCode": "PLAN_NOT_POSSIBLE",
    }
    (message,) = failed.notifier.of_kind("outcome")
    assert (message["subject"], message["reason"], message["reasonCode"]) == (
        "We could not plan your order",
        shown,
        "PLAN_NOT_POSSIBLE",
    )
    assert failure_reason(error) == detail


@pytest.mark.parametrize(
    ("error", "detail", "code"),
    [
        ({"Error": "States.TaskFailed", "Cause": "the task failed: HTTP 500"}, "the task failed: HTTP 500",
         ReasonCode.INTERNAL_ERROR),
        ({"Error": "States.Timeout", "Cause": json.dumps({"detail": "no message"})}, "States.Timeout",
         ReasonCode.MERCHANT_UNAVAILABLE),
        ({"Error": "Lambda.Unknown"}, "Lambda.Unknown", ReasonCode.INTERNAL_ERROR),
        ({"Cause": json.dumps({"errorMessage": "x" * 600})}, "x" * 500, ReasonCode.INTERNAL_ERROR),
        ({"Error": "GoalUnclear", "Cause": json.dumps({"errorMessage": "day is out of range for month"})},
         "day is out of range for month", ReasonCode.REQUEST_UNCLEAR),
        ({"Error": "ValidationError", "Cause": json.dumps({"errorMessage": "1 validation error for GoalRef\n"
          "  For further information visit https://errors.pydantic.dev/2.11/v/missing"})},
         "1 validation error for GoalRef\n  For further information visit https://errors.pydantic.dev/2.11/v/missing",
         ReasonCode.INTERNAL_ERROR),
        (None, "failed", ReasonCode.INTERNAL_ERROR),
    ],
    ids=["plain-text-cause", "json-cause-without-message", "no-cause", "long-message", "unclear-goal",
         "pydantic-message", "no-error"],
)  # fmt: skip
def test_the_shopper_reason_comes_from_the_closed_set_and_the_detail_goes_to_the_audit(
    flow_for, error, detail, code
):
    failed = flow_for(route="auto")
    outcome(failed, GoalStatus.FAILED, error)
    goal = failed.goal()
    assert (goal.reasonCode, goal.failure) == (code, REASON_MESSAGES[code])
    assert failed.records()[-1].detail["reason"] == detail
    (message,) = failed.notifier.of_kind("outcome")
    assert (message["reasonCode"], message["reason"]) == (code.value, REASON_MESSAGES[code])


def test_no_error_gives_no_failure_reason():
    assert failure_reason(None) is None


def test_a_goal_needing_attention_says_so(flow: OrderFlow):
    flow.run_steps("s1")
    outcome(
        flow, GoalStatus.NEEDS_ATTENTION, lambda_error("CompensationIncomplete", "checkout cs-0: timeout")
    )
    assert flow.goal().status is GoalStatus.NEEDS_ATTENTION
    (message,) = flow.notifier.of_kind("outcome")
    assert (message["subject"], message["reason"]) == (
        "Your order needs our attention",
        REASON_MESSAGES[ReasonCode.NEEDS_ATTENTION],
    )
    assert flow.records()[-1].detail["reason"] == "checkout cs-0: timeout"


@pytest.mark.parametrize(
    ("route", "status"),
    [("auto", GoalStatus.REJECTED), ("auto", GoalStatus.EXPIRED), ("pending", GoalStatus.DENIED)],
)
def test_an_ending_the_lifecycle_does_not_allow_changes_nothing_and_tells_no_one(flow_for, route, status):
    goal = flow_for(route=route)
    before = (goal.goal(), goal.events())
    with pytest.raises(InvalidTransition):
        outcome(goal, status)
    assert (goal.goal(), goal.events()) == before
    assert goal.notifier.of_kind("outcome") == []


def test_an_expiry_that_comes_after_the_goal_moved_on_leaves_the_approval_alone(flow_for):
    waiting = flow_for(route="pending")
    approval_id = waiting.goal().approval.approvalId  # type: ignore[union-attr]
    # Approved at the last moment: the goal is executing when the timeout's outcome arrives.
    waiting.ledger.transition(
        waiting.goal_id, GoalStatus.EXECUTING, actor="executor", event="execution.started"
    )

    with pytest.raises(InvalidTransition):
        outcome(waiting, GoalStatus.EXPIRED, {"Error": "States.Timeout", "Cause": ""})

    assert waiting.goal().status is GoalStatus.EXECUTING
    assert waiting.approvals.get(approval_id).status is ApprovalStatus.PENDING  # type: ignore[union-attr]
    assert waiting.notifier.of_kind("outcome") == []


class NotifierDown(RecordingNotifier):
    """SNS refuses once (throttled), then works."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    def send(self, **message: Any) -> str:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("Throttling")
        return super().send(**message)


def test_a_receipt_retried_after_the_notice_failed_tells_the_shopper_once_with_the_same_window(
    flow: OrderFlow,
):
    outputs = confirm_order(flow.goal_id, flow.run_steps(), ledger=flow.ledger, merchants=flow.merchants)
    flow.notifier = NotifierDown()
    with pytest.raises(RuntimeError, match="Throttling"):
        receipt(flow, outputs)
    window = flow.goal().undoUntil
    assert flow.goal().status is GoalStatus.COMPLETED and window is not None

    answer = receipt(flow, outputs)  # Step Functions retries the state
    receipt(flow, outputs)  # and a duplicate delivery changes nothing more

    assert answer["undoUntil"] == window
    assert [m["undoUntil"] for m in flow.notifier.of_kind("receipt")] == [window]
    assert flow.events().count("order.completed") == 1
    recent = flow.counters.recent_activity(flow.plan.userId, now=utc_now())
    assert recent.orders == 1


class AuditDownOnce:
    """The audit table refuses the first write of one event (throttled), then works."""

    def __init__(self, records: AuditRecords, event: str) -> None:
        self.records, self.event, self.failures = records, event, 1

    def latest(self, goal_id: str) -> AuditRecord | None:
        return self.records.latest(goal_id)

    def all(self, goal_id: str) -> list[AuditRecord]:
        return self.records.all(goal_id)

    def insert(self, record: AuditRecord) -> None:
        if record.event == self.event and self.failures:
            self.failures -= 1
            raise RuntimeError("ProvisionedThroughputExceeded")
        self.records.insert(record)


def test_a_receipt_retried_after_the_audit_write_failed_records_the_completion_and_tells_the_shopper(
    merchant: FakeMerchant, brand: BrandConfig, users: UserDirectory
):
    records = AuditDownOnce(InMemoryAuditRecords(), "order.completed")
    plan = make_plan(merchant, brand, users, SEED_GOAL)
    flow = OrderFlow(
        brand=brand, users=users, merchant=merchant, plan=plan,
        ledger=GoalLedger(InMemoryGoalStore(), AuditTrail(records)),
    ).received().planned().validated("approve")  # fmt: skip
    outputs = confirm_order(flow.goal_id, flow.run_steps(), ledger=flow.ledger, merchants=flow.merchants)
    with pytest.raises(RuntimeError, match="ProvisionedThroughput"):
        receipt(flow, outputs)
    # The record is written before the status: neither is, and the retry does both.
    assert flow.goal().status is GoalStatus.EXECUTING and "order.completed" not in flow.events()

    receipt(flow, outputs)

    assert flow.events().count("order.completed") == 1
    assert len(flow.notifier.of_kind("receipt")) == 1
    assert verify_chain(flow.records(), expected_head=flow.goal().auditHead).valid


@pytest.mark.parametrize(
    ("status", "released"),
    [(GoalStatus.EXPIRED, True), (GoalStatus.REJECTED, True), (GoalStatus.NEEDS_ATTENTION, False)],
)
def test_a_goal_ending_without_an_order_gives_its_hold_on_the_daily_limits_back(
    flow_for, status: GoalStatus, released: bool
):
    waiting = flow_for(route="pending")
    counters = InMemoryOrderCounters()
    total = waiting.plan.summary.total
    counters.reserve(waiting.goal_id, "user-1", total, daily_limits(waiting.brand), now=utc_now())

    record_outcome(
        waiting.goal_id,
        status,
        error=None,
        ledger=waiting.ledger,
        notifier=waiting.notifier,
        counters=counters,
    )

    # Needing a person keeps the hold: the merchant may have charged.
    assert counters.recent_activity("user-1", now=utc_now()).orders == (0 if released else 1)
    assert ("limits.released" in waiting.events()) is released
