"""The deterministic planner: intent from the goal's words, grounded in the merchant's catalog.

Every price, item id and delivery estimate in the plan comes from a read-only call
to the merchant; nothing is taken from the goal's text except what to look for.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date

from cartpilot.brands import BrandConfig
from cartpilot.clock import utc_now_iso
from cartpilot.commerce import (
    CartLine,
    Catalog,
    Fulfillment,
    ProductVariant,
    Recipient,
    SearchQuery,
    ShippingOption,
)
from cartpilot.goals import GoalContext
from cartpilot.money import Money, total_of
from cartpilot.planning.intent import GoalNotUnderstood, ShoppingIntent, parse_goal
from cartpilot.plans import (
    AddItemsArgs,
    AddItemsStep,
    CheckoutCreateArgs,
    CheckoutCreateStep,
    FulfillmentSelectArgs,
    FulfillmentSelectStep,
    LineRef,
    PaymentCompleteArgs,
    PaymentCompleteStep,
    Plan,
    PlanItem,
    PlannerInfo,
    PlanSummary,
    ShippingChoice,
)
from cartpilot.users import UserProfile

GIFT_WRAP_CATEGORY = "gift-wrap"


class PlanningFailed(Exception):
    """No concrete plan can be made; the reason is shown to the shopper."""


@dataclass(frozen=True)
class PlanningRequest:
    goalId: str
    goal: str
    context: GoalContext
    profile: UserProfile
    brand: BrandConfig
    today: date


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
        items = [self._plan_item(main, intent.quantity)]
        gift_wrap = self._gift_wrap(currency, lookups) if intent.giftWrap else None
        if gift_wrap is not None:
            items.append(self._plan_item(gift_wrap, 1, optional=True))

        recipient_id, recipient = resolve_recipient(request, intent)
        lines = [CartLine(itemId=item.itemId, quantity=item.quantity) for item in items]
        options = self._fulfillment.quote(lines, recipient.address, currency)
        lookups.calls.append(f"fulfillment.quote {recipient.address.city}, {recipient.address.country}")
        shipping = choose_shipping(options, deliver_by)

        saved_method = request.profile.default_payment_method()
        payment_method = request.context.paymentMethodId or (saved_method.id if saved_method else None)
        if payment_method is None:
            raise PlanningFailed("the shopper has no saved payment method and none was given")

        subtotal = total_of([item.unitPrice.times(item.quantity) for item in items], currency)
        total = subtotal + shipping.price
        main_items = [item for item in items if not item.optional]
        steps: list = [
            CheckoutCreateStep(
                id="s1",
                args=CheckoutCreateArgs(
                    lines=[LineRef(itemId=item.itemId, quantity=item.quantity) for item in main_items],
                    currency=currency,
                ),
                permissions=["checkout:create"],
                estimatedCost=total_of(
                    [item.unitPrice.times(item.quantity) for item in main_items], currency
                ),
                justification=f"Open a checkout for {main.title} ({_describe(main)}) at {main.price.format()}.",
            )
        ]
        if gift_wrap is not None:
            steps.append(
                AddItemsStep(
                    id=f"s{len(steps) + 1}",
                    optional=True,
                    args=AddItemsArgs(lines=[LineRef(itemId=gift_wrap.id, quantity=1)]),
                    permissions=["checkout:update"],
                    estimatedCost=gift_wrap.price,
                    justification=f"The goal asks for gift-wrap: {gift_wrap.title} at {gift_wrap.price.format()}.",
                )
            )
        steps.append(
            FulfillmentSelectStep(
                id=f"s{len(steps) + 1}",
                args=FulfillmentSelectArgs(optionId=shipping.id, recipientId=recipient_id),
                permissions=["checkout:update"],
                estimatedCost=shipping.price,
                justification=_shipping_reason(shipping, deliver_by),
            )
        )
        steps.append(
            PaymentCompleteStep(
                id=f"s{len(steps) + 1}",
                requiresConfirmation=True,
                args=PaymentCompleteArgs(paymentMethodId=payment_method, amount=total),
                permissions=["payment:charge"],
                estimatedCost=total,
                justification=f"Pay {total.format()} with the saved payment method to place the order.",
            )
        )
        return Plan(
            planId=f"p-{uuid.uuid4().hex[:24]}",
            goalId=request.goalId,
            userId=request.profile.userId,
            goal=request.goal,
            brand=request.brand.name,
            currency=currency,
            planner=PlannerInfo(kind="rules", model=None, promptVersion="rules-1", lookups=lookups.calls),
            steps=steps,
            summary=PlanSummary(
                items=items,
                shipping=ShippingChoice(
                    optionId=shipping.id,
                    title=shipping.title,
                    price=shipping.price,
                    earliestDelivery=shipping.earliestDelivery,
                    latestDelivery=shipping.latestDelivery,
                ),
                subtotal=subtotal,
                total=total,
                recipient=recipient,
                recipientId=recipient_id,
                deliverBy=deliver_by,
                budget=budget,
            ),
            createdAt=utc_now_iso(),
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

    @staticmethod
    def _plan_item(variant: ProductVariant, quantity: int, *, optional: bool = False) -> PlanItem:
        return PlanItem(
            itemId=variant.id,
            productId=variant.productId,
            title=variant.title,
            category=variant.category,
            quantity=quantity,
            unitPrice=variant.price,
            size=variant.size,
            color=variant.color,
            imageUrl=variant.imageUrl,
            optional=optional,
        )


def _describe(variant: ProductVariant) -> str:
    return (
        ", ".join(part for part in (f"size {variant.size}" if variant.size else None, variant.color) if part)
        or "as listed"
    )


def _shipping_reason(option: ShippingOption, deliver_by: date | None) -> str:
    eta = f"arrives {option.earliestDelivery.isoformat()} to {option.latestDelivery.isoformat()}"
    if deliver_by is None:
        return f"Cheapest shipping: {option.title}, {eta}."
    if option.latestDelivery <= deliver_by:
        return f"Cheapest shipping that meets {deliver_by.isoformat()}: {option.title}, {eta}."
    return f"No option meets {deliver_by.isoformat()}; fastest is {option.title}, {eta}."
