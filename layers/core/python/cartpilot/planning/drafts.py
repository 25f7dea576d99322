"""The model's final answer: a compact plan draft, parsed, validated and grounded in what the tools showed.

The model does not write the Plan. It chooses (item ids and quantities, gift-wrap, recipient,
shipping option, payment method, each with a one-line justification) and the planner's code
builds the Plan from the catalog's own records, so no price, total or address in a plan comes from
model text. The draft's JSON Schema (``prompts/<version>/plan_draft.schema.json``) is the
structured-output schema the provider enforces where it can; this module enforces it everywhere,
and every error it finds is phrased for the model, which gets it back in a repair round.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cartpilot.commerce.ports import ProductVariant, Recipient
from cartpilot.kernel.money import Money
from cartpilot.planning.assembly import GIFT_WRAP_CATEGORY, PlanningRequest
from cartpilot.planning.tools import CONTEXT_RECIPIENT, ShoppingTools

MAX_ERRORS_SHOWN = 8


class _Draft(BaseModel):
    # Tolerant of extra keys: JSON-mode providers add them, and they carry nothing we use.
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


class DraftLine(_Draft):
    itemId: str = Field(min_length=1, max_length=80)
    quantity: int = Field(ge=1, le=20)
    justification: str = Field(default="", max_length=600)


class DraftGiftWrap(_Draft):
    itemId: str = Field(min_length=1, max_length=80)
    justification: str = Field(default="", max_length=600)


class DraftShipping(_Draft):
    optionId: str = Field(min_length=1, max_length=80)
    justification: str = Field(default="", max_length=600)


class DraftPayment(_Draft):
    paymentMethodId: str = Field(min_length=1, max_length=64)
    justification: str = Field(default="", max_length=600)


class PlanDraft(_Draft):
    decision: Literal["plan", "refuse"]
    reason: str = Field(min_length=1, max_length=600)
    items: list[DraftLine] = Field(default_factory=list, max_length=10)
    giftWrap: DraftGiftWrap | None = None
    recipientId: str | None = None
    shipping: DraftShipping | None = None
    payment: DraftPayment | None = None
    deliverBy: date | None = None
    budget: str | None = Field(default=None, max_length=20)


class DraftRejected(ValueError):
    """The draft cannot be used as it is; ``errors`` go back to the model."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors[:MAX_ERRORS_SHOWN]


@dataclass(frozen=True)
class Refusal:
    reason: str


@dataclass(frozen=True)
class GroundedLine:
    variant: ProductVariant
    """The variant as the tools showed it to the model: what the model chose, at the price it saw."""
    quantity: int
    justification: str
    optional: bool = False


@dataclass(frozen=True)
class GroundedDraft:
    lines: list[GroundedLine]
    recipientId: str
    recipient: Recipient
    shippingOptionId: str
    shippingJustification: str
    paymentMethodId: str
    paymentJustification: str
    deliverBy: date | None
    budget: Money | None
    reason: str


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_THINKING = re.compile(r"^\s*<think>.*?</think>\s*", re.DOTALL)


def parse_draft(text: str | None) -> PlanDraft:
    """The draft in the model's answer; JSON-mode and prompt-only models may fence it or think aloud first."""
    if text is None or not text.strip():
        raise DraftRejected(["the answer was empty; answer with the plan draft JSON object"])
    cleaned = _THINKING.sub("", text).strip()
    if fenced := _FENCE.match(cleaned):
        cleaned = fenced.group(1)
    try:
        document = json.loads(cleaned)
    except json.JSONDecodeError as exc:
        raise DraftRejected(
            [f"the answer is not valid JSON ({exc.msg} at character {exc.pos}); send only the JSON object"]
        ) from None
    if not isinstance(document, dict):
        raise DraftRejected(["the answer must be one JSON object, not a list or a value"])
    try:
        return PlanDraft.model_validate(document)
    except ValidationError as exc:
        raise DraftRejected([_field_error(error) for error in exc.errors()]) from None


