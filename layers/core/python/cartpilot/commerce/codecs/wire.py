"""What UCP 2026-01-11 and 2026-04-08 share on the wire: checkouts, fulfillment, totals, messages, errors.

Both versions carry the checkout the same way (line items, totals in minor units, the fulfillment
extension's methods, destinations, groups and options, messages with a severity). They differ in
what a request must hold and in where payment goes; each version's codec states that part, over
the readers and builders here.

``WireCheckout`` keeps the merchant's own ids (lines, methods, destinations, groups), which an
update must send back: UCP updates are full replacements (checkout.md, "Update Checkout").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from cartpilot.commerce.errors import (
    MerchantEscalation,
    MerchantOutcomeUnknown,
    MerchantRejected,
)
from cartpilot.commerce.ports import (
    Address,
    Buyer,
    CartLine,
    CheckoutSession,
    Order,
    PaymentCredential,
    Recipient,
    SessionLine,
    ShippingOption,
)
from cartpilot.kernel.money import Money

JsonObject = dict[str, Any]


def as_list(value: object) -> list[Any]:
    """A JSON array, or nothing: a merchant's missing or mistyped array reads as empty."""
    return value if isinstance(value, list) else []


def as_mapping(value: object) -> Mapping[str, Any]:
    """A JSON object, or nothing: a merchant's missing or mistyped object reads as empty."""
    return value if isinstance(value, Mapping) else {}


UNKNOWN_ERROR = "unknown_error"
ESCALATION = "requires_escalation"
CLOSED = frozenset({"completed", "canceled"})
# checkout.md, "Standard Errors": codes that name a refusal, whatever the checkout's status.
STANDARD_ERRORS = frozenset(
    {"out_of_stock", "item_unavailable", "address_undeliverable", "payment_failed", "eligibility_invalid"}
)


class MalformedAnswer(ValueError):
    """The merchant's answer did not have the shape its version promises."""


# --- messages and error envelopes ----------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One entry of a checkout's ``messages`` (checkout.md, "Error Handling")."""

    type: str
    code: str | None
    content: str
    severity: str | None = None
    path: str | None = None

    @property
    def is_error(self) -> bool:
        return self.type == "error"

    def words(self) -> str:
        return f"{self.content} ({self.code})" if self.code else self.content


def read_messages(raw: object) -> tuple[Message, ...]:
    """Messages as either version writes them; 2026-01-11's negotiation example says ``message``
    where the schema says ``content``, so both are read."""
    if not isinstance(raw, list):
        return ()
    messages = []
    for entry in raw:
        if not isinstance(entry, Mapping):
            continue
        content = entry.get("content", entry.get("message"))
        messages.append(
            Message(
                type=str(entry.get("type") or "error"),
                code=_text(entry.get("code")),
                content=str(content) if content is not None else "",
                severity=_text(entry.get("severity")),
                path=_text(entry.get("path")),
            )
        )
    return tuple(messages)


@dataclass(frozen=True)
class Refusal:
    """Why a merchant said no, in its own words, from whichever envelope it used."""

    code: str
    message: str
    continue_url: str | None = None
    severity: str | None = None

    def rejected(self, what: str, status_code: int | None) -> MerchantRejected:
        return MerchantRejected(f"{what}: {self.message}", status_code=status_code, code=self.code)


def read_refusal(status: int | None, body: object) -> Refusal:
    """The refusal in an error answer, for every envelope UCP documents.

    - 2026-04-08 ``error_response``: ``{"ucp": {"status": "error"}, "messages": [...]}``;
    - 2026-01-11 errors: ``{"status": "requires_escalation", "messages": [{"code", "content"}]}``;
    - negotiation and signature errors (overview.md, "Error Handling"; signatures.md):
      ``{"code", "content", "continue_url"?}``;
    - the MCP binding's JSON-RPC error, ``{"error": {"code", "message", "data": {"code", "content"}}}``.

    Anything else is ``unknown_error`` with the HTTP status, never a refusal without a code.
    """
    if isinstance(body, Mapping):
        continue_url = _text(body.get("continue_url"))
        errors = [message for message in read_messages(body.get("messages")) if message.is_error]
        if errors:
            first = errors[0]
            return Refusal(
                code=first.code or UNKNOWN_ERROR,
                message="; ".join(message.words() for message in errors),
                continue_url=continue_url,
                severity=first.severity,
            )
        code = _text(body.get("code"))
        if code and isinstance(body.get("content", body.get("message")), str):
            said = str(body.get("content", body.get("message")))
            return Refusal(code=code, message=f"{said} ({code})", continue_url=continue_url)
        rpc = body.get("error")
        if isinstance(rpc, Mapping):
            data = rpc.get("data") if isinstance(rpc.get("data"), Mapping) else {}
            assert isinstance(data, Mapping)
            code = _text(data.get("code")) or _text(rpc.get("code"))
            words = data.get("content") or rpc.get("message")
            if code and isinstance(words, str):
                return Refusal(
                    code=code, message=f"{words} ({code})", continue_url=_text(data.get("continue_url"))
                )
    shown = f"HTTP {status}" if status is not None else "an answer"
    return Refusal(
        code=UNKNOWN_ERROR, message=f"the merchant answered {shown} with an error CartPilot cannot read"
    )


