"""The step executor on the fakes: each step reaches the merchant once in effect, and only for the
plan that was approved, at the prices that were approved, for the total that was agreed."""

from __future__ import annotations

import re
from typing import Any

import pytest

from cartpilot.commerce.errors import MerchantRejected, PlanIntegrityError, PlanNeedsReapproval
from cartpilot.commerce.ports import Buyer, CartLine
from cartpilot.execution.executor import StepExecutor, load_verified_plan, require_connector
from cartpilot.execution.keys import step_idempotency_key
from cartpilot.goals.events import ConnectorEvent, StepRef
from cartpilot.goals.model import GoalRecord, GoalStatus
from cartpilot.kernel.money import Money
from cartpilot.plans.model import CONNECTOR_FOR_ACTION, Action, PaymentCompleteStep
from tests.fakes.merchant import SANDBOX_HANDLER, MerchantCall, cny
from tests.unit.stages import OrderFlow


def plus(money: Money, minor: int) -> Money:
    return Money(amount_minor=money.amount_minor + minor, currency=money.currency)


def agreed_amount(flow: OrderFlow) -> Money:
    payment = flow.plan.step("s4")
    assert isinstance(payment, PaymentCompleteStep)
    return payment.args.amount


def unchanged(flow: OrderFlow) -> tuple[Any, ...]:
    """What a refused or redelivered step must leave as it was."""
    goal = flow.goal()
    return goal.status, goal.steps, goal.auditHead, flow.events(), list(flow.shop.calls)


# --- every step kind, with its own idempotency key ------------------------------------------------------


def test_each_step_kind_calls_the_merchant_once_with_the_key_of_its_goal_and_step(flow: OrderFlow):
    outputs = flow.run_steps()

    plan, profile = flow.plan, flow.users.get(flow.plan.userId)
    assert profile is not None
    session = outputs["s1"]["checkoutId"]
    token = flow.shop.writes()[-1].args["token"]
    assert flow.shop.writes() == [
        MerchantCall("checkout.create", None, step_idempotency_key(flow.goal_id, "s1"), {
            "lines": [CartLine(itemId="shoe-a-42", quantity=1)],
            "buyer": Buyer(fullName=profile.name, email=profile.email),
            "currency": "CNY"}),
        MerchantCall("checkout.add_items", session, step_idempotency_key(flow.goal_id, "s2"), {
            "lines": [CartLine(itemId="gift-wrap-standard", quantity=1)]}),
        MerchantCall("fulfillment.select", session, step_idempotency_key(flow.goal_id, "s3"), {
            "recipient": plan.summary.recipient, "optionId": "standard"}),
        MerchantCall("payments.complete", session, step_idempotency_key(flow.goal_id, "s4"), {
            "token": token}),
    ]  # fmt: skip
    # The merchant got a token its tokenizer issued for the saved card, never the card's id itself.
    assert token != "pm_user1_visa" and flow.shop.tokens[token] == "pm_user1_visa"
    keys = [call.key for call in flow.shop.writes()]
    assert len(set(keys)) == 4 and all(re.fullmatch(r"cp-[0-9a-f]{40}", str(key)) for key in keys)

    order_id = outputs["s4"]["orderId"]
    assert flow.shop.charges == [(order_id, plan.summary.total)]
    assert outputs["s4"] == {
        "checkoutId": session,
        "orderId": order_id,
        "status": "confirmed",
        "total": plan.summary.total.model_dump(mode="json"),
    }
    assert outputs["s3"]["optionId"] == "standard"
    assert outputs["s3"]["total"] == plan.summary.total.model_dump(mode="json")


def test_each_step_is_recorded_on_the_goal_and_in_the_audit_with_its_key(flow: OrderFlow):
    outputs = flow.run_steps()

    goal = flow.goal()
    assert goal.status is GoalStatus.EXECUTING
    assert [(step.stepId, step.action, step.status) for step in goal.steps] == [
        ("s1", "checkout.create", "DONE"),
        ("s2", "checkout.add_items", "DONE"),
        ("s3", "fulfillment.select", "DONE"),
        ("s4", "payment.complete", "DONE"),
    ]
    assert [step.summary for step in goal.steps] == [outputs[s] for s in ("s1", "s2", "s3", "s4")]

    executed = [record for record in flow.records() if record.event == "step.executed"]
    assert [(r.actor, r.detail["stepId"], r.detail["idempotencyKey"]) for r in executed] == [
        ("connector:checkout", "s1", flow.key("s1")),
        ("connector:checkout", "s2", flow.key("s2")),
        ("connector:fulfillment", "s3", flow.key("s3")),
        ("connector:payment", "s4", flow.key("s4")),
    ]
    assert {record.planHash for record in executed} == {flow.plan.plan_hash()}
    # The first step moves the goal to EXECUTING, once.
    assert flow.events().count("execution.started") == 1


