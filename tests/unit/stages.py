"""A goal moved through the order flow on the ports' fakes, the way the state machine moves it.

No AWS, no network, no sleeps: the stores, the audit records, the workflow, the notifier and the
merchant are the in-memory fakes of ``tests/fakes``, so a test can look at every write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any, Literal

from cartpilot.approvals.desk import ApprovalDesk, LinkParams
from cartpilot.approvals.request import request_approval
from cartpilot.approvals.step_up import StepUp
from cartpilot.audit.chain import AuditRecord
from cartpilot.audit.snapshots import signed_plan_detail
from cartpilot.audit.trail import AuditTrail
from cartpilot.brands.config import BrandConfig
from cartpilot.brands.policy_tests import PolicyTestCase, plan_for_case
from cartpilot.brands.users import UserDirectory
from cartpilot.commerce.ports import PaymentCredential
from cartpilot.execution.executor import StepExecutor
from cartpilot.execution.keys import step_idempotency_key
from cartpilot.execution.outcomes import confirm_order, send_receipt
from cartpilot.goals.events import ConnectorEvent, StepRef
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.model import ApprovalSummary, GoalContext, GoalRecord, GoalStatus, PriceCheck
from cartpilot.kernel.clock import utc_now_iso
from cartpilot.plans.model import Plan
from cartpilot.plans.validation import ValidationInput, validate_plan
from cartpilot.plans.verdicts import Finding, RiskTier, Verdict
from cartpilot_local.client import ApprovalLink
from tests.conftest import make_plan
from tests.fakes import (
    TODAY,
    FakeMerchant,
    FakeWorkflow,
    InMemoryApprovalStore,
    InMemoryAuditRecords,
    InMemoryGoalStore,
    InMemoryOrderCounters,
    RecordingNotifier,
    StaticKeySource,
)
from tests.fakes.merchant import SANDBOX_HANDLER
from tests.fakes.plan_signing import LocalPlanSigner
from tests.fakes.step_up import InMemoryStepUpStore, RecordingCodeSender

Route = Literal["auto", "approve", "deny", "pending"]
APPROVAL_TOKEN = "approval-task-token"


def fake_ledger() -> GoalLedger:
    return GoalLedger(InMemoryGoalStore(), AuditTrail(InMemoryAuditRecords()))


def verdict_for(plan: Plan, tier: RiskTier, *, message: str = "the order is within policy") -> Verdict:
    route = {RiskTier.AUTO: "auto", RiskTier.DENY: "deny"}.get(tier, "approve")
    return Verdict(
        planId=plan.planId,
        planHash=plan.plan_hash(),
        tier=tier,
        route=route,  # type: ignore[arg-type]
        approver=None if route == "auto" else "user",
        reasons=[Finding(policyId="test.policy", tier=tier, message=message)],
        checkedAt=utc_now_iso(),
    )


@dataclass
class OrderFlow:
    """One goal, its plan and every fake around it."""

    brand: BrandConfig
    users: UserDirectory
    merchant: FakeMerchant
    plan: Plan
    ledger: GoalLedger = field(default_factory=fake_ledger)
    workflow: FakeWorkflow = field(default_factory=FakeWorkflow)
    notifier: RecordingNotifier = field(default_factory=RecordingNotifier)
    counters: InMemoryOrderCounters = field(default_factory=InMemoryOrderCounters)
    approvals: InMemoryApprovalStore = field(default_factory=InMemoryApprovalStore)
    keys: StaticKeySource = field(default_factory=StaticKeySource)
    signer: LocalPlanSigner = field(default_factory=LocalPlanSigner)

    # --- looking ---------------------------------------------------------------------------------

    @property
    def goal_id(self) -> str:
        return self.plan.goalId

    @property
    def shop(self) -> Any:
        return self.merchant.shop

    def goal(self) -> GoalRecord:
        return self.ledger.store.require(self.goal_id)

    def records(self) -> list[AuditRecord]:
        return self.ledger.audit.records(self.goal_id)

    def events(self) -> list[str]:
        return [record.event for record in self.records()]

    def last(self, event: str) -> AuditRecord:
        """The newest audit record of ``event``."""
        return next(record for record in reversed(self.records()) if record.event == event)

    def key(self, step_id: str, purpose: str = "execute") -> str:
        return step_idempotency_key(self.goal_id, step_id, purpose)

    # --- the stages before execution ---------------------------------------------------------------

    def received(self, context: GoalContext | None = None) -> OrderFlow:
        stamp = utc_now_iso()
        self.ledger.store.create(
            GoalRecord(goalId=self.goal_id, userId=self.plan.userId, brand=self.brand.name, goal=self.plan.goal,
                       context=context or GoalContext(), status=GoalStatus.RECEIVED, requestHash="request-hash",
                       createdAt=stamp, updatedAt=stamp)
        )  # fmt: skip
        return self

    def planned(self) -> OrderFlow:
        self.ledger.transition(
            self.goal_id, GoalStatus.PLANNING, actor="planner:rules", event="planning.started"
        )
        self.ledger.store.update(
            self.goal_id, updated_at=utc_now_iso(), plan=self.plan, planHash=self.plan.plan_hash()
        )
        return self

    def validated(self, route: Route) -> OrderFlow:
        """``auto``: may run as it is; ``approve``: the approver said yes to this very plan;
        ``pending``: waiting for the approver (a real approval and a waiting task token);
        ``deny``: the policies said no."""
        tier = {"auto": RiskTier.AUTO, "deny": RiskTier.DENY}.get(route, RiskTier.APPROVAL)
        verdict = verdict_for(self.plan, tier, message="a test policy said so")
        self.ledger.transition(
            self.goal_id, GoalStatus.VALIDATING, actor="validator", event="validation.started"
        )
        self.ledger.store.update(self.goal_id, updated_at=utc_now_iso(), verdict=verdict)
        if route == "approve":
            self.ledger.transition(
                self.goal_id,
                GoalStatus.AWAITING_APPROVAL,
                actor="approver:user-1",
                event="approval.approved",
                plan_hash=self.plan.plan_hash(),
                detail=signed_plan_detail(self.goal_id, self.plan, self.signer),
                approvedPlanHash=self.plan.plan_hash(),
                approval=ApprovalSummary(approvalId="a-test", status="APPROVED", tier=tier),
            )
        if route == "pending":
            self.workflow.wait_for(APPROVAL_TOKEN)
            request_approval(
                self.goal_id, self.plan.plan_hash(), APPROVAL_TOKEN, ledger=self.ledger,
                approvals=self.approvals, keys=self.keys, signer=self.signer, notifier=self.notifier, brand=self.brand,
                base_url="https://api.example.com/prod",
            )  # fmt: skip
        return self

    # --- execution ---------------------------------------------------------------------------------

    def merchants(self, merchant_id: str) -> FakeMerchant:
        """The merchant a plan names: the one fake shop, whatever its id."""
        return self.merchant

    def credential(self, step_key: str, payment_method_id: str = "pm_user1_visa") -> PaymentCredential:
        """The token the executor presents for the payment step with ``step_key`` (the same key, the same token)."""
        return self.merchant.credentials.credential(
            SANDBOX_HANDLER, payment_method_id, f"{step_key}.credential"
        )

    def executor(self, *, tolerance_percent: int = 0, users: UserDirectory | None = None) -> StepExecutor:
        return StepExecutor(
            ledger=self.ledger,
            merchants=self.merchants,
            users=users or self.users,
            credentials={SANDBOX_HANDLER.name: self.merchant.credentials},
            price_tolerance_percent=tolerance_percent,
        )

    def event(
        self, step_id: str, outputs: dict[str, Any] | None = None, *, plan_id: str | None = None,
        plan_hash: str | None = None, action: str | None = None,
    ) -> ConnectorEvent:  # fmt: skip
        """What the state machine hands a connector for ``step_id`` (overrides make it lie)."""
        return ConnectorEvent(
            goalId=self.goal_id,
            planId=plan_id or self.plan.planId,
            planHash=plan_hash or self.plan.plan_hash(),
            step=StepRef(id=step_id, action=action or self.plan.step(step_id).action.value),
            outputs=dict(outputs or {}),
        )

    def run(self, step_id: str, outputs: dict[str, Any] | None = None, **executor: Any) -> dict[str, Any]:
        return self.executor(**executor).run(self.event(step_id, outputs))

    def run_steps(self, *step_ids: str, outputs: dict[str, Any] | None = None) -> dict[str, Any]:
        """Runs the steps in order (every mutating step by default), as the flow's Map does."""
        outputs = dict(outputs or {})
        for step_id in step_ids or [step["id"] for step in self.plan.execution_steps()]:
            outputs = self.run(step_id, outputs)
        return outputs

    def completed(self) -> dict[str, Any]:
        """Runs every step, confirms the order and sends the receipt: the goal is COMPLETED."""
        outputs = confirm_order(self.goal_id, self.run_steps(), ledger=self.ledger, merchants=self.merchants)
        send_receipt(
            self.goal_id, outputs, ledger=self.ledger, notifier=self.notifier, brand=self.brand,
            counters=self.counters,
        )  # fmt: skip
        return outputs