def is_error_envelope(body: Mapping[str, Any]) -> bool:
    """2026-04-08's ``ucp.status: error`` (no resource in the body), or a body of messages only."""
    ucp = body.get("ucp")
    if isinstance(ucp, Mapping) and ucp.get("status") == "error":
        return True
    return "id" not in body and bool(read_messages(body.get("messages")))


# --- wire -> domain ------------------------------------------------------------------------------


def _text(value: object) -> str | None:
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) and str(value) else None


def money(amount: object, currency: str) -> Money:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise MalformedAnswer(f"amount {amount!r} is not in minor units")
    return Money(amount_minor=amount, currency=currency)


def price(amount: object, currency: str, what: str) -> Money:
    """A price: amount.json's minimum is 0 (only totals such as discounts are signed)."""
    value = money(amount, currency)
    if value.amount_minor < 0:
        raise MalformedAnswer(f"{what} {value.amount_minor} is negative; a price is at least 0")
    return value


def _non_negative(amount: Money, what: str) -> Money:
    if amount.amount_minor < 0:
        raise MalformedAnswer(f"{what} totals {amount.amount_minor}; a charge is never negative")
    return amount


def tax_of(totals: object, currency: str) -> Money | None:
    """The checkout's ``tax`` entries (checkout.md totals), summed; None when it names none."""
    entries = [
        entry for entry in as_list(totals) if isinstance(entry, Mapping) and entry.get("type") == "tax"
    ]
    if not entries:
        return None
    return _non_negative(
        money(sum(int(money(entry.get("amount"), currency).amount_minor) for entry in entries), currency),
        "tax",
    )


def total_of(totals: object, currency: str) -> Money:
    """The ``total`` entry; without one, the sum of the entries (2026-01-11 options often carry one)."""
    if not isinstance(totals, list):
        raise MalformedAnswer("totals is not a list")
    for entry in totals:
        if isinstance(entry, Mapping) and entry.get("type") == "total":
            return money(entry.get("amount"), currency)
    if totals:
        return money(sum(int(entry["amount"]) for entry in totals), currency)
    raise MalformedAnswer("no totals")


def _day(value: object) -> date | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
    except ValueError:
        return None


def shipping_option(option: Mapping[str, Any], currency: str) -> ShippingOption:
    """An option as offered; one without a delivery window keeps ``None`` dates (fulfillment.md makes
    the window optional), so it is never taken for one that arrives by a deadline."""
    earliest = _day(option.get("earliest_fulfillment_time"))
    latest = _day(option.get("latest_fulfillment_time"))
    return ShippingOption(
        id=str(option["id"]),
        title=str(option["title"]),
        carrier=_text(option.get("carrier")),
        price=_non_negative(total_of(option.get("totals") or [], currency), f"option {option['id']}"),
        earliestDelivery=earliest,
        latestDelivery=latest if earliest is None or latest is None or latest >= earliest else earliest,
    )


@dataclass(frozen=True)
class WireLine:
    id: str
    item_id: str
    title: str
    quantity: int
    unit_price: Money

    def domain(self) -> SessionLine:
        return SessionLine(
            itemId=self.item_id, title=self.title, quantity=self.quantity, unitPrice=self.unit_price
        )


@dataclass(frozen=True)
class WireGroup:
    id: str
    line_item_ids: tuple[str, ...]
    selected_option_id: str | None
    options: tuple[ShippingOption, ...]


@dataclass(frozen=True)
class WireMethod:
    id: str | None
    type: str
    line_item_ids: tuple[str, ...]
    destinations: tuple[JsonObject, ...]
    selected_destination_id: str | None
    groups: tuple[WireGroup, ...]


