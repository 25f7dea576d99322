"""The anomaly signals the rollout guard's alarms watch are emitted where they happen, once each.

Each alarm in ``infra/rollout.py`` reads one of these business metrics (Powertools Metrics, dimension
``service``); a metric nobody emits would leave its alarm silent forever.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from cartpilot.audit.trail import AuditTrail
from cartpilot.commerce.errors import MerchantUnavailable
from cartpilot.commerce.http import MerchantClient, RetryPolicy
from cartpilot.execution.compensation import undo_executed_steps
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.model import GoalContext, GoalRecord, GoalStatus, PriceCheck
from cartpilot.kernel.clock import utc_now_iso
from cartpilot.kernel.observability import metrics
from cartpilot.plans.validation import validate_goal
from cartpilot.plans.verdicts import RiskTier
from tests.conftest import make_plan
from tests.fakes import InMemoryAuditRecords, InMemoryGoalStore, InMemoryOrderCounters
from tests.unit.stages import OrderFlow, Pending


@pytest.fixture(autouse=True)
def fresh_metrics() -> Iterator[None]:
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


def emitted(name: str) -> float:
    """How many of ``name`` were added since the test began (0 when none)."""
    entry = metrics.metric_set.get(name)
    return sum(float(value) for value in entry["Value"]) if entry else 0


def test_a_rejected_approval_counts_one_rejection(pending: Pending) -> None:
    pending.desk.decide(pending.approval_id, pending.link, "reject", None)
    # A second post shows the recorded decision: it is not a second rejection.
    pending.desk.decide(pending.approval_id, pending.link, "reject", None)
    assert emitted("ApprovalRejections") == 1


def test_an_approval_counts_no_rejection(pending: Pending) -> None:
    pending.desk.decide(pending.approval_id, pending.link, "approve", None)
    assert emitted("ApprovalRejections") == 0


def test_undoing_before_a_replan_after_price_drift_counts_one_replan(flow: OrderFlow) -> None:
    outputs = flow.run_steps("s1")
    undo_executed_steps(
        flow.goal_id,
        outputs,
        ledger=flow.ledger,
        merchants=flow.merchants,
        final_status=GoalStatus.PLANNING,
        reason="prices changed since approval",
    )
    assert emitted("PriceDriftReplans") == 1
    assert emitted("Compensations") == 0


def test_a_compensation_after_a_failure_is_no_replan(flow: OrderFlow) -> None:
    outputs = flow.run_steps("s1")
    undo_executed_steps(
        flow.goal_id, outputs, ledger=flow.ledger, merchants=flow.merchants, reason="payment declined"
    )
    assert (emitted("PriceDriftReplans"), emitted("Compensations")) == (0, 1)


def _client(status: int) -> MerchantClient:
    return MerchantClient(
        "http://merchant.test/ucp",
        agent_profile_url="https://cartpilot.test/.well-known/ucp",
        transport=httpx.MockTransport(lambda request: httpx.Response(status, json={})),
        retry=RetryPolicy(attempts=2, base_delay=0.0, max_delay=0.0, max_retry_after=0.0),
        sleep=lambda seconds: None,
    )


def test_each_merchant_5xx_answer_counts_as_a_server_error() -> None:
    with pytest.raises(MerchantUnavailable):
        _client(503).get("/orders/{id}", path={"id": "ord_1"})
    assert emitted("MerchantServerErrors") == 2  # the first answer and its retry


def test_a_merchant_429_is_no_server_error() -> None:
    with pytest.raises(MerchantUnavailable):
        _client(429).get("/orders/{id}", path={"id": "ord_1"})
    assert emitted("MerchantServerErrors") == 0


def _validate(goal: str, merchant, brand, users) -> RiskTier:  # type: ignore[no-untyped-def]
    plan = make_plan(merchant, brand, users, goal)
    ledger = GoalLedger(InMemoryGoalStore(), AuditTrail(InMemoryAuditRecords()))
    now = utc_now_iso()
    current = merchant.catalog.lookup([item.itemId for item in plan.summary.items], plan.currency)
    ledger.store.create(
        GoalRecord(
            goalId=plan.goalId, userId=plan.userId, brand="sandbox", goal=plan.goal, context=GoalContext(),
            status=GoalStatus.PLANNING, requestHash="test", createdAt=now, updatedAt=now,
            plan=plan.model_dump(mode="json"), planHash=plan.plan_hash(),
            priceCheck=PriceCheck(planId=plan.planId, checkedAt=now, items=current),
        )
    )  # fmt: skip
    verdict = validate_goal(
        plan.goalId,
        plan.plan_hash(),
        ledger=ledger,
        brand=brand,
        users=users,
        counters=InMemoryOrderCounters(),
    )
    return verdict.tier


def test_a_denied_plan_counts_one_denial(merchant, brand, users) -> None:  # type: ignore[no-untyped-def]
    assert _validate("running shoes size 42 for me, budget 500 CNY", merchant, brand, users) is RiskTier.DENY
    assert emitted("GoalsDenied") == 1


def test_an_allowed_plan_counts_no_denial(merchant, brand, users) -> None:  # type: ignore[no-untyped-def]
    assert _validate("running socks for me", merchant, brand, users) is not RiskTier.DENY
    assert emitted("GoalsDenied") == 0
