"""Turning chosen items, shipping, recipient and payment into a concrete plan; shared by every planner.

Planners differ in how they choose (rules read the goal's words, a model calls tools); once the
choice is made, the plan is built here, the same way: prices as the merchant's pricing session
confirmed them (the planners put the session's price on each chosen variant), totals
summed in integer minor units, one step per action in the only allowed order, and a one-line
justification on each step that states the grounded facts first.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from cartpilot.brands.config import BrandConfig
from cartpilot.brands.users import UserProfile
from cartpilot.commerce.ports import ProductVariant, Recipient, ShippingOption
from cartpilot.goals.model import GoalContext
from cartpilot.kernel.clock import utc_now_iso
from cartpilot.kernel.money import Money, total_of
from cartpilot.plans.model import (
    AddItemsArgs,
    AddItemsStep,
    CheckoutCreateArgs,
    CheckoutCreateStep,
    FulfillmentSelectArgs,
    FulfillmentSelectStep,
    LineRef,
    MerchantTerms,
    PaymentCompleteArgs,
    PaymentCompleteStep,
    Plan,
    PlanItem,
    PlannerInfo,
    PlanSummary,
    ShippingChoice,
    Step,
)

GIFT_WRAP_CATEGORY = "gift-wrap"
JUSTIFICATION_LIMIT = 300


class PlanningFailed(Exception):
    """No concrete plan can be made. The message is kept in the audit; the shopper is told the
    reason its class maps to (goals/reasons.py: PLAN_NOT_POSSIBLE).

    ``planner`` says what the attempt cost when a model was asked (tokens, estimated cost).
    """

    code = "PLANNING_FAILED"

    def __init__(self, reason: str, *, planner: PlannerInfo | None = None) -> None:
        super().__init__(reason)
        self.planner = planner


class GoalUnclear(PlanningFailed):
    """Part of the goal could not be read (a date not on the calendar, a quantity in no known
    form): the shopper is asked to say it another way (REQUEST_UNCLEAR)."""

    code = "GOAL_UNCLEAR"


@dataclass(frozen=True)
class PlanningRequest:
    goalId: str
    goal: str
    context: GoalContext
    profile: UserProfile
    brand: BrandConfig
    today: date


@dataclass(frozen=True)
class ChosenItem:
    """A variant to buy, as the catalog priced it; optional items (gift-wrap) may be dropped by an approver."""

    variant: ProductVariant
    quantity: int
    optional: bool = False
    reason: str | None = None


@dataclass(frozen=True)
class PlanChoices:
    items: list[ChosenItem]
    recipientId: str
    recipient: Recipient
    shipping: ShippingOption
    paymentMethodId: str
    deliverBy: date | None = None
    budget: Money | None = None
    shippingReason: str | None = None
    paymentReason: str | None = None
    tax: Money | None = None
    """The tax the merchant's pricing session charged for these items and destination."""


def plan_item(variant: ProductVariant, quantity: int, *, optional: bool = False) -> PlanItem:
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


def describe_variant(variant: ProductVariant) -> str:
    return (
        ", ".join(part for part in (f"size {variant.size}" if variant.size else None, variant.color) if part)
        or "as listed"
    )


NO_DATE_PROMISED = "no delivery date promised"


def delivery_window(option: ShippingOption) -> str:
    if option.latestDelivery is None:
        return NO_DATE_PROMISED
    if option.earliestDelivery is None or option.earliestDelivery == option.latestDelivery:
        return f"arrives by {option.latestDelivery.isoformat()}"
    return f"arrives {option.earliestDelivery.isoformat()} to {option.latestDelivery.isoformat()}"


def shipping_reason(option: ShippingOption, deliver_by: date | None) -> str:
    """Never claims on-time delivery for an option without a promised window."""
    eta = delivery_window(option)
    if deliver_by is None:
        return f"Cheapest shipping: {option.title}, {eta}."
    if option.arrives_by(deliver_by):
        return f"Cheapest shipping that meets {deliver_by.isoformat()}: {option.title}, {eta}."
    if option.latestDelivery is None:
        return f"No option promises delivery by {deliver_by.isoformat()}; {option.title}: {eta}."
    return f"No option meets {deliver_by.isoformat()}; fastest is {option.title}, {eta}."


