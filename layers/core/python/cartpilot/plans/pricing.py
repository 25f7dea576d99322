"""The price-check stage: what the merchant charges right now for the plan's items.

Runs in the read-only catalog function, which may read the goal but write nothing: the
snapshot (a few items) travels to the validator in the flow, and the validator stores it
on the goal beside its verdict.

The prices come from the merchant's checkout, not its catalog or product feed, which may lag
it (a feed is a file the brand fetched): a pricing session is opened for the plan's lines and
recipient, read and canceled, charging nothing (``Fulfillment.quote``). The catalog or feed
still says what each item is (its category, which the brand's policies read, and its stock);
an item it does not know is left out, and the validator refuses it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from cartpilot.audit.privacy import scrub_text
from cartpilot.commerce.errors import MerchantRejected
from cartpilot.commerce.ports import CartLine, Catalog, Merchant, ProductVariant, Quote
from cartpilot.goals.model import PriceCheck
from cartpilot.goals.ports import GoalStore
from cartpilot.kernel.clock import utc_now_iso
from cartpilot.plans.model import Plan


def snapshot_current_prices(
    goal_id: str,
    plan_id: str,
    *,
    store: GoalStore,
    merchants: Callable[[str], Merchant],
    products: Callable[[str], Catalog] | None = None,
) -> PriceCheck:
    """The plan's items as the plan's merchant (``merchants(plan.merchant.id)``) charges them now.

    ``products`` gives the merchant's product source (its catalog, or the brand's feed for a merchant
    without one); by default the merchant's catalog.
    """
    goal = store.require(goal_id)
    plan = goal.plan
    if not isinstance(plan, Plan) or plan.planId != plan_id:
        raise LookupError(f"goal {goal_id} has no plan {plan_id}")
    merchant = merchants(plan.merchant.id)
    item_ids = sorted({item.itemId for item in plan.summary.items})
    catalog = products(plan.merchant.id) if products is not None else merchant.catalog
    current = catalog.lookup(item_ids, plan.currency)
    quantities = Counter[str]()
    for item in plan.summary.items:
        quantities[item.itemId] += item.quantity
    lines = [CartLine(itemId=item_id, quantity=quantities[item_id]) for item_id in item_ids]
    try:
        quote = merchant.fulfillment.quote(lines, plan.summary.recipient, plan.currency)
    except MerchantRejected as refusal:
        # The merchant's own words (out of stock, not sold there): the validator denies with them.
        return PriceCheck(
            planId=plan_id,
            checkedAt=utc_now_iso(),
            items=current,
            sessionChecked=True,
            refusal=scrub_text(str(refusal))[:1000],
        )
    return PriceCheck(
        planId=plan_id,
        checkedAt=utc_now_iso(),
        items=_as_charged(current, quote),
        sessionChecked=True,
        # Every option the session offers: the validator compares the plan's choice with them.
        shippingOptions=quote.options,
    )


def _as_charged(described: list[ProductVariant], quote: Quote) -> list[ProductVariant]:
    """The catalog's items with the session's titles and prices; the session held the quantity,
    so at least that many are in stock whatever a lagging feed says."""
    charged = []
    for variant in described:
        line = next((line for line in quote.lines if line.itemId == variant.id), None)
        if line is None:
            continue  # the session does not sell it: left out, as an item the catalog does not know
        charged.append(
            variant.model_copy(
                update={
                    "title": line.title,
                    "price": line.unitPrice,
                    "stock": max(variant.stock, line.quantity),
                }
            )
        )
    return charged
