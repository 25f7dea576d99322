"""The commerce ports over UCP REST (2026-04-08): JSON on the wire, domain types inside.

Amounts are minor-unit integers on both sides, so money maps one to one. Retries, timeouts,
idempotency headers and error mapping live in `MerchantClient`; this module only translates.

Updates use UCP's full-replacement PUT, so an adapter that changes a session first reads it and
then sends the whole field. To keep a retried step idempotent across invocations, the body must
come out the same the second time even though the first attempt may already have been applied:
`add_items` names its new lines after the step's key, and on a retry recognises them as its own.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from cartpilot.commerce.errors import MerchantOutcomeUnknown, MerchantRejected
from cartpilot.commerce.http import JsonObject, MerchantClient, RetryPolicy, Timeouts
from cartpilot.commerce.ports import (
    Address,
    Buyer,
    CartLine,
    CheckoutSession,
    Order,
    Product,
    ProductVariant,
    Recipient,
    SearchQuery,
    SessionLine,
    ShippingOption,
)
from cartpilot.kernel.money import CurrencyMismatch, Money

SEARCH = "/catalog/search"
LOOKUP = "/catalog/lookup"
QUOTE = "/shipping/quote"
SESSIONS = "/checkout-sessions"
SESSION = "/checkout-sessions/{id}"
COMPLETE = "/checkout-sessions/{id}/complete"
CANCEL_SESSION = "/checkout-sessions/{id}/cancel"
ORDER = "/orders/{id}"
CANCEL_ORDER = "/orders/{id}/cancel"

SANDBOX_PAYMENT_HANDLER = "sandbox_token"


class _Malformed(ValueError):
    """The merchant's answer did not have the shape UCP promises."""


def _malformed(error: Exception, *, mutating: bool, what: str) -> Exception:
    message = f"unexpected {what} from merchant: {type(error).__name__} {error}"
    # After a mutating call the change may have happened; only a replay of the key can tell.
    return (
        MerchantOutcomeUnknown(message) if mutating else MerchantRejected(message, code="malformed_response")
    )


# --- wire -> domain ------------------------------------------------------------------------------


def _money(amount: Any, currency: str) -> Money:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise _Malformed(f"amount {amount!r} is not minor units")
    return Money(amount_minor=amount, currency=currency)


def _total(totals: list[JsonObject], currency: str, kind: str = "total") -> Money:
    for entry in totals:
        if entry.get("type") == kind:
            return _money(entry["amount"], currency)
    if kind == "total" and totals:
        return _money(sum(int(entry["amount"]) for entry in totals), currency)
    raise _Malformed(f"no {kind} among totals")


def _day(value: str) -> date:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).date()


def _option_value(variant: JsonObject, *names: str) -> str | None:
    for option in variant.get("options") or []:
        if str(option.get("name", "")).lower() in names:
            return str(option["label"])
    return None


def _category(product: JsonObject) -> str:
    categories = product.get("categories") or []
    if categories:
        return str(categories[0]["value"])
    return str((product.get("metadata") or {}).get("category", "uncategorised"))


def _stock(variant: JsonObject) -> int:
    stock = (variant.get("metadata") or {}).get("stock")
    if isinstance(stock, int) and not isinstance(stock, bool):
        return max(0, stock)
    # Without a count, availability is all a merchant tells: one we can buy, or none.
    return 1 if (variant.get("availability") or {}).get("available") else 0


def _media_url(entity: JsonObject) -> str | None:
    for media in entity.get("media") or []:
        if media.get("type") == "image" and media.get("url"):
            return str(media["url"])
    return None


def _variant(product: JsonObject, variant: JsonObject) -> ProductVariant:
    price = variant["price"]
    size = _option_value(variant, "size")
    color = _option_value(variant, "color", "colour")
    return ProductVariant(
        id=str(variant["id"]),
        productId=str(product["id"]),
        title=f"{product['title']} ({variant['title']})",
        price=_money(price["amount"], str(price["currency"])),
        size=size,
        color=color.lower() if color else None,
        stock=_stock(variant),
        category=_category(product),
        imageUrl=_media_url(variant) or _media_url(product),
    )


def _product(product: JsonObject) -> Product:
    description = product.get("description") or {}
    return Product(
        id=str(product["id"]),
        title=str(product["title"]),
        description=str(description.get("plain") or description.get("markdown") or ""),
        category=_category(product),
        variants=[_variant(product, variant) for variant in product.get("variants") or []],
    )