def test_the_key_is_the_same_on_every_retry_and_differs_by_goal_step_and_purpose():
    key = step_idempotency_key("g-1", "s1")
    assert key == step_idempotency_key("g-1", "s1", "execute")
    assert len({key, step_idempotency_key("g-2", "s1"), step_idempotency_key("g-1", "s2"),
                step_idempotency_key("g-1", "s1", "undo")}) == 4  # fmt: skip
    # The separator keeps ("g-1", "1s") and ("g-1s", "1") apart.
    assert step_idempotency_key("g-1", "1s") != step_idempotency_key("g-1s", "1")


# --- redelivery and retries --------------------------------------------------------------------------


def test_a_redelivered_step_changes_nothing(flow: OrderFlow):
    after_s1 = flow.run_steps("s1")
    outputs = flow.run_steps("s2", "s3", outputs=after_s1)
    before = unchanged(flow)

    # Step Functions delivers s2 again, with the outputs that already hold its result.
    assert flow.run("s2", outputs) == outputs
    assert flow.run("s1", outputs) == outputs
    assert unchanged(flow) == before


def test_a_step_retried_after_a_lost_reply_replays_its_key_and_makes_nothing_new(flow: OrderFlow):
    outputs = flow.run_steps("s1", "s2", "s3")
    # The payment Lambda's reply is lost: the flow retries s4 with the outputs from before it.
    first = flow.run("s4", outputs)
    second = flow.run("s4", outputs)

    assert first == second
    assert len(flow.shop.orders) == 1 and len(flow.shop.charges) == 1
    payments = [call for call in flow.shop.writes() if call.operation == "payments.complete"]
    assert [call.key for call in payments] == [flow.key("s4")] * 2
    # The goal keeps one record of the step, not two.
    assert [step.stepId for step in flow.goal().steps] == ["s1", "s2", "s3", "s4"]


def test_a_retried_checkout_create_opens_no_second_session(flow: OrderFlow):
    first = flow.run("s1")
    second = flow.run("s1")
    assert first == second and len(flow.shop.sessions) == 1


# --- the plan hash checks ----------------------------------------------------------------------------------


def test_an_approved_plan_loads_for_the_hash_it_carries(flow: OrderFlow):
    plan = load_verified_plan(flow.goal(), flow.plan.planId, flow.plan.plan_hash())
    assert plan == flow.plan


def test_an_auto_plan_runs_without_an_approval(flow_for):
    auto = flow_for(route="auto")
    assert auto.goal().approvedPlanHash is None
    assert load_verified_plan(auto.goal(), auto.plan.planId, auto.plan.plan_hash()) == auto.plan
    auto.run_steps()
    assert len(auto.shop.charges) == 1


def _another_plan(flow: OrderFlow) -> dict[str, Any]:
    document = flow.plan.model_dump(mode="json")
    document["summary"]["items"][0]["quantity"] = 2
    return document


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        pytest.param(lambda flow: {"plan_id": "p-another-plan-id"}, "not the plan this execution carries",
                     id="another-plan-id"),
        pytest.param(lambda flow: {"plan_hash": "sha256:" + "0" * 64}, "not the plan this execution carries",
                     id="flow-carries-another-hash"),
    ],
)  # fmt: skip
def test_the_flow_must_carry_the_stored_plans_id_and_hash(flow: OrderFlow, tamper, message):
    before = unchanged(flow)
    event = flow.event("s1", **tamper(flow))
    with pytest.raises(PlanIntegrityError, match=message):
        flow.executor().run(event)
    assert unchanged(flow) == before