def order_flow(
    merchant: FakeMerchant, brand: BrandConfig, users: UserDirectory, plan: Plan, *, route: Route = "approve",
    context: GoalContext | None = None,
) -> OrderFlow:  # fmt: skip
    """The goal of ``plan`` received, planned and validated: with ``approve`` (the default) its next
    step is the first connector step. The merchant's call log starts empty (the planner's reads
    are not what a test of the flow looks at)."""
    merchant.shop.calls.clear()
    return (
        OrderFlow(brand=brand, users=users, merchant=merchant, plan=plan)
        .received(context)
        .planned()
        .validated(route)
    )


# --- a goal waiting for its approver, through the real validator and approval request -----------------

STRONG_GOAL = (
    "Get my friend 3 pairs of running shoes, size 42, gift-wrap them and ship to Beijing before Feb 5"
)
NOON = datetime.combine(TODAY, time(12), UTC)


@dataclass
class Pending:
    """A goal waiting for approval, and everything around it."""

    brand: BrandConfig
    users: UserDirectory
    ledger: GoalLedger
    approvals: InMemoryApprovalStore
    keys: StaticKeySource
    signer: LocalPlanSigner
    sfn: FakeWorkflow
    goal_id: str
    approval_id: str
    link: LinkParams
    plan: Plan
    # What the shopper's channel and the staff channel were sent.
    notifier: RecordingNotifier = field(default_factory=RecordingNotifier)
    staff_notifier: RecordingNotifier = field(default_factory=RecordingNotifier)
    # One-time codes of step-up approvals, and the texts the shopper's phone received.
    codes: InMemoryStepUpStore = field(default_factory=InMemoryStepUpStore)
    phone: RecordingCodeSender = field(default_factory=RecordingCodeSender)

    @property
    def desk(self) -> ApprovalDesk:
        return self.desk_at(NOON)

    def desk_at(self, now: datetime) -> ApprovalDesk:
        return ApprovalDesk(
            ledger=self.ledger, approvals=self.approvals, keys=self.keys, workflow=self.sfn,
            brand=self.brand, users=self.users, counters=InMemoryOrderCounters(), signer=self.signer,
            clock=lambda: now,
            step_up=StepUp(store=self.codes, keys=self.keys, sender=self.phone, clock=lambda: now),
        )  # fmt: skip

    def goal(self) -> GoalRecord:
        return self.ledger.store.require(self.goal_id)

    def audit_events(self) -> list[str]:
        return [record.event for record in self.ledger.audit.records(self.goal_id)]

    def snapshot(self) -> tuple[Any, ...]:
        """What must not move when a request is refused."""
        goal = self.goal()
        approval = self.approvals.get(self.approval_id)
        assert approval is not None
        return (
            goal.status,
            goal.plan,
            goal.planHash,
            goal.verdict,
            goal.approval,
            approval,
            self.audit_events(),
        )