def one_line(*parts: str | None, limit: int = JUSTIFICATION_LIMIT) -> str:
    """Joins the parts into one line a person can read on an approval page, cut at the limit."""
    text = " ".join(" ".join(part.split()) for part in parts if part and part.strip())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _line_fact(item: ChosenItem) -> str:
    variant = item.variant
    each = " each" if item.quantity > 1 else ""
    count = f"{item.quantity} × " if item.quantity > 1 else ""
    return f"{count}{variant.title} ({describe_variant(variant)}) at {variant.price.format()}{each}"


def assemble_plan(
    request: PlanningRequest,
    choices: PlanChoices,
    *,
    planner: PlannerInfo,
    payment_label: str,
    merchant: MerchantTerms,
    currency: str | None = None,
) -> Plan:
    """The concrete plan for these choices at this merchant, in ``currency`` (the merchant's; the
    brand's by default); raises PlanningFailed when there is nothing to buy."""
    currency = currency or request.brand.currency
    main_items = [item for item in choices.items if not item.optional]
    optional_items = [item for item in choices.items if item.optional]
    if not main_items:
        raise PlanningFailed("the plan has nothing to buy besides optional extras")
    items = [plan_item(item.variant, item.quantity, optional=item.optional) for item in choices.items]
    subtotal = total_of([item.unitPrice.times(item.quantity) for item in items], currency)
    tax = choices.tax
    if tax is not None and tax.currency != currency:
        raise PlanningFailed(
            f"the merchant's checkout charges tax in {tax.currency}, the plan is in {currency}"
        )
    # checkout.md totals: the session's total is items + shipping + tax; the payment must match it.
    total = subtotal + choices.shipping.price + (tax or Money.zero(currency))

    steps: list[Step] = [
        CheckoutCreateStep(
            id="s1",
            args=CheckoutCreateArgs(
                lines=[LineRef(itemId=item.variant.id, quantity=item.quantity) for item in main_items],
                currency=currency,
            ),
            permissions=["checkout:create"],
            estimatedCost=total_of(
                [item.variant.price.times(item.quantity) for item in main_items], currency
            ),
            justification=one_line(
                "Open a checkout for " + " and ".join(_line_fact(item) for item in main_items) + ".",
                *(item.reason for item in main_items),
            ),
        )
    ]
    if optional_items:
        steps.append(
            AddItemsStep(
                id=f"s{len(steps) + 1}",
                optional=True,
                args=AddItemsArgs(
                    lines=[LineRef(itemId=item.variant.id, quantity=item.quantity) for item in optional_items]
                ),
                permissions=["checkout:update"],
                estimatedCost=total_of(
                    [item.variant.price.times(item.quantity) for item in optional_items], currency
                ),
                justification=one_line(
                    "The goal asks for gift-wrap: "
                    + " and ".join(
                        f"{item.variant.title} at {item.variant.price.format()}" for item in optional_items
                    )
                    + ".",
                    *(item.reason for item in optional_items),
                ),
            )
        )
    steps.append(
        FulfillmentSelectStep(
            id=f"s{len(steps) + 1}",
            args=FulfillmentSelectArgs(optionId=choices.shipping.id, recipientId=choices.recipientId),
            permissions=["checkout:update"],
            estimatedCost=choices.shipping.price,
            justification=one_line(
                shipping_reason(choices.shipping, choices.deliverBy), choices.shippingReason
            ),
        )
    )
    steps.append(
        PaymentCompleteStep(
            id=f"s{len(steps) + 1}",
            requiresConfirmation=True,
            args=PaymentCompleteArgs(paymentMethodId=choices.paymentMethodId, amount=total),
            permissions=["payment:charge"],
            estimatedCost=total,
            justification=one_line(
                f"Pay {total.format()}"
                + (f" (including {tax.format()} tax)" if tax is not None else "")
                + f" with {payment_label} to place the order.",
                choices.paymentReason,
            ),
        )
    )
    shipping = choices.shipping
    return Plan(
        planId=f"p-{uuid.uuid4().hex[:24]}",
        goalId=request.goalId,
        userId=request.profile.userId,
        goal=request.goal,
        brand=request.brand.name,
        currency=currency,
        merchant=merchant,
        planner=planner,
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
            tax=tax,
            total=total,
            recipient=choices.recipient,
            recipientId=choices.recipientId,
            deliverBy=choices.deliverBy,
            budget=choices.budget,
        ),
        createdAt=utc_now_iso(),
    )