def test_a_plan_edited_in_storage_does_not_run_even_with_its_own_hash(flow: OrderFlow):
    edited = _another_plan(flow)
    flow.ledger.store.overwrite(flow.goal_id, plan=edited)
    goal = flow.goal()
    actual = goal.current_plan().plan_hash()
    assert actual != goal.planHash
    before = unchanged(flow)

    # Whether the flow carries the old hash or the edited plan's own, the goal's planHash disagrees.
    for carried in (flow.plan.plan_hash(), actual):
        with pytest.raises(PlanIntegrityError, match="not the plan this execution carries"):
            flow.executor().run(flow.event("s1", plan_hash=carried))
    assert unchanged(flow) == before


def test_a_plan_swapped_with_its_hash_after_approval_does_not_run(flow: OrderFlow):
    """Plan and planHash both replaced behind the approver's back: only approvedPlanHash still says no."""
    swapped = flow.plan.model_validate(_another_plan(flow))
    flow.ledger.store.overwrite(flow.goal_id, plan=swapped, planHash=swapped.plan_hash())
    before = unchanged(flow)
    with pytest.raises(PlanIntegrityError, match="differs from the plan the approver approved"):
        flow.executor().run(flow.event("s1", plan_hash=swapped.plan_hash()))
    assert unchanged(flow) == before


@pytest.mark.parametrize("approved_hash", [None, "sha256:" + "1" * 64], ids=["never-approved", "other-plan"])
def test_a_plan_that_needs_approval_runs_only_as_approved(flow: OrderFlow, approved_hash: str | None):
    flow.ledger.store.overwrite(flow.goal_id, approvedPlanHash=approved_hash)
    before = unchanged(flow)
    with pytest.raises(PlanIntegrityError, match="the approver approved"):
        flow.run("s1")
    with pytest.raises(PlanIntegrityError):
        load_verified_plan(flow.goal(), flow.plan.planId, flow.plan.plan_hash())
    assert unchanged(flow) == before and flow.shop.sessions == {}


def test_a_denied_plan_never_runs(flow_for):
    denied = flow_for(route="deny")
    # Even a goal that somehow holds an approval of this very plan.
    denied.ledger.store.overwrite(denied.goal_id, approvedPlanHash=denied.plan.plan_hash())
    before = unchanged(denied)
    for step in ("s1", "s4"):
        with pytest.raises(PlanIntegrityError, match="a denied plan cannot run"):
            denied.run(step, {"s1": {"checkoutId": "cs-x"}} if step == "s4" else None)
    assert unchanged(denied) == before and denied.shop.calls == []


def test_a_malformed_plan_never_runs(flow: OrderFlow):
    document = flow.plan.model_dump(mode="json")
    document["steps"][-1]["action"] = "payment.refund"
    flow.ledger.store.overwrite(flow.goal_id, plan=document)
    goal = flow.goal()
    assert type(goal.plan).__name__ == "MalformedPlan"
    before = unchanged(flow)
    with pytest.raises(PlanIntegrityError, match="does not fit the plan schema"):
        flow.run("s1")
    with pytest.raises(PlanIntegrityError, match="does not fit the plan schema"):
        load_verified_plan(goal, flow.plan.planId, flow.plan.plan_hash())
    assert unchanged(flow) == before and flow.shop.calls == []


def test_a_goal_without_a_plan_runs_nothing(flow: OrderFlow):
    flow.ledger.store.overwrite(flow.goal_id, plan=None)
    with pytest.raises(PlanIntegrityError, match="the goal has no plan"):
        flow.run("s1")
    assert flow.shop.calls == []


def test_a_step_named_with_another_action_is_refused(flow: OrderFlow):
    before = unchanged(flow)
    event = flow.event("s1", action=Action.PAYMENT_COMPLETE.value)
    with pytest.raises(PlanIntegrityError, match=re.escape("s1 is checkout.create, not payment.complete")):
        flow.executor().run(event)
    assert unchanged(flow) == before


def test_a_step_the_plan_does_not_have_runs_nothing(flow: OrderFlow):
    event = ConnectorEvent(
        goalId=flow.goal_id, planId=flow.plan.planId, planHash=flow.plan.plan_hash(),
        step=StepRef(id="s9", action="payment.complete"),
    )  # fmt: skip
    before = unchanged(flow)
    with pytest.raises(PlanIntegrityError, match="no step s9"):
        flow.executor().run(event)
    assert unchanged(flow) == before


