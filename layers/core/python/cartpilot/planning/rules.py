"""The deterministic planner: intent from the goal's words, grounded in the merchant's catalog.

Every price, item id and delivery estimate in the plan comes from a read-only call
to the merchant; nothing is taken from the goal's text except what to look for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from cartpilot.commerce.ports import (
    CartLine,
    Catalog,
    Fulfillment,
    ProductVariant,
    Recipient,
    SearchQuery,
    ShippingOption,
)
from cartpilot.kernel.money import Money
from cartpilot.planning.assembly import (
    GIFT_WRAP_CATEGORY,
    ChosenItem,
    PlanChoices,
    PlanningFailed,
    PlanningRequest,
    assemble_plan,
)
from cartpilot.planning.intent import GoalNotUnderstood, ShoppingIntent, parse_goal
from cartpilot.plans.model import Plan, PlannerInfo

__all__ = [
    "GIFT_WRAP_CATEGORY",
    "PlanningFailed",
    "PlanningRequest",
    "RulesPlanner",
    "choose_shipping",
    "resolve_recipient",
]


@dataclass
class _Lookups:
    calls: list[str] = field(default_factory=list)


def _matches(variant: ProductVariant, intent: ShoppingIntent) -> bool:
    if intent.size and (variant.size or "").lower() != intent.size.lower():
        return False
    if intent.color and intent.color.lower() not in (variant.color or "").lower():
        return False
    return variant.stock >= intent.quantity


def resolve_recipient(request: PlanningRequest, intent: ShoppingIntent) -> tuple[str, Recipient]:
    """The context's recipient if given, else the saved one the goal points at."""
    if request.context.recipient is not None:
        return "context", request.context.recipient
    profile = request.profile
    relation = intent.relation or ("self" if intent.city is None else None)
    candidates = [
        saved
        for saved in profile.recipients
        if (relation is None or saved.relation == relation)
        and (intent.city is None or saved.recipient.address.city == intent.city)
    ]
    if not candidates:
        wanted = " ".join(
            part for part in (intent.relation, f"in {intent.city}" if intent.city else None) if part
        )
        raise PlanningFailed(
            f"no saved recipient matches '{wanted or 'home'}'; add the recipient to the request's context"
        )
    return candidates[0].id, candidates[0].recipient


def choose_shipping(options: list[ShippingOption], deliver_by: date | None) -> ShippingOption:
    """The cheapest option that arrives in time; the fastest one if none does (the validator will say so)."""
    if not options:
        raise PlanningFailed("the merchant offers no shipping to this address")
    in_time = [option for option in options if deliver_by is None or option.latestDelivery <= deliver_by]
    if in_time:
        return min(in_time, key=lambda option: (option.price.amount_minor, option.latestDelivery, option.id))
    return min(options, key=lambda option: (option.latestDelivery, option.price.amount_minor, option.id))


class RulesPlanner:
    kind = "rules"

    def __init__(self, catalog: Catalog, fulfillment: Fulfillment) -> None:
        self._catalog = catalog
        self._fulfillment = fulfillment

    def plan(self, request: PlanningRequest) -> Plan:
        currency = request.brand.currency
        try:
            intent = parse_goal(request.goal, today=request.today, currency=currency)
        except GoalNotUnderstood as exc:
            raise PlanningFailed(str(exc)) from exc
        deliver_by = request.context.deliverBy or intent.deliverBy
        budget = request.context.budget or intent.budget
        lookups = _Lookups()

        main = self._choose_item(intent, currency, budget, lookups)
        items = [ChosenItem(main, intent.quantity)]
        if intent.giftWrap:
            items.append(ChosenItem(self._gift_wrap(currency, lookups), 1, optional=True))

        recipient_id, recipient = resolve_recipient(request, intent)
        lines = [CartLine(itemId=item.variant.id, quantity=item.quantity) for item in items]
        options = self._fulfillment.quote(lines, recipient.address, currency)
        lookups.calls.append(f"fulfillment.quote {recipient.address.city}, {recipient.address.country}")
        shipping = choose_shipping(options, deliver_by)

        saved_method = request.profile.default_payment_method()
        payment_method = request.context.paymentMethodId or (saved_method.id if saved_method else None)
        if payment_method is None:
            raise PlanningFailed("the shopper has no saved payment method and none was given")

        return assemble_plan(
            request,
            PlanChoices(
                items=items,
                recipientId=recipient_id,
                recipient=recipient,
                shipping=shipping,
                paymentMethodId=payment_method,
                deliverBy=deliver_by,
                budget=budget,
            ),
            planner=PlannerInfo(kind="rules", model=None, promptVersion="rules-1", lookups=lookups.calls),
            payment_label="the saved payment method",
        )

    def _choose_item(
        self, intent: ShoppingIntent, currency: str, budget: Money | None, lookups: _Lookups
    ) -> ProductVariant:
        query = SearchQuery(
            text=intent.query,
            currency=currency,
            category=intent.category,
            size=intent.size,
            color=intent.color,
        )
        products = self._catalog.search(query)
        lookups.calls.append(f"catalog.search {intent.query!r}")
        candidates = [
            variant for product in products for variant in product.variants if _matches(variant, intent)
        ]
        if not candidates and intent.category:
            # The category guess may be narrower than the merchant's; search the words alone.
            products = self._catalog.search(query.model_copy(update={"category": None}))
            lookups.calls.append(f"catalog.search {intent.query!r} any category")
            candidates = [v for product in products for v in product.variants if _matches(v, intent)]
        if not candidates:
            wanted = ", ".join(
                part
                for part in (intent.query, f"size {intent.size}" if intent.size else None, intent.color)
                if part
            )
            raise PlanningFailed(f"nothing in stock matches {wanted}")
        if budget is not None and budget.currency == currency:
            affordable = [
                v for v in candidates if v.price.times(intent.quantity).amount_minor <= budget.amount_minor
            ]
            candidates = affordable or candidates
        chosen = min(candidates, key=lambda variant: (variant.price.amount_minor, variant.id))
        # Re-read the chosen item: search results may be cached, the lookup is the price of record.
        fresh = self._catalog.lookup([chosen.id], currency)
        lookups.calls.append(f"catalog.lookup {chosen.id}")
        if not fresh or fresh[0].stock < intent.quantity:
            raise PlanningFailed(f"{chosen.title} went out of stock while planning")
        return fresh[0]

    def _gift_wrap(self, currency: str, lookups: _Lookups) -> ProductVariant:
        products = self._catalog.search(
            SearchQuery(text="gift wrap", currency=currency, category=GIFT_WRAP_CATEGORY)
        )
        lookups.calls.append("catalog.search 'gift wrap'")
        variants = [variant for product in products for variant in product.variants if variant.in_stock]
        if not variants:
            raise PlanningFailed("the merchant offers no gift-wrap")
        return min(variants, key=lambda variant: (variant.price.amount_minor, variant.id))
