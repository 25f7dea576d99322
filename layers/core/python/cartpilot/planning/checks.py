"""Hybrid checks: the model chose, the catalog decides. Symbolic checks of a grounded draft before it is a plan.

The draft is re-read against the merchant as it is now, not as the tools showed it: stock (a sold-out
variant is swapped for another of the same product, keeping what the goal named, size or colour),
the price (the merchant's pricing session for the final items is the price of record), and the
deadline (the session's shipping options must arrive in time; a cheaper-but-late option becomes a
faster one, and one without a delivery window never counts as in time).
What cannot be repaired is said plainly: a PlanningFailed reason, or a line in the plan's
``adjustments`` and the step's justification that the validator and the approver will read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from cartpilot.commerce.errors import MerchantRejected
from cartpilot.commerce.ports import (
    CartLine,
    Catalog,
    Fulfillment,
    ProductVariant,
    Quote,
    SearchQuery,
    ShippingOption,
)
from cartpilot.kernel.money import Money
from cartpilot.planning.assembly import (
    NO_DATE_PROMISED,
    ChosenItem,
    PlanChoices,
    PlanningFailed,
    PlanningRequest,
)
from cartpilot.planning.drafts import GroundedDraft, GroundedLine
from cartpilot.planning.intent import GoalNotUnderstood, ShoppingIntent, parse_goal
from cartpilot.planning.rules import choose_shipping, priced_options
from cartpilot.planning.variants import LETTER_SIZES, colour_name, normalize_size


@dataclass
class CheckedDraft:
    choices: PlanChoices
    adjustments: list[str] = field(default_factory=list)
    currency: str | None = None
    """The currency the merchant's session priced the plan in."""


def check_draft(
    draft: GroundedDraft,
    *,
    catalog: Catalog,
    fulfillment: Fulfillment,
    request: PlanningRequest,
    lookups: list[str],
    currency: str | None = None,
) -> CheckedDraft:
    """The draft as a plan's choices after checking it against the merchant; PlanningFailed if it cannot be.

    ``catalog`` is where the tools found products (the merchant's catalog or the brand's feed); the
    prices and shipping of record come from the merchant's pricing session for the final items.
    """
    currency = currency or request.brand.currency
    intent = _intent(request)
    adjustments: list[str] = []

    deliver_by = _strictest_deadline(request, draft, intent, adjustments)
    budget = _tightest_budget(request, draft, intent, currency)

    fresh = {
        variant.id: variant for variant in catalog.lookup([line.variant.id for line in draft.lines], currency)
    }
    lookups.append(f"catalog.lookup {' '.join(line.variant.id for line in draft.lines)}")
    # Each line of the draft as the variant to buy now: itself while in stock, else a substitute.
    chosen: list[tuple[GroundedLine, ProductVariant]] = []
    for line in draft.lines:
        current = fresh.get(line.variant.id)
        if current is not None and current.stock >= line.quantity:
            chosen.append((line, current))
        elif line.optional:
            adjustments.append(f"{line.variant.title} is sold out; the plan goes without it.")
        else:
            chosen.append((line, _substitute(line, catalog, request, intent, lookups, currency)))
    if not any(not line.optional for line, _ in chosen):
        raise PlanningFailed("nothing in the plan is in stock any more")

    quote = _quote(chosen, draft, fulfillment, currency, lookups)
    items: list[ChosenItem] = []
    for line, current in chosen:
        session_line = next((entry for entry in quote.lines if entry.itemId == current.id), None)
        if session_line is None:
            raise PlanningFailed(f"the merchant's checkout did not price {current.title}")
        confirmed = session_line.unitPrice
        # The session is authoritative for what the item is called, as for its price.
        variant = current.model_copy(update={"price": confirmed, "title": session_line.title})
        if session_line.title != current.title:
            adjustments.append(
                f"The merchant's checkout calls {current.title!r} {session_line.title!r}; the plan uses its title."
            )
        if current.id != line.variant.id:
            note = f"{line.variant.title} is sold out; chose {variant.title} at {confirmed.format()} instead."
            adjustments.append(note)
            items.append(ChosenItem(variant, line.quantity, reason=note))
            continue
        if confirmed != line.variant.price:
            adjustments.append(
                f"{variant.title} now costs {confirmed.format()}, not the "
                f"{line.variant.price.format()} quoted while planning; the plan uses the current price."
            )
        items.append(ChosenItem(variant, line.quantity, optional=line.optional, reason=line.justification))

    shipping, shipping_note = _shipping_in_time(draft, priced_options(quote), deliver_by)
    if shipping_note:
        adjustments.append(shipping_note)

    subtotal = sum(item.variant.price.amount_minor * item.quantity for item in items)
    tax = quote.tax.amount_minor if quote.tax is not None else 0
    total = Money(amount_minor=subtotal + shipping.price.amount_minor + tax, currency=quote.currency)
    if budget is not None and budget.currency == quote.currency and total.exceeds(budget):
        adjustments.append(f"The total {total.format()} is over the budget of {budget.format()}.")

    return CheckedDraft(
        choices=PlanChoices(
            items=items,
            recipientId=draft.recipientId,
            recipient=draft.recipient,
            shipping=shipping,
            paymentMethodId=draft.paymentMethodId,
            deliverBy=deliver_by,
            budget=budget,
            # A switched option is explained by the grounded fact and the adjustment, not the model's words.
            shippingReason=draft.shippingJustification if shipping_note is None else None,
            paymentReason=draft.paymentJustification,
            tax=quote.tax,
        ),
        adjustments=adjustments,
        currency=quote.currency,
    )