def _shipping_option(option: JsonObject, currency: str) -> ShippingOption | None:
    earliest = option.get("earliest_fulfillment_time")
    latest = option.get("latest_fulfillment_time")
    if not earliest or not latest:
        return None  # an option without a delivery window cannot be planned against a date
    return ShippingOption(
        id=str(option["id"]),
        title=str(option["title"]),
        carrier=option.get("carrier"),
        price=_total(option.get("totals") or [], currency),
        earliestDelivery=_day(earliest),
        latestDelivery=_day(latest),
    )


def _session_lines(line_items: list[JsonObject], currency: str) -> list[SessionLine]:
    lines = []
    for line in line_items:
        item = line["item"]
        quantity = line["quantity"]
        if isinstance(quantity, dict):  # order line items count quantity as an object
            quantity = quantity.get("original", quantity.get("total", 0))
        lines.append(
            SessionLine(
                itemId=str(item["id"]),
                title=str(item.get("title", item["id"])),
                quantity=int(quantity),
                unitPrice=_money(item["price"], currency),
            )
        )
    return lines


def _groups(checkout: JsonObject) -> list[JsonObject]:
    methods = (checkout.get("fulfillment") or {}).get("methods") or []
    return [group for method in methods for group in method.get("groups") or []]


def _checkout(checkout: JsonObject) -> CheckoutSession:
    currency = str(checkout["currency"])
    options: list[ShippingOption] = []
    selected: str | None = None
    for group in _groups(checkout):
        for raw in group.get("options") or []:
            option = _shipping_option(raw, currency)
            if option is not None:
                options.append(option)
        selected = selected or group.get("selected_option_id")
    order = checkout.get("order") or {}
    return CheckoutSession(
        id=str(checkout["id"]),
        status=str(checkout["status"]),
        currency=currency,
        lines=_session_lines(checkout.get("line_items") or [], currency),
        total=_total(checkout.get("totals") or [], currency),
        shippingOptions=options,
        selectedShippingOptionId=selected,
        orderId=order.get("id"),
    )


def order_status(order: JsonObject) -> str:
    """UCP orders carry no status field; it is read from adjustments and line statuses.

    confirmed (placed, nothing shipped yet) | partial | fulfilled | canceled
    """
    adjustments = order.get("adjustments") or []
    if any(a.get("type") == "cancellation" and a.get("status") == "completed" for a in adjustments):
        return "canceled"
    statuses = {line.get("status") for line in order.get("line_items") or []}
    if statuses == {"removed"}:
        return "canceled"
    if statuses and statuses <= {"fulfilled", "removed"}:
        return "fulfilled"
    if "partial" in statuses or ("fulfilled" in statuses and "processing" in statuses):
        return "partial"
    return "confirmed"


def _order(order: JsonObject) -> Order:
    currency = str(order["currency"])
    return Order(
        id=str(order["id"]),
        checkoutId=str(order["checkout_id"]),
        status=order_status(order),
        total=_total(order.get("totals") or [], currency),
        lines=_session_lines(order.get("line_items") or [], currency),
        permalinkUrl=order.get("permalink_url"),
    )


def _order_from_completed(checkout: JsonObject) -> Order:
    """The order a completed checkout names, from the checkout itself: no second call after a charge."""
    session = _checkout(checkout)
    reference = checkout.get("order") or {}
    if session.status != "completed" or not reference.get("id"):
        raise _Malformed(f"checkout {session.id} is {session.status} without an order")
    return Order(
        id=str(reference["id"]),
        checkoutId=session.id,
        status="confirmed",
        total=session.total,
        lines=session.lines,
        permalinkUrl=reference.get("permalink_url"),
    )


# --- domain -> wire ------------------------------------------------------------------------------


def _line_items(lines: list[CartLine]) -> list[JsonObject]:
    return [{"item": {"id": line.itemId}, "quantity": line.quantity} for line in lines]


def _split_name(full_name: str) -> dict[str, str]:
    first, _, last = full_name.strip().partition(" ")
    return {"first_name": first, "last_name": last.strip()} if last.strip() else {"first_name": first}


def _buyer(buyer: Buyer) -> JsonObject:
    wire: JsonObject = _split_name(buyer.fullName)
    if buyer.email:
        wire["email"] = buyer.email
    if buyer.phone:
        wire["phone_number"] = buyer.phone
    return wire


def _postal_address(address: Address) -> JsonObject:
    wire: JsonObject = {
        "street_address": address.line1,
        "address_locality": address.city,
        "address_country": address.country,
    }
    if address.region:
        wire["address_region"] = address.region
    if address.postalCode:
        wire["postal_code"] = address.postalCode
    return wire