def test_a_later_step_before_the_session_exists_is_refused(flow: OrderFlow):
    with pytest.raises(PlanIntegrityError, match="no checkout session has been created yet"):
        flow.run("s2")
    assert flow.shop.writes() == []


def test_a_plan_for_a_user_without_a_profile_opens_no_checkout(flow: OrderFlow):
    class NoOne:
        def get(self, user_id: str) -> None:
            return None

    with pytest.raises(PlanIntegrityError, match="no profile"):
        flow.run("s1", users=NoOne())
    assert flow.shop.writes() == []


@pytest.mark.parametrize(("action", "connector"), sorted(CONNECTOR_FOR_ACTION.items()))
def test_each_connector_serves_only_its_own_actions(action: Action, connector: str):
    event = ConnectorEvent(goalId="g", planId="p", planHash="h", step=StepRef(id="s1", action=action.value))
    assert require_connector(event, connector) is action
    for other in {"checkout", "fulfillment", "payment"} - {connector}:
        with pytest.raises(PlanIntegrityError, match=f"the {other} connector does not serve {action.value}"):
            require_connector(event, other)


@pytest.mark.parametrize("action", ["payment.refund", "checkout.delete", "", "PAYMENT.COMPLETE"])
def test_no_connector_serves_an_action_outside_the_closed_set(action: str):
    event = ConnectorEvent(goalId="g", planId="p", planHash="h", step=StepRef(id="s1", action=action))
    for connector in ("checkout", "fulfillment", "payment"):
        with pytest.raises(PlanIntegrityError, match="does not serve"):
            require_connector(event, connector)


# --- prices that moved since approval --------------------------------------------------------------------


def test_price_drift_stops_execution_before_any_merchant_write(flow: OrderFlow):
    outputs = flow.run_steps("s1")
    session_before = flow.shop.sessions[outputs["s1"]["checkoutId"]]
    writes_before = flow.shop.writes()
    flow.shop.reprice("shoe-a-42", cny("799.00"))

    with pytest.raises(
        PlanNeedsReapproval, match=re.escape("Swift Runner now costs 799.00 CNY, approved at 699.00 CNY")
    ):
        flow.run("s2", outputs, tolerance_percent=2)

    assert flow.shop.writes() == writes_before
    assert flow.shop.sessions[outputs["s1"]["checkoutId"]] == session_before
    assert [step.stepId for step in flow.goal().steps] == ["s1"]
    drift = flow.records()[-1]
    assert drift.event == "execution.price-drift" and drift.actor == "executor"
    assert drift.planHash == flow.plan.plan_hash()
    assert drift.detail == {
        "drifts": [{"itemId": "shoe-a-42", "approved": cny("699.00").model_dump(mode="json"),
                    "current": cny("799.00").model_dump(mode="json")}],
        "tolerancePercent": 2,
    }  # fmt: skip


def test_price_drift_before_the_first_step_opens_no_checkout(flow: OrderFlow):
    flow.shop.reprice("gift-wrap-standard", cny("19.00"))  # cheaper counts too
    with pytest.raises(PlanNeedsReapproval):
        flow.run("s1")
    assert flow.shop.writes() == [] and flow.shop.sessions == {}
    assert flow.events()[-1] == "execution.price-drift"


def test_an_item_no_longer_sold_stops_execution(flow: OrderFlow):
    flow.shop.products = [p for p in flow.shop.products if p.id != "gift-wrap"]
    with pytest.raises(PlanNeedsReapproval, match="Gift Wrap is no longer sold"):
        flow.run("s1")
    assert flow.shop.writes() == []
    assert flow.records()[-1].detail["drifts"][0]["current"] is None


def test_a_move_within_the_brands_tolerance_lets_the_step_run(flow: OrderFlow):
    outputs = flow.run_steps("s1", "s2", "s3")
    flow.shop.reprice("shoe-a-42", plus(cny("699.00"), 1398))  # exactly 2%
    outputs = flow.run("s4", outputs, tolerance_percent=2)
    assert "orderId" in outputs["s4"] and "execution.price-drift" not in flow.events()