def wait_for_approval(
    merchant: FakeMerchant, brand: BrandConfig, users: UserDirectory, goal: str, *, plan: Plan | None = None
) -> Pending:
    """``goal`` planned by the rules planner (or ``plan``, made by hand), validated, waiting for approval."""
    ledger = GoalLedger(InMemoryGoalStore(), AuditTrail(InMemoryAuditRecords()))
    approvals = InMemoryApprovalStore()
    keys = StaticKeySource()
    signer = LocalPlanSigner()
    if plan is None:
        plan = make_plan(merchant, brand, users, goal)
    else:
        goal = plan.goal
    goal_id = plan.goalId
    stamp = NOON.isoformat()
    ledger.store.create(
        GoalRecord(goalId=goal_id, userId=plan.userId, brand=brand.name, goal=goal, context=GoalContext(),
                   status=GoalStatus.RECEIVED, requestHash="r", createdAt=stamp, updatedAt=stamp)
    )  # fmt: skip
    ledger.transition(goal_id, GoalStatus.PLANNING, actor="planner:rules", event="planning.started")
    current = merchant.catalog.lookup([item.itemId for item in plan.summary.items], plan.currency)
    ledger.store.update(
        goal_id,
        updated_at=stamp,
        plan=plan,
        planHash=plan.plan_hash(),
        priceCheck=PriceCheck(planId=plan.planId, checkedAt=stamp, items=current),
    )
    ledger.transition(goal_id, GoalStatus.VALIDATING, actor="validator", event="validation.started")
    profile = users.get(plan.userId)
    assert profile is not None
    verdict = validate_plan(
        ValidationInput(plan=plan, brand=brand, profile=profile, current_items=current, today=TODAY)
    )
    ledger.store.update(goal_id, updated_at=stamp, verdict=verdict)
    notifier, staff_notifier = RecordingNotifier(), RecordingNotifier()
    sfn = FakeWorkflow()
    sfn.wait_for("task-token-1")
    approval_id = request_approval(
        goal_id, plan.plan_hash(), "task-token-1", ledger=ledger, approvals=approvals, keys=keys,
        signer=signer, notifier=notifier, brand=brand, base_url="https://api.example.com/prod",
        staff_notifier=staff_notifier,
    ).approvalId  # fmt: skip
    # A staff approval's link goes to the staff channel only.
    link = ApprovalLink.parse((staff_notifier.sent or notifier.sent)[-1]["link"])
    return Pending(
        brand=brand, users=users, ledger=ledger, approvals=approvals, keys=keys, signer=signer, sfn=sfn,
        goal_id=goal_id,
        approval_id=approval_id, link=LinkParams(exp=link.exp, kid=link.kid, sig=link.sig), plan=plan,
        notifier=notifier, staff_notifier=staff_notifier,
    )  # fmt: skip


