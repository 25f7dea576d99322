import pytest

from cartpilot.commerce.ports import Address, Recipient
from cartpilot.goals.model import GoalContext
from cartpilot.kernel.money import Money
from cartpilot.planning.rules import PlanningFailed
from cartpilot.plans.model import Action
from tests.conftest import make_plan


def test_seed_plan_is_concrete_and_grounded(seed_plan, merchant):
    summary = seed_plan.summary
    assert [step.action for step in seed_plan.steps] == [
        Action.CHECKOUT_CREATE, Action.CHECKOUT_ADD_ITEMS, Action.FULFILLMENT_SELECT, Action.PAYMENT_COMPLETE,
    ]  # fmt: skip
    shoes, wrap = summary.items
    # The cheapest in-stock size 42 running shoe, at the merchant's price.
    assert (shoes.itemId, shoes.unitPrice.format(), shoes.size) == ("shoe-a-42", "699.00 CNY", "42")
    assert (wrap.itemId, wrap.optional) == ("gift-wrap-standard", True)
    assert summary.recipientId == "friend-beijing" and summary.recipient.address.city == "Beijing"
    # Cheapest option that arrives before the deadline.
    assert summary.shipping.optionId == "standard"
    assert summary.total == Money(amount_minor=71900, currency="CNY")
    payment = seed_plan.steps[-1]
    assert payment.args.amount == summary.total and payment.args.paymentMethodId == "pm_user1_visa"
    assert all(step.justification for step in seed_plan.steps)
    # The prices are the merchant's pricing session's, after negotiation and a catalog search.
    lookups = seed_plan.planner.lookups
    assert lookups[0].startswith("merchant.profile sandbox-merchant UCP 2026-04-08")
    assert "catalog.search 'running shoes'" in lookups and "fulfillment.quote Beijing, CN" in lookups
    assert seed_plan.merchant.model_dump() == {
        "id": "sandbox-merchant", "ucpVersion": "2026-04-08", "paymentHandler": "com.cartpilot.sandbox_tokenizer",
        "paymentHandlerId": "sandbox_tokenizer", "undo": "cancel", "returns": False,
    }  # fmt: skip


def test_out_of_stock_sizes_are_skipped(merchant, brand, users):
    plan = make_plan(merchant, brand, users, "running shoes size 44 for me")
    # Swift Runner is out of stock in 44, so the planner does not pick it even though it is cheaper.
    assert plan.summary.items[0].itemId == "shoe-b-44"


def test_nothing_in_stock_is_a_clear_planning_failure(merchant, brand, users):
    with pytest.raises(PlanningFailed, match="size 47"):
        make_plan(merchant, brand, users, "running shoes size 47")


def test_unknown_recipient_city_is_refused(merchant, brand, users):
    with pytest.raises(PlanningFailed, match="recipient"):
        make_plan(merchant, brand, users, "Get my friend running socks and ship to Chengdu")


def test_context_recipient_and_payment_method_win(merchant, brand, users):
    recipient = Recipient(
        name="Li Lei", phone="+86 130 0000 1111",
        address=Address(line1="1 Test Street", city="Hangzhou", country="CN"),
    )  # fmt: skip
    plan = make_plan(
        merchant,
        brand,
        users,
        "running socks",
        context=GoalContext(recipient=recipient, paymentMethodId="pm_other"),
    )
    assert plan.summary.recipientId == "context" and plan.summary.recipient == recipient
    assert plan.steps[-1].args.paymentMethodId == "pm_other"


def test_impossible_deadline_picks_the_fastest_option(merchant, brand, users):
    plan = make_plan(merchant, brand, users, "running socks for me by 2026-11-26")
    assert plan.summary.shipping.optionId == "expedited"
    assert "No option meets" in plan.steps[-2].justification