@dataclass(frozen=True)
class WireCheckout:
    """A checkout as the merchant returned it: the domain view and the ids an update sends back."""

    id: str
    status: str
    currency: str
    lines: tuple[WireLine, ...]
    total: Money
    tax: Money | None = None
    methods: tuple[WireMethod, ...] = ()
    messages: tuple[Message, ...] = ()
    continue_url: str | None = None
    order_id: str | None = None
    order_permalink: str | None = None
    buyer: JsonObject | None = None
    context: JsonObject | None = None

    @property
    def shipping(self) -> WireMethod | None:
        return next((method for method in self.methods if method.type == "shipping"), None)

    @property
    def groups(self) -> tuple[WireGroup, ...]:
        return tuple(group for method in self.methods for group in method.groups)

    def options(self) -> list[ShippingOption]:
        """Every option of every group, each once, in the merchant's order."""
        seen: dict[str, ShippingOption] = {}
        for group in self.groups:
            for option in group.options:
                seen.setdefault(option.id, option)
        return list(seen.values())

    def errors(self) -> list[Message]:
        return [message for message in self.messages if message.is_error]

    def session(self) -> CheckoutSession:
        selected = next((g.selected_option_id for g in self.groups if g.selected_option_id), None)
        return CheckoutSession(
            id=self.id,
            status=self.status,
            currency=self.currency,
            lines=[line.domain() for line in self.lines],
            total=self.total,
            shippingOptions=self.options(),
            selectedShippingOptionId=selected,
            orderId=self.order_id,
        )


def _quantity(raw: object) -> int:
    if isinstance(raw, Mapping):  # order line items count quantity as an object
        raw = raw.get("original", raw.get("total"))
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise MalformedAnswer(f"quantity {raw!r} is not a count")
    return raw


def _line(raw: Mapping[str, Any], currency: str) -> WireLine:
    item = raw["item"]
    return WireLine(
        id=str(raw["id"]),
        item_id=str(item["id"]),
        title=str(item.get("title") or item["id"]),
        quantity=_quantity(raw["quantity"]),
        unit_price=price(item.get("price"), currency, f"price of {item['id']}"),
    )


def _group(raw: Mapping[str, Any], currency: str) -> WireGroup:
    return WireGroup(
        id=str(raw["id"]),
        line_item_ids=tuple(str(i) for i in raw.get("line_item_ids") or ()),
        selected_option_id=_text(raw.get("selected_option_id")),
        options=tuple(shipping_option(option, currency) for option in raw.get("options") or ()),
    )


def _method(raw: Mapping[str, Any], currency: str) -> WireMethod:
    return WireMethod(
        id=_text(raw.get("id")),
        type=str(raw.get("type") or "shipping"),
        line_item_ids=tuple(str(i) for i in raw.get("line_item_ids") or ()),
        destinations=tuple(dict(d) for d in raw.get("destinations") or () if isinstance(d, Mapping)),
        selected_destination_id=_text(raw.get("selected_destination_id")),
        groups=tuple(_group(group, currency) for group in raw.get("groups") or ()),
    )


def read_checkout(body: Mapping[str, Any]) -> WireCheckout:
    """A checkout of either version; an error envelope is a refusal in the merchant's words, or a hand-off
    where it asks for the buyer and says where (overview.md, "Scenario B": a challenge may come as
    status, messages and ``continue_url`` alone)."""
    if is_error_envelope(body):
        refusal = read_refusal(None, body)
        if body.get("status") == ESCALATION and refusal.continue_url is not None:
            raise MerchantEscalation(refusal.message, refusal.continue_url, code=refusal.code)
        raise refusal.rejected("the merchant refused", None)
    try:
        currency = str(body["currency"])
        order = body.get("order") if isinstance(body.get("order"), Mapping) else {}
        assert isinstance(order, Mapping)
        fulfillment = body.get("fulfillment") if isinstance(body.get("fulfillment"), Mapping) else {}
        assert isinstance(fulfillment, Mapping)
        return WireCheckout(
            id=str(body["id"]),
            status=str(body["status"]),
            currency=currency,
            lines=tuple(_line(line, currency) for line in body.get("line_items") or ()),
            total=_non_negative(total_of(body.get("totals") or [], currency), f"checkout {body['id']}"),
            tax=tax_of(body.get("totals") or [], currency),
            methods=tuple(_method(method, currency) for method in fulfillment.get("methods") or ()),
            messages=read_messages(body.get("messages")),
            continue_url=_text(body.get("continue_url")),
            order_id=_text(order.get("id")),
            order_permalink=_text(order.get("permalink_url")),
            buyer=dict(body["buyer"]) if isinstance(body.get("buyer"), Mapping) else None,
            context=dict(body["context"]) if isinstance(body.get("context"), Mapping) else None,
        )
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, MalformedAnswer):
            raise
        raise MalformedAnswer(f"{type(error).__name__}: {error}") from error