def ground_draft(draft: PlanDraft, tools: ShoppingTools, request: PlanningRequest) -> GroundedDraft | Refusal:
    """Checks every reference in the draft against the tool results and the shopper's profile."""
    if draft.decision == "refuse":
        return Refusal(reason=" ".join(draft.reason.split()))
    memory = tools.memory
    errors: list[str] = []
    currency = request.brand.currency

    if not draft.items:
        errors.append('items is empty; a plan needs at least one item (or decide "refuse")')
    lines: list[GroundedLine] = []
    seen_ids: set[str] = set()
    for index, line in enumerate(draft.items):
        variant = memory.variants.get(line.itemId)
        if line.itemId in seen_ids:
            errors.append(
                f"items[{index}]: {line.itemId} is listed twice; give one line with the total quantity"
            )
        seen_ids.add(line.itemId)
        if variant is None:
            errors.append(
                f"items[{index}].itemId {line.itemId!r} was not in any tool result; "
                "search or look it up and use the itemId exactly"
            )
            continue
        if variant.category == GIFT_WRAP_CATEGORY:
            errors.append(f"items[{index}]: gift-wrap belongs in giftWrap, not in items")
            continue
        lines.append(GroundedLine(variant, line.quantity, line.justification))

    if draft.giftWrap is not None:
        wrap = memory.variants.get(draft.giftWrap.itemId)
        if wrap is None or wrap.category != GIFT_WRAP_CATEGORY:
            errors.append(
                f"giftWrap.itemId {draft.giftWrap.itemId!r} is not a gift-wrap item from a tool result; "
                'search "gift wrap" in category gift-wrap'
            )
        else:
            lines.append(GroundedLine(wrap, 1, draft.giftWrap.justification, optional=True))

    recipient = None
    if draft.recipientId is None:
        errors.append("recipientId is null; choose a recipientId that get_shopper returned")
    else:
        recipient = tools.recipient(draft.recipientId)
        if recipient is None:
            valid = [saved.id for saved in request.profile.recipients]
            if request.context.recipient is not None:
                valid.append(CONTEXT_RECIPIENT)
            errors.append(
                f"recipientId {draft.recipientId!r} is not one of the shopper's: {', '.join(valid)}"
            )

    if draft.shipping is None:
        errors.append("shipping is null; quote shipping and choose an optionId")
    elif draft.recipientId is not None and draft.shipping.optionId not in memory.quoted_option_ids(
        draft.recipientId
    ):
        errors.append(
            f"shipping.optionId {draft.shipping.optionId!r} was not quoted for recipient "
            f"{draft.recipientId!r}; call quote_shipping with the items and that recipient"
        )

    payment_method = None
    if draft.payment is None:
        errors.append("payment is null; choose a paymentMethodId that get_shopper returned")
    else:
        payment_method = draft.payment.paymentMethodId
        allowed = {method.id for method in request.profile.paymentMethods}
        if request.context.paymentMethodId:
            allowed.add(request.context.paymentMethodId)
        if payment_method not in allowed:
            errors.append(
                f"payment.paymentMethodId {payment_method!r} is not one of the shopper's: "
                f"{', '.join(sorted(allowed)) or 'none saved'}"
            )

    budget = None
    if draft.budget:
        try:
            budget = Money.from_decimal(Decimal(draft.budget.strip().replace(",", "")), currency)
        except (InvalidOperation, ValueError):
            errors.append(f'budget {draft.budget!r} is not an amount in {currency}, e.g. "300.00"')

    if (
        errors
        or recipient is None
        or payment_method is None
        or draft.recipientId is None
        or draft.shipping is None
        or draft.payment is None
    ):
        raise DraftRejected(errors or ["the draft is incomplete"])
    return GroundedDraft(
        lines=lines,
        recipientId=draft.recipientId,
        recipient=recipient,
        shippingOptionId=draft.shipping.optionId,
        shippingJustification=draft.shipping.justification,
        paymentMethodId=payment_method,
        paymentJustification=draft.payment.justification,
        deliverBy=draft.deliverBy,
        budget=budget,
        reason=draft.reason,
    )


def _field_error(error: Any) -> str:
    location = ""
    for part in error.get("loc", ()):
        location += f"[{part}]" if isinstance(part, int) else (f".{part}" if location else str(part))
    return f"{location or 'draft'}: {error.get('msg', 'invalid')}"