def _quote(
    chosen: list[tuple[GroundedLine, ProductVariant]],
    draft: GroundedDraft,
    fulfillment: Fulfillment,
    currency: str,
    lookups: list[str],
) -> Quote:
    """The merchant's pricing session for the final items: their prices and the shipping options."""
    address = draft.recipient.address
    lines = [CartLine(itemId=variant.id, quantity=line.quantity) for line, variant in chosen]
    try:
        quote = fulfillment.quote(lines, draft.recipient, currency)
    except MerchantRejected as refusal:
        raise PlanningFailed(f"the merchant's checkout refused the items: {refusal}") from refusal
    lookups.append(f"fulfillment.quote {address.city}, {address.country}")
    return quote


def _intent(request: PlanningRequest) -> ShoppingIntent | None:
    try:
        return parse_goal(request.goal, today=request.today, currency=request.brand.currency)
    except GoalNotUnderstood:
        return None


def _strictest_deadline(
    request: PlanningRequest, draft: GroundedDraft, intent: ShoppingIntent | None, adjustments: list[str]
) -> date | None:
    """The earliest of the deadlines the request, the model and the goal's own words give."""
    if request.context.deliverBy is not None:
        return request.context.deliverBy
    read_from_words = intent.deliverBy if intent else None
    candidates = [day for day in (draft.deliverBy, read_from_words) if day is not None]
    if not candidates:
        return None
    deadline = min(candidates)
    if draft.deliverBy is not None and deadline < draft.deliverBy:
        adjustments.append(
            f"The goal's words give the deadline {deadline.isoformat()}, earlier than the "
            f"{draft.deliverBy.isoformat()} the model read; the plan keeps the earlier one."
        )
    return deadline


def _tightest_budget(
    request: PlanningRequest, draft: GroundedDraft, intent: ShoppingIntent | None, currency: str
) -> Money | None:
    if request.context.budget is not None:
        return request.context.budget
    candidates = [
        amount
        for amount in (draft.budget, intent.budget if intent else None)
        if amount is not None and amount.currency == currency
    ]
    return min(candidates, key=lambda amount: amount.amount_minor) if candidates else None


def _named(goal: str, value: str | None, intent_value: str | None) -> bool:
    """Whether the goal asked for this size or colour, so a substitute must keep it."""
    if value is None:
        return False
    if intent_value is not None and intent_value.lower() == value.lower():
        return True
    # The goal parser reads numeric sizes and its own colour words; "size M" or "Navy" it may miss.
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", goal, re.IGNORECASE) is not None