# --- the changed-total guard --------------------------------------------------------------------------


def test_a_changed_session_total_is_never_charged(flow: OrderFlow):
    outputs = flow.run_steps("s1", "s2", "s3")
    session_id = outputs["s3"]["checkoutId"]
    agreed = agreed_amount(flow)
    # The merchant now asks 5.00 more for the same session (a fee the plan never saw).
    flow.shop.change_session_total(session_id, plus(agreed, 500))
    before = unchanged(flow)

    with pytest.raises(PlanNeedsReapproval) as raised:
        flow.run("s4", outputs)

    # Beyond the tolerance (none here): the shopper is asked again, by the flow's replanning path.
    assert str(raised.value) == "the merchant now asks 724.00 CNY, approved at 719.00 CNY"
    assert [call.operation for call in flow.shop.calls[len(before[-1]) :]] == [
        "catalog.lookup",
        "checkout.get",
    ]
    assert "payments.complete" not in [call.operation for call in flow.shop.calls]
    assert flow.shop.charges == [] and flow.shop.orders == {}
    assert flow.shop.sessions[session_id].status == "ready_for_complete"  # open, unpaid
    assert flow.shop.sessions[session_id].orderId is None
    assert unchanged(flow)[:4] == before[:4]  # no step recorded, no audit record written


def test_a_lower_session_total_is_not_charged_either(flow: OrderFlow):
    outputs = flow.run_steps("s1", "s2", "s3")
    flow.shop.change_session_total(outputs["s3"]["checkoutId"], plus(agreed_amount(flow), -100))
    with pytest.raises(PlanNeedsReapproval, match=re.escape("the merchant now asks 718.00 CNY")):
        flow.run("s4", outputs)
    assert flow.shop.charges == [] and flow.shop.orders == {}


def test_a_total_within_tolerance_is_charged_at_the_merchants_price_and_the_audit_says_so(flow: OrderFlow):
    # 0.14% more for the shoes: the drift check lets it through, the session total is 1.00 higher,
    # and the payment applies the same rule to the total.
    flow.shop.reprice("shoe-a-42", cny("700.00"))
    outputs = flow.executor(tolerance_percent=2).run(flow.event("s1"))
    for step in ("s2", "s3"):
        outputs = flow.executor(tolerance_percent=2).run(flow.event(step, outputs))
    assert flow.shop.sessions[outputs["s3"]["checkoutId"]].total == cny("720.00")

    outputs = flow.executor(tolerance_percent=2).run(flow.event("s4", outputs))

    assert outputs["s4"]["total"] == cny("720.00").model_dump(mode="json")
    assert [amount for _, amount in flow.shop.charges] == [cny("720.00")]
    accepted = next(record for record in flow.records() if record.event == "execution.price-accepted")
    assert accepted.detail == {
        "approvedTotal": cny("719.00").model_dump(mode="json"),
        "merchantTotal": cny("720.00").model_dump(mode="json"),
        "tolerancePercent": 2,
    }


def test_a_total_beyond_tolerance_asks_again_and_charges_nothing(flow: OrderFlow):
    outputs = flow.run_steps("s1", "s2", "s3")
    flow.shop.change_session_total(outputs["s3"]["checkoutId"], plus(agreed_amount(flow), 1439))  # 2.001%
    with pytest.raises(PlanNeedsReapproval, match=re.escape("asks 733.39 CNY, approved at 719.00 CNY")):
        flow.executor(tolerance_percent=2).run(flow.event("s4", outputs))
    assert flow.shop.charges == [] and "execution.price-accepted" not in flow.events()


def test_an_order_placed_before_a_lost_reply_is_recovered_not_refused(flow: OrderFlow):
    """No guard once the order exists: the merchant already charged, and the same key replays it."""
    outputs = flow.run_steps("s1", "s2", "s3")
    session_id = outputs["s3"]["checkoutId"]
    placed = flow.merchant.payments.complete(session_id, flow.credential(flow.key("s4")), flow.key("s4"))
    flow.shop.change_session_total(session_id, plus(agreed_amount(flow), 500))

    outputs = flow.run("s4", outputs)

    assert outputs["s4"]["orderId"] == placed.id
    assert len(flow.shop.charges) == 1 and len(flow.shop.orders) == 1


