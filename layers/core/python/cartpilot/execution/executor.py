"""Running one plan step against the plan's merchant, exactly once in effect.

Before a mutating call the executor re-reads the plan and refuses unless it is
the plan the flow carries and, where approval was needed, the plan the approver
saw. Every call carries an Idempotency-Key derived from (goal, step), so a retry
of the same step can never place a second order or charge twice; the payment
credential is asked for under a key derived from the step's too, so a retried
payment presents the same token.

A ``MerchantEscalation`` (the merchant wants the shopper at its ``continue_url``)
leaves here unchanged: the flow ends the goal ``HANDED_OFF`` by the error's name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cartpilot.brands.activity import LimitReached
from cartpilot.brands.users import UserDirectory
from cartpilot.commerce.errors import (
    MerchantEscalation,
    MerchantRejected,
    PlanIntegrityError,
    PlanNeedsReapproval,
)
from cartpilot.commerce.platform_profile import CATALOG_LOOKUP
from cartpilot.commerce.ports import (
    Buyer,
    CartLine,
    CheckoutSession,
    CredentialProvider,
    Merchant,
    PaymentCredential,
    PaymentHandler,
    ShippingOption,
)
from cartpilot.execution.cursor import advanced
from cartpilot.execution.keys import step_idempotency_key
from cartpilot.goals.events import ConnectorEvent
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.model import GoalRecord, GoalStatus, StepResult
from cartpilot.kernel.clock import utc_now, utc_now_iso
from cartpilot.kernel.money import Money
from cartpilot.plans.drift import accept_merchant_total, check_price_drift
from cartpilot.plans.model import (
    CONNECTOR_FOR_ACTION,
    Action,
    AddItemsStep,
    CheckoutCreateStep,
    FulfillmentSelectStep,
    PaymentCompleteStep,
    Plan,
    Step,
)
from cartpilot.plans.reservations import LimitKeeper
from cartpilot.rollout.gate import RolloutGate

MerchantDirectory = Callable[[str], Merchant]
"""The merchant a plan names (``plan.merchant.id``, an id of brand.yaml's ``merchants``)."""


def planned_option(plan: Plan, option_id: str) -> ShippingOption:
    """The shipping option the plan chose, as the merchant offered it when the plan was priced."""
    shipping = plan.summary.shipping
    return ShippingOption(
        id=option_id,
        title=shipping.title,
        price=shipping.price,
        earliestDelivery=shipping.earliestDelivery,
        latestDelivery=shipping.latestDelivery,
    )


def payment_handler(merchant: Merchant, plan: Plan) -> PaymentHandler:
    """The handler the plan pays through, as the merchant advertises it now (its config may have moved):
    by the merchant's id for it, else by its name (the merchant may have renamed its instance)."""
    terms = plan.merchant
    advertised = merchant.profile().paymentHandlers
    for handler in advertised:
        if handler.id == terms.paymentHandlerId and handler.name == terms.paymentHandler:
            return handler
    for handler in advertised:
        if handler.name == terms.paymentHandler:
            return handler
    raise MerchantRejected(
        f"the merchant no longer offers payment handler {terms.paymentHandler} ({terms.paymentHandlerId})",
        code="payment_handler_unsupported",
    )


def load_verified_plan(goal: GoalRecord, plan_id: str, plan_hash: str) -> Plan:
    plan = goal.current_plan()
    actual = plan.plan_hash()
    if plan.planId != plan_id or actual != plan_hash or goal.planHash != actual:
        raise PlanIntegrityError("the stored plan is not the plan this execution carries")
    verdict_route = goal.verdict.route if goal.verdict else None
    if verdict_route == "deny":
        raise PlanIntegrityError("a denied plan cannot run")
    if verdict_route == "planned-only":
        raise PlanIntegrityError("the brand's rollout held this plan back: it cannot run")
    if verdict_route == "approve" and goal.approvedPlanHash != actual:
        raise PlanIntegrityError("the plan differs from the plan the approver approved")
    return plan


def _session_of(outputs: dict[str, Any]) -> str:
    for output in outputs.values():
        if isinstance(output, dict) and output.get("checkoutId"):
            return str(output["checkoutId"])
    raise PlanIntegrityError("no checkout session has been created yet")


def _session_summary(session: CheckoutSession) -> dict[str, Any]:
    return {
        "checkoutId": session.id,
        "status": session.status,
        "total": session.total.model_dump(mode="json"),
    }


class StepExecutor:
    def __init__(
        self,
        *,
        ledger: GoalLedger,
        merchants: MerchantDirectory,
        users: UserDirectory,
        credentials: Mapping[str, CredentialProvider],
        price_tolerance_percent: int = 0,
        limits: LimitKeeper | None = None,
        rollout: RolloutGate | None = None,
    ) -> None:
        self._rollout = rollout
        self._ledger = ledger
        self._merchants = merchants
        self._users = users
        self._credentials = credentials
        self._tolerance = price_tolerance_percent
        self._limits = limits

    def run(self, event: ConnectorEvent) -> dict[str, Any]:
        """Runs the event's step: the outputs so far plus the step's own."""
        outputs: dict[str, Any] = self.advance(event)["outputs"]
        return outputs

    def advance(self, event: ConnectorEvent) -> dict[str, Any]:
        """Runs the event's step and answers the flow: ``{"outputs": ..., "next": step}`` (the
        plan's next execution step, or the confirmation after the last: ``execution.cursor``)."""
        goal = self._ledger.store.require(event.goalId)
        plan = load_verified_plan(goal, event.planId, event.planHash)
        try:
            step = plan.step(event.step.id)
        except KeyError:
            raise PlanIntegrityError(f"the plan has no step {event.step.id}") from None
        if step.action.value != event.step.action:
            raise PlanIntegrityError(f"step {step.id} is {step.action.value}, not {event.step.action}")
        if step.id in event.outputs:
            # Already ran in this execution: a redelivered event changes nothing.
            return advanced(plan, step.id, event.outputs)
        if self._rollout is not None:
            # The stage may have dropped (read-only, off, out of the pilot) or the kill switch flipped
            # since the plan was checked or approved: a step that has not run does not start. Inside
            # the idempotent call, so a step that completed is answered from its record instead.
            self._rollout.check_step(goal.userId)
        if goal.status is not GoalStatus.EXECUTING:
            self._ledger.transition(
                goal.goalId,
                GoalStatus.EXECUTING,
                actor="executor",
                event="execution.started",
                plan_hash=event.planHash,
            )
        merchant = self._merchants(plan.merchant.id)
        self._stop_if_prices_moved(goal.goalId, plan, event.planHash, merchant)
        key = step_idempotency_key(goal.goalId, step.id)
        try:
            output = self._perform(merchant, plan, step, event.outputs, key, goal_id=goal.goalId)
        except MerchantEscalation as escalation:
            # checkout.md: the buyer finishes at the merchant's continue_url. Recorded here, where the
            # step met it; re-raised so the flow tells the shopper, by the error's name.
            self._ledger.hand_off(
                goal.goalId, escalation.continue_url, str(escalation), plan_hash=event.planHash
            )
            raise
        at = utc_now_iso()
        self._ledger.record_step(
            goal.goalId,
            StepResult(stepId=step.id, action=step.action.value, status="DONE", summary=output, at=at),
            actor=f"connector:{step.action.value.split('.')[0]}",
            event="step.executed",
            plan_hash=event.planHash,
            detail={"stepId": step.id, "action": step.action.value, "idempotencyKey": key, "result": output},
        )
        return advanced(plan, step.id, {**event.outputs, step.id: output})

    def _stop_if_prices_moved(self, goal_id: str, plan: Plan, plan_hash: str, merchant: Merchant) -> None:
        """Hours may pass between approval and execution: nobody is charged a price they did not see.

        A merchant without a catalog lookup (a product feed stands in for it) is held to the
        session's total instead, at payment (``_accept_total``)."""
        if not merchant.profile().offers(CATALOG_LOOKUP):
            return
        try:
            check_price_drift(plan, merchant.catalog, tolerance_percent=self._tolerance)
        except PlanNeedsReapproval as drift:
            self._ledger.note(
                goal_id,
                actor="executor",
                event="execution.price-drift",
                plan_hash=plan_hash,
                detail={"drifts": drift.drifts, "tolerancePercent": self._tolerance},
            )
            raise

    def _perform(
        self, merchant: Merchant, plan: Plan, step: Step, outputs: dict[str, Any], key: str, *, goal_id: str
    ) -> dict[str, Any]:
        if isinstance(step, CheckoutCreateStep):
            profile = self._users.get(plan.userId)
            if profile is None:
                raise PlanIntegrityError("the plan's user has no profile")
            session = merchant.checkout.create(
                [CartLine(itemId=line.itemId, quantity=line.quantity) for line in step.args.lines],
                Buyer(fullName=profile.name, email=profile.email),
                step.args.currency,
                key,
            )
            return _session_summary(session)
        if isinstance(step, AddItemsStep):
            session = merchant.checkout.add_items(
                _session_of(outputs),
                [CartLine(itemId=line.itemId, quantity=line.quantity) for line in step.args.lines],
                key,
            )
            return _session_summary(session)
        if isinstance(step, FulfillmentSelectStep):
            session = merchant.fulfillment.select(
                _session_of(outputs), plan.summary.recipient, planned_option(plan, step.args.optionId), key
            )
            # The merchant's id for the option it took (ids may differ between its sessions).
            return {
                **_session_summary(session),
                "optionId": session.selectedShippingOptionId or step.args.optionId,
            }
        if isinstance(step, PaymentCompleteStep):
            session_id = _session_of(outputs)
            session = merchant.checkout.get(session_id)
            if session.orderId is None:
                self._accept_total(goal_id, plan, step.args.amount, session.total)
            credential = self._credential(merchant, plan, step.args.paymentMethodId, key)
            order = merchant.payments.complete(session_id, credential, key)
            return {
                "checkoutId": session_id,
                "orderId": order.id,
                "status": order.status,
                "total": order.total.model_dump(mode="json"),
            }
        raise PlanIntegrityError(f"no connector serves {step.action.value}")

    def _accept_total(self, goal_id: str, plan: Plan, approved: Money, asked: Money) -> None:
        """The drift rule at payment (the rule of the price check): within tolerance the order proceeds
        at the merchant's total, still inside the daily limits, and the audit names both totals; beyond
        it, ``PlanNeedsReapproval`` asks the shopper again. Never an amount nobody agreed to."""
        accepted = accept_merchant_total(approved, asked, self._tolerance)
        if accepted is None:
            return
        if self._limits is not None and asked.amount_minor > approved.amount_minor:
            try:
                self._limits.hold(goal_id, plan.userId, asked, actor="connector:payment", now=utc_now())
            except LimitReached as exc:
                raise PlanNeedsReapproval(
                    f"the merchant now asks {asked.format()}: more than today's limits leave room for"
                ) from exc
        self._ledger.note(
            goal_id,
            actor="connector:payment",
            event="execution.price-accepted",
            plan_hash=plan.plan_hash(),
            detail=accepted.to_detail(),
        )

    def _credential(
        self, merchant: Merchant, plan: Plan, payment_method_id: str, key: str
    ) -> PaymentCredential:
        """The handler's credential for the saved payment method (a token, never the method's id)."""
        handler = payment_handler(merchant, plan)
        provider = self._credentials.get(handler.name)
        if provider is None or not provider.can_fund(handler):
            raise MerchantRejected(
                f"the brand can no longer fund payment handler {handler.name}",
                code="payment_handler_unsupported",
            )
        return provider.credential(handler, payment_method_id, f"{key}.credential")


def require_connector(event: ConnectorEvent, connector: str) -> Action:
    """Each mutating connector serves only its own actions (they hold different permissions)."""
    action = Action(event.step.action) if event.step.action in Action._value2member_map_ else None
    if action is None or CONNECTOR_FOR_ACTION[action] != connector:
        raise PlanIntegrityError(f"the {connector} connector does not serve {event.step.action}")
    return action
