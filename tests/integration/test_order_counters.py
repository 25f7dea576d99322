"""Order counters on DynamoDB (moto): completed orders are counted once, and the validator reads them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from cartpilot.adapters.aws.counters_table import DynamoDBOrderCounters
from cartpilot.execution.outcomes import send_receipt
from cartpilot.goals.model import GoalContext, GoalRecord, GoalStatus, PriceCheck
from cartpilot.kernel.clock import utc_now, utc_now_iso
from cartpilot.plans.model import Plan, hash_plan_document
from cartpilot.plans.validation import validate_goal
from cartpilot.plans.verdicts import RiskTier
from cartpilot.wiring import counters as counters_from_env
from cartpilot.wiring import ledger as ledger_from_env
from tests.conftest import make_plan
from tests.fakes import FakeMerchant, RecordingNotifier, cny

NOW = datetime(2026, 11, 25, 12, 30, tzinfo=UTC)


def test_an_order_is_counted_once_however_often_its_receipt_is_retried(aws_tables):
    counters = counters_from_env()
    assert counters.record_order("g-1", "user-1", cny("59.00"), at=NOW) is True
    assert counters.record_order("g-1", "user-1", cny("59.00"), at=NOW + timedelta(hours=2)) is False
    assert counters.record_order("g-2", "user-1", cny("719.00"), at=NOW) is True
    recent = counters.recent_activity("user-1", now=NOW)
    assert (recent.orders, recent.spend("CNY")) == (2, cny("778.00"))
    assert counters.recent_activity("user-2", now=NOW).orders == 0


def test_only_the_last_24_hours_count(aws_tables):
    counters = counters_from_env()
    counters.record_order("g-old", "user-1", cny("1000.00"), at=NOW - timedelta(hours=24))
    counters.record_order("g-recent", "user-1", cny("59.00"), at=NOW - timedelta(hours=23))
    counters.record_order("g-now", "user-1", cny("59.00"), at=NOW)
    recent = counters.recent_activity("user-1", now=NOW)
    assert (recent.orders, recent.spend("CNY")) == (2, cny("118.00"))


def test_counter_items_expire_by_ttl(aws_tables):
    counters_from_env().record_order("g-1", "user-1", cny("59.00"), at=NOW)
    items = boto3.resource("dynamodb").Table("cartpilot-sandbox-counters").scan()["Items"]
    assert {item["pk"] for item in items} == {"hold#g-1", "user#user-1#2026-11-25T12"}
    assert all(int(item["expiresAt"]) > NOW.timestamp() + 24 * 3600 for item in items)


def _store_goal(
    plan: Plan, merchant: FakeMerchant, *, status: GoalStatus, document: dict[str, Any] | None = None
):
    ledger = ledger_from_env()
    now = utc_now_iso()
    current = merchant.catalog.lookup([item.itemId for item in plan.summary.items], plan.currency)
    ledger.store.create(
        GoalRecord(
            goalId=plan.goalId,
            userId=plan.userId,
            brand="sandbox",
            goal=plan.goal,
            context=GoalContext(),
            status=status,
            requestHash="test",
            createdAt=now,
            updatedAt=now,
            plan=document or plan.model_dump(mode="json"),
            planHash=plan.plan_hash(),
            priceCheck=PriceCheck(planId=plan.planId, checkedAt=now, items=current),
        )
    )
    return ledger


def test_the_validator_reads_the_users_recent_orders(aws_tables, merchant, brand, users):
    plan = make_plan(merchant, brand, users, "running socks for me")
    ledger = _store_goal(plan, merchant, status=GoalStatus.PLANNING)
    counters = counters_from_env()

    first = validate_goal(
        plan.goalId, plan.plan_hash(), ledger=ledger, brand=brand, users=users, counters=counters
    )
    assert first.tier is RiskTier.AUTO
    for number in range(brand.limits.maxOrdersPerDay):
        counters.record_order(f"g-earlier-{number}", "user-1", cny("59.00"), at=utc_now())
    again = validate_goal(
        plan.goalId, plan.plan_hash(), ledger=ledger, brand=brand, users=users, counters=counters
    )
    assert again.tier is RiskTier.DENY
    assert {reason.policyId for reason in again.reasons} == {"velocity.orders-per-day"}
    assert ledger.store.require(plan.goalId).verdict.tier is RiskTier.DENY  # type: ignore[union-attr]


def test_a_stored_plan_outside_the_plan_schema_is_denied(aws_tables, merchant, brand, users):
    plan = make_plan(merchant, brand, users, "running socks for me")
    document = plan.model_dump(mode="json")
    document["steps"][-1]["action"] = "payment.refund"
    # The flow carries the hash of the stored document, as the planner computed it.
    ledger = _store_goal(plan, merchant, status=GoalStatus.PLANNING, document=document)
    ledger.store.update(plan.goalId, updated_at=utc_now_iso(), planHash=hash_plan_document(document))
    verdict = validate_goal(
        plan.goalId,
        hash_plan_document(document),
        ledger=ledger,
        brand=brand,
        users=users,
        counters=counters_from_env(),
    )
    assert verdict.tier is RiskTier.DENY and [reason.policyId for reason in verdict.reasons] == [
        "plan.schema"
    ]


def test_a_receipt_counts_the_completed_order(aws_tables, merchant, brand, users):
    plan = make_plan(merchant, brand, users, "running socks for me")
    ledger = _store_goal(plan, merchant, status=GoalStatus.EXECUTING)
    outputs = {"s3": {"orderId": "o-1", "checkoutId": "cs-1", "status": "confirmed"}}
    counters = DynamoDBOrderCounters(boto3.resource("dynamodb").Table("cartpilot-sandbox-counters"))

    send_receipt(
        plan.goalId, outputs, ledger=ledger, notifier=RecordingNotifier(), brand=brand, counters=counters
    )

    recent = counters.recent_activity("user-1", now=utc_now())
    assert (recent.orders, recent.spend("CNY")) == (1, plan.summary.total)
    assert ledger.store.require(plan.goalId).status is GoalStatus.COMPLETED