def order_status(order: Mapping[str, Any]) -> str:
    """UCP orders carry no status field; it is read from adjustments and line statuses (order.md).

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


def return_id_of(order: Mapping[str, Any]) -> str | None:
    """The merchant's id of the return filed for ``order``: the newest ``return`` adjustment's id
    (adjustment.json; a return is a post-order event, pending until the goods are received)."""
    adjustments = order.get("adjustments")
    if not isinstance(adjustments, list):
        return None
    ids = [
        str(a["id"])
        for a in adjustments
        if isinstance(a, Mapping) and a.get("type") == "return" and isinstance(a.get("id"), str) and a["id"]
    ]
    return ids[-1] if ids else None


def read_order(body: Mapping[str, Any], currency: str) -> Order:
    if is_error_envelope(body):
        raise read_refusal(None, body).rejected("the merchant refused", None)
    try:
        return Order(
            id=str(body["id"]),
            checkoutId=str(body["checkout_id"]),
            status=order_status(body),
            total=total_of(body.get("totals") or [], currency),
            lines=[_line(line, currency).domain() for line in body.get("line_items") or ()],
            permalinkUrl=_text(body.get("permalink_url")),
        )
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, MalformedAnswer):
            raise
        raise MalformedAnswer(f"{type(error).__name__}: {error}") from error


# --- what a checkout answer means ----------------------------------------------------------------


def escalation_of(checkout: WireCheckout, what: str) -> MerchantEscalation | None:
    """checkout.md: ``requires_escalation`` hands the buyer to ``continue_url`` (the merchant MUST give one)."""
    if checkout.status != ESCALATION:
        return None
    needs = [m for m in checkout.errors() if (m.severity or "").startswith("requires_")] or checkout.errors()
    words = "; ".join(message.words() for message in needs) or "the merchant needs the buyer to continue"
    if checkout.continue_url is None:
        return None
    code = needs[0].code if needs else None
    # The merchant's words alone: they are what the shopper is shown beside the continue URL.
    return MerchantEscalation(words, checkout.continue_url, code=code)


def refusal_of(checkout: WireCheckout, what: str, *, blocking_only: bool) -> MerchantRejected | None:
    """The checkout's error messages as a refusal in the merchant's words.

    With ``blocking_only`` (a session still being filled in), a missing field the next step
    supplies is not a refusal; a standard error, an unrecoverable one, or one about the line
    items is.
    """
    errors = checkout.errors()
    # A closed session changes no more: any error on it refuses what was asked.
    if blocking_only and checkout.status not in CLOSED:
        errors = [
            m
            for m in errors
            if m.code in STANDARD_ERRORS
            or m.severity == "unrecoverable"
            or (m.path or "").startswith("$.line_items")
        ]
    if not errors:
        return None
    return MerchantRejected(
        f"{what}: {'; '.join(m.words() for m in errors)}",
        status_code=None,
        code=errors[0].code or UNKNOWN_ERROR,
    )


def raise_for_escalation(checkout: WireCheckout, what: str) -> None:
    escalation = escalation_of(checkout, what)
    if escalation is not None:
        raise escalation
    if checkout.status == ESCALATION:
        # checkout.md: the business MUST give a continue_url with requires_escalation.
        raise MerchantRejected(
            f"{what}: the merchant asks for the buyer but gives no continue_url", code="continue_url_missing"
        )


def order_from_completed(checkout: WireCheckout, what: str) -> Order:
    """The order a completed checkout names, read from the checkout: no second call after a charge."""
    raise_for_escalation(checkout, what)
    if checkout.status == "complete_in_progress":
        # checkout.md: the business is still placing the order; only a replay of the key can tell.
        raise MerchantOutcomeUnknown(f"{what}: the merchant is still completing checkout {checkout.id}")
    refusal = refusal_of(checkout, what, blocking_only=False)
    if refusal is not None:
        # A completed checkout answered with errors is a refusal of this completion (another key
        # asking to pay for a session already paid), never that earlier order passed off as this one's.
        raise refusal
    if checkout.status != "completed" or checkout.order_id is None:
        raise MerchantRejected(
            f"{what}: checkout {checkout.id} is {checkout.status} and names no order",
            code="checkout_not_completed",
        )
    return Order(
        id=checkout.order_id,
        checkoutId=checkout.id,
        status="confirmed",
        total=checkout.total,
        lines=[line.domain() for line in checkout.lines],
        permalinkUrl=checkout.order_permalink,
    )


# --- domain -> wire ------------------------------------------------------------------------------


def split_name(full_name: str) -> JsonObject:
    first, _, last = full_name.strip().partition(" ")
    return {"first_name": first, "last_name": last.strip()} if last.strip() else {"first_name": first}


def buyer_body(buyer: Buyer) -> JsonObject:
    wire: JsonObject = split_name(buyer.fullName)
    if buyer.email:
        wire["email"] = buyer.email
    if buyer.phone:
        wire["phone_number"] = buyer.phone
    return wire


def postal_address(address: Address) -> JsonObject:
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


def destination_body(recipient: Recipient) -> JsonObject:
    """A shipping destination without an id: the merchant assigns one (shipping_destination.json)."""
    return {
        **postal_address(recipient.address),
        **split_name(recipient.name),
        "phone_number": recipient.phone,
    }


def new_line_items(lines: Iterable[CartLine]) -> list[JsonObject]:
    return [{"item": {"id": line.itemId}, "quantity": line.quantity} for line in lines]


@dataclass(frozen=True)
class LineUpdate:
    """One line an update sends: the merchant's id for a line it has, none for a new one."""

    item_id: str
    quantity: int
    id: str | None = None

    def body(self) -> JsonObject:
        wire: JsonObject = {"item": {"id": self.item_id}, "quantity": self.quantity}
        if self.id is not None:
            wire["id"] = self.id
        return wire