def test_a_declined_payment_records_no_step(flow: OrderFlow):
    outputs = flow.run_steps("s1", "s2", "s3")
    declined = flow.plan.model_dump(mode="json")
    declined["steps"][-1]["args"]["paymentMethodId"] = "pm_declined"
    flow.plan = flow.plan.model_validate(declined)
    flow.ledger.store.overwrite(
        flow.goal_id, plan=flow.plan, planHash=flow.plan.plan_hash(), approvedPlanHash=flow.plan.plan_hash()
    )
    with pytest.raises(MerchantRejected, match="payment declined"):
        flow.run("s4", outputs)
    assert [step.stepId for step in flow.goal().steps] == ["s1", "s2", "s3"]
    assert flow.shop.charges == []


def test_the_goal_record_never_carries_a_plan_it_did_not_approve(flow: OrderFlow):
    """Sanity of the fixture: the goal is approved for the plan the tests run."""
    goal: GoalRecord = flow.goal()
    assert goal.status is GoalStatus.AWAITING_APPROVAL
    assert goal.planHash == goal.approvedPlanHash == flow.plan.plan_hash()
    assert goal.verdict is not None and goal.verdict.route == "approve"


# --- the plan's merchant, its options and its payment handlers -------------------------------------------


def test_each_step_runs_at_the_merchant_the_plan_names(flow: OrderFlow):
    asked: list[str] = []

    def merchants(merchant_id: str) -> Any:
        asked.append(merchant_id)
        return flow.merchant

    executor = StepExecutor(
        ledger=flow.ledger, merchants=merchants, users=flow.users,
        credentials={SANDBOX_HANDLER.name: flow.merchant.credentials},
    )  # fmt: skip
    executor.run(flow.event("s1"))

    assert asked == [flow.plan.merchant.id]


def test_the_planned_option_is_chosen_by_title_and_price_when_the_merchant_renamed_it(flow: OrderFlow):
    flow.shop.options = [option.model_copy(update={"id": f"{option.id}-v2"}) for option in flow.shop.options]
    outputs = flow.run_steps("s1", "s2", "s3")

    assert outputs["s3"]["optionId"] == f"{flow.plan.summary.shipping.optionId}-v2"
    assert (
        flow.shop.sessions[outputs["s1"]["checkoutId"]].selectedShippingOptionId == outputs["s3"]["optionId"]
    )


def test_an_option_the_merchant_no_longer_offers_stops_the_step(flow: OrderFlow):
    flow.shop.options = [
        option.model_copy(update={"id": "x", "title": "Drone"}) for option in flow.shop.options
    ]
    outputs = flow.run_steps("s1", "s2")

    with pytest.raises(MerchantRejected) as refused:
        flow.run("s3", outputs)

    assert refused.value.code == "fulfillment_option_unavailable"
    assert "payments.complete" not in [call.operation for call in flow.shop.calls]


def test_a_payment_handler_the_merchant_no_longer_offers_charges_nothing(flow: OrderFlow):
    outputs = flow.run_steps("s1", "s2", "s3")
    flow.shop.handlers = ()

    with pytest.raises(MerchantRejected) as refused:
        flow.run("s4", outputs)

    assert refused.value.code == "payment_handler_unsupported"
    assert flow.shop.charges == [] and flow.shop.tokens == {}


def test_a_retried_payment_presents_the_same_token(flow: OrderFlow):
    outputs = flow.run_steps("s1", "s2", "s3")
    flow.run("s4", outputs)
    flow.run("s4", outputs)

    tokens = {call.args["token"] for call in flow.shop.writes() if call.operation == "payments.complete"}
    assert len(tokens) == 1 and len(flow.shop.charges) == 1


def test_a_merchant_without_a_catalog_is_held_to_the_sessions_total_instead(flow: OrderFlow):
    flow.shop.offers_catalog = False
    flow.shop.reprice("shoe-a-42", cny("799.00"))  # a feed cannot be asked again; the session can
    outputs = flow.run_steps("s1", "s2", "s3")

    with pytest.raises(PlanNeedsReapproval):
        flow.run("s4", outputs)

    assert "catalog.lookup" not in [call.operation for call in flow.shop.calls]
    assert flow.shop.charges == []
