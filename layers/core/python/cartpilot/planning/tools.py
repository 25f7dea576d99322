"""The read-only tools a model may call while planning one goal, over the Catalog and Fulfillment ports.

Tools answer in compact JSON the model can read and remember everything they showed it: the
variants (with the price the model saw), the shipping quotes and whether the shopper's profile was
read. Grounding checks the model's draft against that memory, so an id the model never saw in a
tool result cannot reach a plan.

The model sees what it needs to choose, not who the people are: recipients appear as an id, a
relation and a city, never a name, street or phone; payment methods as an id and a label.
Merchant outages propagate (the flow retries them); a bad argument or a merchant's refusal of a
query goes back to the model as an error result it can correct.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cartpilot.brands.categories import restriction_for
from cartpilot.commerce.errors import MerchantRejected
from cartpilot.commerce.ports import (
    CartLine,
    Catalog,
    Fulfillment,
    Product,
    ProductVariant,
    Recipient,
    SearchQuery,
    ShippingOption,
)
from cartpilot.kernel.money import Money
from cartpilot.planning.assembly import PlanningRequest
from cartpilot.planning.conversation import ToolCall, ToolResult

CONTEXT_RECIPIENT = "context"
MAX_PRODUCTS = 6
MAX_VARIANTS_PER_PRODUCT = 8


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class _NoArgs(_Args):
    # Models sometimes pass the user id to a tool that takes nothing; it changes nothing, so it is ignored.
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


class _SearchArgs(_Args):
    query: str = Field(min_length=1, max_length=200)
    category: str | None = Field(default=None, max_length=80)
    size: str | None = Field(default=None, max_length=20)
    color: str | None = Field(default=None, max_length=40)
    maxPrice: str | None = Field(default=None, max_length=20)


class _LookupArgs(_Args):
    itemIds: list[str] = Field(min_length=1, max_length=10)


class _QuoteLine(_Args):
    itemId: str = Field(min_length=1, max_length=80)
    quantity: int = Field(ge=1, le=20)


class _QuoteArgs(_Args):
    items: list[_QuoteLine] = Field(min_length=1, max_length=20)
    recipientId: str = Field(min_length=1, max_length=80)


class ToolArgumentError(ValueError):
    """The model's arguments cannot be used; the message goes back to it."""


@dataclass(frozen=True)
class QuotedShipping:
    """One quote_shipping answer: the options the merchant's pricing session offered for these lines."""

    recipientId: str
    lines: tuple[tuple[str, int], ...]
    options: tuple[ShippingOption, ...]


@dataclass
class ToolMemory:
    """What the tools showed the model during one planning conversation."""

    variants: dict[str, ProductVariant] = field(default_factory=dict)
    quotes: list[QuotedShipping] = field(default_factory=list)
    shopper_read: bool = False
    lookups: list[str] = field(default_factory=list)

    def quoted_option_ids(self, recipient_id: str) -> set[str]:
        return {
            option.id
            for quote in self.quotes
            if quote.recipientId == recipient_id
            for option in quote.options
        }


def money_text(amount: Money) -> str:
    return amount.format()