@dataclass(frozen=True)
class MethodUpdate:
    """The shipping method an update sends: where to, and which option each group takes."""

    line_item_ids: tuple[str, ...]
    destination: JsonObject
    id: str | None = None
    selected_destination_id: str | None = None
    group_choices: tuple[tuple[str, str], ...] = ()  # (group id, option id)

    def body(self, *, with_type: bool) -> JsonObject:
        wire: JsonObject = {}
        if self.id is not None:
            wire["id"] = self.id
        if with_type:
            wire["type"] = "shipping"
        wire["line_item_ids"] = list(self.line_item_ids)
        wire["destinations"] = [self.destination]
        if self.selected_destination_id is not None:
            wire["selected_destination_id"] = self.selected_destination_id
        if self.group_choices:
            wire["groups"] = [
                {"id": group, "selected_option_id": option} for group, option in self.group_choices
            ]
        return wire


@dataclass(frozen=True)
class CheckoutUpdate:
    """A full-replacement update: the lines to keep or add, and optionally the shipping method."""

    lines: tuple[LineUpdate, ...]
    method: MethodUpdate | None = None


def kept_lines(checkout: WireCheckout) -> tuple[LineUpdate, ...]:
    return tuple(
        LineUpdate(item_id=line.item_id, quantity=line.quantity, id=line.id) for line in checkout.lines
    )


def instrument_id(credential: PaymentCredential) -> str:
    """The platform assigns instrument ids (payment_instrument.json); one per handler keeps a retry's body."""
    return f"pi_{credential.handler.id}"


def without_lines_added_by(checkout: WireCheckout, adding: Sequence[CartLine]) -> tuple[LineUpdate, ...]:
    """The session's lines before ``adding`` was applied, so a retried update sends the same body.

    UCP gives new lines their ids on the merchant's side; when the session already ends with exactly
    the lines being added, the earlier attempt was applied and those lines are not kept twice.
    """
    kept = kept_lines(checkout)
    count = len(adding)
    if 0 < count <= len(kept):
        tail = kept[-count:]
        if [(line.item_id, line.quantity) for line in tail] == [
            (line.itemId, line.quantity) for line in adding
        ]:
            return kept[:-count]
    return kept


# --- negotiation ---------------------------------------------------------------------------------


def spec_matches_namespace(name: str, spec: str | None) -> bool:
    """overview.md, "Spec URL Binding": ``dev.ucp.*`` specs live at ucp.dev, ``com.example.*`` at
    example.com. A capability without a spec URL cannot be checked and is taken at its word."""
    if not spec:
        return True
    from urllib.parse import urlsplit

    parts = name.split(".")
    if len(parts) < 2:
        return False
    authority = f"{parts[1]}.{parts[0]}"
    host = (urlsplit(spec).hostname or "").lower()
    return urlsplit(spec).scheme == "https" and (host == authority or host.endswith(f".{authority}"))


def prune_orphans(active: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """overview.md, "Intersection Algorithm": drop extensions none of whose parents survived, repeatedly.

    ``active`` maps each capability to the parents it extends (empty for a root capability).
    """
    names = dict(active)
    while True:
        orphans = [
            name for name, parents in names.items() if parents and not any(p in names for p in parents)
        ]
        if not orphans:
            return tuple(sorted(names))
        for name in orphans:
            del names[name]