# --- a plan made by hand, without the planner ---------------------------------------------------------


def socks_plan(
    merchant: FakeMerchant, brand: BrandConfig, users: UserDirectory, *, goal_id: str = "g-test",
    undo: Literal["cancel", "none"] = "cancel", deliver_by: date | None = None, promised_delivery: bool = True,
) -> Plan:  # fmt: skip
    """One pair of the fake shop's running socks (59.00 CNY) to user-1's home with free standard
    shipping, as a planner would make it: checkout, shipping, payment, the shop's own titles.
    ``undo`` is what the merchant offers; without ``promised_delivery`` the option gives no window."""
    case = PolicyTestCase.model_validate(
        {
            "name": "one pair of running socks",
            "checks": "-",
            "items": [{"item": "socks-1-m", "category": "socks", "price": 5900}],
            "deliverBy": deliver_by,
            "promisedDelivery": promised_delivery,
            "expect": {"tier": "AUTO", "reasons": []},
        }
    )
    profile = users.get("user-1")
    assert profile is not None
    drafted = plan_for_case(case, brand, profile, TODAY)
    variants = merchant.shop.variants()
    items = [
        item.model_copy(
            update={"title": variants[item.itemId].title, "productId": variants[item.itemId].productId}
        )
        for item in drafted.summary.items
    ]
    return drafted.model_copy(
        update={
            "planId": f"p-{goal_id.removeprefix('g-')}",
            "goalId": goal_id,
            "merchant": drafted.merchant.model_copy(update={"undo": undo}),
            "summary": drafted.summary.model_copy(update={"items": items}),
        }
    )


class FixedPlanner:
    """A planner that answers one given plan, to drive the planning stage around it."""

    kind = "rules"

    def __init__(self, plan: Plan) -> None:
        self._plan = plan

    def plan(self, request: Any) -> Plan:
        return self._plan


def received_goal_ledger(plan: Plan, brand: BrandConfig) -> GoalLedger:
    """A fresh ledger holding the plan's goal as just received, ready to be planned."""
    ledger = fake_ledger()
    ledger.store.create(
        GoalRecord(goalId=plan.goalId, userId=plan.userId, brand=brand.name, goal=plan.goal,
                   context=GoalContext(), status=GoalStatus.RECEIVED, requestHash="r",
                   createdAt="2027-01-20T12:00:00Z", updatedAt="2027-01-20T12:00:00Z")
    )  # fmt: skip
    return ledger