def _size_distance(wanted: str | None, other: str | None) -> float:
    wanted, other = normalize_size(wanted), normalize_size(other)
    if wanted is None or other is None:
        return 0.0
    try:
        return abs(float(wanted) - float(other))
    except ValueError:
        pass
    if wanted in LETTER_SIZES and other in LETTER_SIZES:
        return float(abs(LETTER_SIZES.index(wanted) - LETTER_SIZES.index(other)))
    return 99.0


def _siblings(
    wanted: ProductVariant, catalog: Catalog, currency: str, lookups: list[str]
) -> list[ProductVariant]:
    """Every variant of the wanted item's product, as the catalog has them now."""
    # UCP looks a product id up as all its variants; a catalog that only knows variant ids is searched.
    found = [v for v in catalog.lookup([wanted.productId], currency) if v.productId == wanted.productId]
    lookups.append(f"catalog.lookup {wanted.productId}")
    if found:
        return found
    title = wanted.title.split(" (")[0]
    products = catalog.search(SearchQuery(text=title, currency=currency, category=wanted.category))
    lookups.append(f"catalog.search {title!r}")
    return [v for product in products if product.id == wanted.productId for v in product.variants]


def _substitute(
    line: GroundedLine,
    catalog: Catalog,
    request: PlanningRequest,
    intent: ShoppingIntent | None,
    lookups: list[str],
    currency: str,
) -> ProductVariant:
    wanted = line.variant
    siblings = _siblings(wanted, catalog, currency, lookups)
    keep_size = _named(request.goal, wanted.size, intent.size if intent else None)
    keep_color = _named(request.goal, wanted.color, intent.color if intent else None)
    excluded = intent.excludedColors if intent else ()
    in_stock = [
        v
        for v in siblings
        if v.id != wanted.id and v.stock >= line.quantity and colour_name(v.color) not in excluded
    ]
    candidates = [
        v
        for v in in_stock
        if (not keep_size or v.size == wanted.size) and (not keep_color or v.color == wanted.color)
    ]
    if not candidates:
        kept = " and ".join(
            part
            for part in (f"size {wanted.size}" if keep_size else None, wanted.color if keep_color else None)
            if part
        )
        available = ", ".join(
            v.title for v in sorted(in_stock, key=lambda v: (v.price.amount_minor, v.id))[:3]
        )
        raise PlanningFailed(
            f"{wanted.title} is sold out"
            + (f" and no other variant in {kept} is in stock" if kept else " with no other variant in stock")
            + (f"; in stock: {available}" if available else "")
        )
    return min(
        candidates,
        key=lambda v: (
            v.size != wanted.size,
            v.color != wanted.color,
            _size_distance(wanted.size, v.size),
            v.price.amount_minor,
            v.id,
        ),
    )


def _shipping_in_time(
    draft: GroundedDraft, options: list[ShippingOption], deliver_by: date | None
) -> tuple[ShippingOption, str | None]:
    """The model's option from the final quote, unless it is gone or late and a timely one exists.

    An option without a delivery window never counts as arriving in time.
    """
    chosen = next((option for option in options if option.id == draft.shippingOptionId), None)
    if chosen is None:
        replacement = choose_shipping(options, deliver_by)
        return replacement, (
            f"Shipping option {draft.shippingOptionId} is not offered for these items; chose {replacement.title}."
        )
    if deliver_by is None or chosen.arrives_by(deliver_by):
        return chosen, None
    deadline = deliver_by.isoformat()
    late = (
        f"may arrive {chosen.latestDelivery.isoformat()}, after {deadline}"
        if chosen.latestDelivery is not None
        else f"promises no delivery date, so not by {deadline}"
    )
    replacement = choose_shipping(options, deliver_by)
    if replacement.arrives_by(deliver_by) and replacement.latestDelivery is not None:
        return replacement, (
            f"{chosen.title} {late}; switched to {replacement.title}, "
            f"which arrives by {replacement.latestDelivery.isoformat()}."
        )
    if replacement.latestDelivery is None:
        return (
            replacement,
            f"No shipping option promises delivery by {deadline}; {replacement.title}: {NO_DATE_PROMISED}.",
        )
    return replacement, (
        f"No shipping option arrives by {deadline}; the fastest, {replacement.title}, "
        f"may arrive {replacement.latestDelivery.isoformat()}."
    )