class ShoppingTools:
    """Dispatches the model's tool calls for one planning request."""

    def __init__(
        self,
        catalog: Catalog,
        fulfillment: Fulfillment,
        request: PlanningRequest,
        *,
        currency: str | None = None,
    ) -> None:
        """``catalog`` is where products are found: the merchant's catalog, or the brand's feed for it."""
        self._catalog = catalog
        self._fulfillment = fulfillment
        self.request = request
        self.currency = currency or request.brand.currency
        self.memory = ToolMemory()
        self._handlers: dict[str, tuple[type[_Args], Callable[[Any], dict[str, Any]]]] = {
            "get_shopper": (_NoArgs, self._get_shopper),
            "search_products": (_SearchArgs, self._search_products),
            "lookup_items": (_LookupArgs, self._lookup_items),
            "quote_shipping": (_QuoteArgs, self._quote_shipping),
        }

    @property
    def names(self) -> list[str]:
        return list(self._handlers)

    def call(self, call: ToolCall) -> ToolResult:
        handler = self._handlers.get(call.name)
        if handler is None:
            return _error(call, f"unknown tool {call.name!r}; the tools are {', '.join(self._handlers)}")
        if call.arguments is None:
            return _error(call, "the arguments were not a JSON object")
        model, run = handler
        try:
            arguments = model.model_validate(call.arguments)
            return ToolResult(call_id=call.id, name=call.name, content=run(arguments))
        except ValidationError as exc:
            return _error(call, "; ".join(_field_error(error) for error in exc.errors()))
        except (ToolArgumentError, MerchantRejected) as exc:
            return _error(call, str(exc))

    # --- profile -------------------------------------------------------------------------------

    def recipient(self, recipient_id: str) -> Recipient | None:
        if recipient_id == CONTEXT_RECIPIENT:
            return self.request.context.recipient
        saved = self.request.profile.recipient(recipient_id)
        return saved.recipient if saved else None

    def _get_shopper(self, _: _NoArgs) -> dict[str, Any]:
        profile = self.request.profile
        context = self.request.context
        self.memory.shopper_read = True
        self.memory.lookups.append("profile.read recipients, payment methods")
        recipients = [
            {
                "recipientId": saved.id,
                "relation": saved.relation,
                "city": saved.recipient.address.city,
                "country": saved.recipient.address.country,
            }
            for saved in profile.recipients
        ]
        if context.recipient is not None:
            recipients.append(
                {
                    "recipientId": CONTEXT_RECIPIENT,
                    "relation": "given with this request",
                    "city": context.recipient.address.city,
                    "country": context.recipient.address.country,
                }
            )
        default = profile.default_payment_method()
        return {
            "recipients": recipients,
            "paymentMethods": [{"paymentMethodId": m.id, "label": m.label} for m in profile.paymentMethods],
            "defaultPaymentMethodId": default.id if default else None,
            "requestPaymentMethodId": context.paymentMethodId,
        }

    # --- catalog -------------------------------------------------------------------------------

    def _search_products(self, args: _SearchArgs) -> dict[str, Any]:
        currency = self.currency
        query = SearchQuery(
            text=args.query,
            currency=currency,
            category=args.category or None,
            size=args.size or None,
            color=(args.color or "").lower() or None,
            maxPrice=_major_units(args.maxPrice, currency) if args.maxPrice else None,
            limit=MAX_PRODUCTS,
        )
        products = self._catalog.search(query)
        filters = " ".join(
            f"{name} {value}"
            for name, value in (("category", query.category), ("size", query.size), ("color", query.color))
            if value
        )
        self.memory.lookups.append(f"catalog.search {args.query!r}" + (f" {filters}" if filters else ""))
        return {"products": [self._product(product) for product in products[:MAX_PRODUCTS]]}

    def _lookup_items(self, args: _LookupArgs) -> dict[str, Any]:
        variants = self._catalog.lookup(list(dict.fromkeys(args.itemIds)), self.currency)
        self.memory.lookups.append(f"catalog.lookup {' '.join(args.itemIds)}")
        found = {variant.id for variant in variants} | {variant.productId for variant in variants}
        return {
            "items": [self._variant(variant, with_product=True) for variant in variants],
            "unknown": [item_id for item_id in args.itemIds if item_id not in found],
        }

    def _product(self, product: Product) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "productId": product.id,
            "title": product.title,
            "category": product.category,
        }
        paths = [path for variant in product.variants for path in variant.categoryPath]
        restriction = self._restriction(product.category, *paths)
        if restriction:
            entry["restricted"] = restriction
        entry["variants"] = [
            self._variant(variant) for variant in product.variants[:MAX_VARIANTS_PER_PRODUCT]
        ]
        if len(product.variants) > MAX_VARIANTS_PER_PRODUCT:
            entry["moreVariants"] = len(product.variants) - MAX_VARIANTS_PER_PRODUCT
        return entry

    def _variant(self, variant: ProductVariant, *, with_product: bool = False) -> dict[str, Any]:
        self.memory.variants[variant.id] = variant
        entry: dict[str, Any] = {"itemId": variant.id}
        if with_product:
            entry |= {"productId": variant.productId, "title": variant.title, "category": variant.category}
            restriction = self._restriction(variant.category, *variant.categoryPath)
            if restriction:
                entry["restricted"] = restriction
        if variant.size:
            entry["size"] = variant.size
        if variant.color:
            entry["color"] = variant.color
        entry |= {"price": money_text(variant.price), "inStock": variant.stock}
        return entry

    def _restriction(self, *categories: str) -> str | None:
        """What the validator will say of these categories (brands.categories), told ahead."""
        rule = restriction_for(categories, self.request.brand.category_rules())
        if rule == "deny":
            return "not sold through the assistant"
        if rule == "staff":
            return "needs staff approval"
        return None

    # --- shipping ------------------------------------------------------------------------------

    def _quote_shipping(self, args: _QuoteArgs) -> dict[str, Any]:
        recipient = self.recipient(args.recipientId)
        if recipient is None:
            raise ToolArgumentError(
                f"unknown recipientId {args.recipientId!r}; use one that get_shopper returned"
            )
        lines = [CartLine(itemId=line.itemId, quantity=line.quantity) for line in args.items]
        quote = self._fulfillment.quote(lines, recipient, self.currency)
        options = quote.options
        self.memory.lookups.append(f"fulfillment.quote {recipient.address.city}, {recipient.address.country}")
        self.memory.quotes.append(
            QuotedShipping(
                recipientId=args.recipientId,
                lines=tuple((line.itemId, line.quantity) for line in lines),
                options=tuple(options),
            )
        )
        return {
            "recipientId": args.recipientId,
            "destination": f"{recipient.address.city}, {recipient.address.country}",
            "options": [
                {
                    "optionId": option.id,
                    "title": option.title,
                    "price": money_text(option.price),
                    # A merchant need not promise a window; the model then sees null, never a guess.
                    "earliestDelivery": _iso(option.earliestDelivery),
                    "latestDelivery": _iso(option.latestDelivery),
                }
                for option in options
            ],
        }


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None


def _major_units(text: str, currency: str) -> Money:
    cleaned = text.strip().upper().removesuffix(currency).strip().replace(",", "")
    try:
        return Money.from_decimal(Decimal(cleaned), currency)
    except (InvalidOperation, ValueError):
        raise ToolArgumentError(f'maxPrice {text!r} is not an amount in {currency}, e.g. "300.00"') from None


def _field_error(error: Any) -> str:
    location = ".".join(str(part) for part in error.get("loc", ())) or "arguments"
    return f"{location}: {error.get('msg', 'invalid')}"


def _error(call: ToolCall, message: str) -> ToolResult:
    return ToolResult(call_id=call.id, name=call.name, content={"error": message}, is_error=True)


def tool_result_text(result: ToolResult) -> str:
    """The JSON text a chat-completions tool message carries."""
    return json.dumps(result.content, ensure_ascii=False, separators=(",", ":"))