def _destination(recipient: Recipient) -> JsonObject:
    wire = {
        **_postal_address(recipient.address),
        **_split_name(recipient.name),
        "phone_number": recipient.phone,
    }
    # Named after its content, so the same recipient gives the same body on a retry.
    digest = hashlib.sha256(json.dumps(wire, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return {"id": f"dest_{digest[:12]}", **wire}


def _kept_lines(checkout: JsonObject, *, exclude_prefix: str | None = None) -> list[JsonObject]:
    """The session's lines as an update sends them back: id, item id, quantity."""
    return [
        {"id": line["id"], "item": {"id": line["item"]["id"]}, "quantity": line["quantity"]}
        for line in checkout.get("line_items") or []
        if exclude_prefix is None or not str(line["id"]).startswith(exclude_prefix)
    ]


def _key_prefix(idempotency_key: str) -> str:
    return f"li_{hashlib.sha256(idempotency_key.encode()).hexdigest()[:10]}_"


# --- adapters ------------------------------------------------------------------------------------


class UcpCatalog:
    def __init__(self, http: MerchantClient) -> None:
        self.http = http

    def search(self, query: SearchQuery) -> list[Product]:
        filters: JsonObject = {}
        if query.category:
            filters["categories"] = [query.category]
        if query.size:
            filters["size"] = query.size
        if query.color:
            filters["color"] = query.color
        if query.maxPrice is not None:
            if query.maxPrice.currency != query.currency:
                raise CurrencyMismatch(
                    f"a {query.currency} search cannot cap prices in {query.maxPrice.currency}"
                )
            filters["price"] = {"max": query.maxPrice.amount_minor}
        body: JsonObject = {
            "query": query.text,
            "context": {"currency": query.currency},
            "pagination": {"limit": query.limit},
        }
        if filters:
            body["filters"] = filters
        answer = self.http.query(SEARCH, body)
        try:
            return [_product(product) for product in answer.get("products") or []]
        except (KeyError, TypeError, ValueError) as error:
            raise _malformed(error, mutating=False, what="search result") from error

    def lookup(self, item_ids: list[str], currency: str) -> list[ProductVariant]:
        """The variants for these ids, in the order asked; a product id stands for all its variants."""
        if not item_ids:
            return []
        answer = self.http.query(LOOKUP, {"ids": item_ids, "context": {"currency": currency}})
        try:
            found: dict[str, list[ProductVariant]] = {}
            for product in answer.get("products") or []:
                for raw in product.get("variants") or []:
                    variant = _variant(product, raw)
                    for source in raw.get("inputs") or [{"id": variant.id}]:
                        found.setdefault(str(source["id"]), []).append(variant)
        except (KeyError, TypeError, ValueError) as error:
            raise _malformed(error, mutating=False, what="lookup result") from error
        variants: list[ProductVariant] = []
        seen: set[str] = set()
        for item_id in item_ids:
            for variant in found.get(item_id, []):
                if variant.id not in seen:
                    seen.add(variant.id)
                    variants.append(variant)
        return variants


class UcpCheckout:
    def __init__(self, http: MerchantClient) -> None:
        self.http = http

    def create(
        self, lines: list[CartLine], buyer: Buyer, currency: str, idempotency_key: str
    ) -> CheckoutSession:
        body = {"line_items": _line_items(lines), "buyer": _buyer(buyer), "context": {"currency": currency}}
        answer = self.http.mutate("POST", SESSIONS, body, idempotency_key=idempotency_key)
        return _parse_checkout(answer, mutating=True)

    def add_items(self, session_id: str, lines: list[CartLine], idempotency_key: str) -> CheckoutSession:
        prefix = _key_prefix(idempotency_key)
        current = self.http.get(SESSION, path={"id": session_id})
        try:
            kept = _kept_lines(current, exclude_prefix=prefix)
        except (KeyError, TypeError) as error:
            raise _malformed(error, mutating=False, what="checkout") from error
        # Lines named after the key: on a retry they are recognised as ours, so the body repeats.
        added = [
            {"id": f"{prefix}{index}", "item": {"id": line.itemId}, "quantity": line.quantity}
            for index, line in enumerate(lines, start=1)
        ]
        answer = self.http.mutate(
            "PUT",
            SESSION,
            {"line_items": kept + added},
            idempotency_key=idempotency_key,
            path={"id": session_id},
        )
        return _parse_checkout(answer, mutating=True)

    def get(self, session_id: str) -> CheckoutSession:
        return _parse_checkout(self.http.get(SESSION, path={"id": session_id}), mutating=False)

    def cancel(self, session_id: str, idempotency_key: str) -> CheckoutSession:
        answer = self.http.mutate(
            "POST", CANCEL_SESSION, None, idempotency_key=idempotency_key, path={"id": session_id}
        )
        return _parse_checkout(answer, mutating=True)


class UcpFulfillment:
    def __init__(self, http: MerchantClient) -> None:
        self.http = http

    def quote(self, lines: list[CartLine], destination: Address, currency: str) -> list[ShippingOption]:
        body = {
            "currency": currency,
            "line_items": _line_items(lines),
            "destination": _postal_address(destination),
        }
        answer = self.http.query(QUOTE, body)
        try:
            quoted = str(answer.get("currency") or currency)
            options = [_shipping_option(option, quoted) for option in answer.get("options") or []]
        except (KeyError, TypeError, ValueError) as error:
            raise _malformed(error, mutating=False, what="shipping quote") from error
        return [option for option in options if option is not None]

    def select(
        self, session_id: str, recipient: Recipient, option_id: str, idempotency_key: str
    ) -> CheckoutSession:
        """Sets the destination and chooses the option in one update."""
        current = self.http.get(SESSION, path={"id": session_id})
        try:
            methods = (current.get("fulfillment") or {}).get("methods") or []
            shipping = next((m for m in methods if m.get("type") == "shipping"), None)
            groups = (shipping or {}).get("groups") or []
            lines = _kept_lines(current)
        except (KeyError, TypeError) as error:
            raise _malformed(error, mutating=False, what="checkout") from error
        if shipping is None or not groups:
            raise MerchantRejected(
                f"checkout {session_id} offers no shipping group to choose an option in",
                code="fulfillment_unsupported",
            )
        destination = _destination(recipient)
        method: JsonObject = {
            "id": shipping["id"],
            "type": "shipping",
            "line_item_ids": [line["id"] for line in lines],
            "destinations": [destination],
            "selected_destination_id": destination["id"],
            "groups": [{"id": group["id"], "selected_option_id": option_id} for group in groups],
        }
        body = {"line_items": lines, "fulfillment": {"methods": [method]}}
        answer = self.http.mutate(
            "PUT", SESSION, body, idempotency_key=idempotency_key, path={"id": session_id}
        )
        return _parse_checkout(answer, mutating=True)


class UcpPayments:
    def __init__(self, http: MerchantClient, handler_id: str = SANDBOX_PAYMENT_HANDLER) -> None:
        self.http = http
        self.handler_id = handler_id

    def complete(self, session_id: str, payment_method_id: str, idempotency_key: str) -> Order:
        body = {
            "payment": {
                "instruments": [
                    {
                        "id": "instrument_1",
                        "handler_id": self.handler_id,
                        "type": "card",
                        "credential": {"type": "token", "token": payment_method_id},
                        "selected": True,
                    }
                ]
            }
        }
        answer = self.http.mutate(
            "POST", COMPLETE, body, idempotency_key=idempotency_key, path={"id": session_id}
        )
        try:
            return _order_from_completed(answer)
        except (KeyError, TypeError, ValueError) as error:
            raise _malformed(error, mutating=True, what="completed checkout") from error


class UcpOrders:
    def __init__(self, http: MerchantClient) -> None:
        self.http = http

    def get(self, order_id: str) -> Order:
        return _parse_order(self.http.get(ORDER, path={"id": order_id}), mutating=False)

    def cancel(self, order_id: str, idempotency_key: str) -> Order:
        answer = self.http.mutate(
            "POST", CANCEL_ORDER, None, idempotency_key=idempotency_key, path={"id": order_id}
        )
        return _parse_order(answer, mutating=True)


def _parse_checkout(answer: JsonObject, *, mutating: bool) -> CheckoutSession:
    try:
        return _checkout(answer)
    except (KeyError, TypeError, ValueError) as error:
        raise _malformed(error, mutating=mutating, what="checkout") from error


def _parse_order(answer: JsonObject, *, mutating: bool) -> Order:
    try:
        return _order(answer)
    except (KeyError, TypeError, ValueError) as error:
        raise _malformed(error, mutating=mutating, what="order") from error


@dataclass(frozen=True)
class UcpMerchant:
    """Every port over one client: what a connector function needs from the merchant."""

    http: MerchantClient
    catalog: UcpCatalog
    fulfillment: UcpFulfillment
    checkout: UcpCheckout
    payments: UcpPayments
    orders: UcpOrders

    @classmethod
    def over(cls, http: MerchantClient) -> UcpMerchant:
        return cls(
            http=http,
            catalog=UcpCatalog(http),
            fulfillment=UcpFulfillment(http),
            checkout=UcpCheckout(http),
            payments=UcpPayments(http),
            orders=UcpOrders(http),
        )

    @classmethod
    def for_url(
        cls, url: str, *, timeouts: Timeouts | None = None, retry: RetryPolicy | None = None
    ) -> UcpMerchant:
        return cls.over(MerchantClient(url, timeouts=timeouts, retry=retry))

    def close(self) -> None:
        self.http.close()
