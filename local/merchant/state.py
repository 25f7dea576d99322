"""The sandbox merchant's state and business rules: catalog reads, checkout sessions and orders.

Everything lives in memory behind one lock, because requests arrive from several threads (the
uvicorn loop, test clients). Operations either raise a `MerchantError` having changed nothing,
or change the state and return the UCP body to send.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cartpilot_local.merchant.catalog import (
    Catalog,
    CatalogProduct,
    Variant,
    build_catalog,
    media_url,
    render_product,
)
from cartpilot_local.merchant.faults import FaultPlan
from cartpilot_local.merchant.idempotency import IdempotencyStore
from cartpilot_local.merchant.ledger import Ledger, OrderLine, OrderRecord, iso, new_id
from cartpilot_local.merchant.payloads import (
    CheckoutCompleteIn,
    CheckoutCreateIn,
    CheckoutUpdateIn,
    ContextIn,
    FulfillmentIn,
    LineItemIn,
    LookupIn,
    PaymentIn,
    QuoteIn,
    SearchIn,
)
from cartpilot_local.merchant.protocol import (
    CATALOG_LOOKUP,
    CATALOG_SEARCH,
    CHECKOUT,
    DECLINED_TOKEN,
    DEFAULT_CURRENCY,
    FULFILLMENT,
    ORDER,
    ORDER_CANCEL,
    PAYMENT_HANDLER_ID,
    PAYMENT_HANDLER_NAME,
    PAYMENT_TOKEN_PREFIX,
    SCHEMA_BASE,
    SHIPPING_QUOTE,
    SHOPPING_SERVICE,
    SPEC_URL,
    SUPPORTED_CURRENCIES,
    UCP_VERSION,
    JsonObject,
    MerchantError,
    not_found,
    ucp_meta,
)
from cartpilot_local.merchant.shipping import WAREHOUSE, ShippingQuote, destination_from, quote_shipping

Clock = Callable[[], datetime]

SESSION_TTL = timedelta(hours=6)  # UCP's default checkout expiry
MAX_PAGE_SIZE = 50


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class SessionLine:
    id: str
    item_id: str
    title: str
    unit_price: int
    quantity: int
    image_url: str | None
    restricted: bool


@dataclass
class CheckoutSession:
    id: str
    currency: str
    created_at: datetime
    lines: list[SessionLine]
    buyer: JsonObject | None = None
    method_id: str = "shipping_1"
    group_id: str = "package_1"
    destinations: list[JsonObject] = field(default_factory=list)
    selected_destination_id: str | None = None
    selected_option_id: str | None = None
    status: str = "open"  # open | completed | canceled
    order_id: str | None = None
    line_counter: int = 0

    @property
    def subtotal(self) -> int:
        return sum(line.unit_price * line.quantity for line in self.lines)

    @property
    def destination(self) -> JsonObject | None:
        return next((d for d in self.destinations if d["id"] == self.selected_destination_id), None)

    def next_line_id(self, taken: set[str]) -> str:
        while True:
            self.line_counter += 1
            candidate = f"li_{self.line_counter}"
            if candidate not in taken:
                return candidate


class MerchantState:
    def __init__(self, *, catalog: Catalog | None = None, clock: Clock | None = None) -> None:
        self.catalog = catalog or build_catalog()
        self._shelf_catalog = self.catalog
        self.clock: Clock = clock or utc_now
        self.lock = threading.RLock()
        self.sessions: dict[str, CheckoutSession] = {}
        self.ledger = Ledger()
        self.idempotency = IdempotencyStore()
        self.faults = FaultPlan()

    def reset(self) -> None:
        """Forgets sessions, orders, charges, refunds, idempotency keys and faults; the catalog stays."""
        with self.lock:
            self.catalog = self._shelf_catalog
            self.sessions.clear()
            self.ledger = Ledger()
            self.idempotency.clear()
            self.faults.clear()

    def reprice(self, item_id: str, currency: str, amount_minor: int) -> None:
        """Sets one variant's price; the catalog is immutable, so a new one replaces it."""
        with self.lock:
            found = self.catalog.purchasable(item_id)
            if found is None:
                raise KeyError(item_id)
            product, variant = found
            repriced = dataclasses.replace(variant, prices={**variant.prices, currency: amount_minor})
            new_product = dataclasses.replace(
                product, variants=tuple(repriced if v.id == variant.id else v for v in product.variants)
            )
            self.catalog = Catalog(
                products=tuple(new_product if p.id == product.id else p for p in self.catalog.products)
            )

    def ledger_json(self) -> JsonObject:
        with self.lock:
            return self.ledger.to_json()

    # --- discovery ---------------------------------------------------------------------------

    def profile(self, base_url: str) -> JsonObject:
        endpoint = base_url.rstrip("/")

        def capability(name: str, schema: str, **extra: Any) -> list[JsonObject]:
            return [{"version": UCP_VERSION, "spec": SPEC_URL, "schema": f"{SCHEMA_BASE}/{schema}", **extra}]

        return {
            "ucp": {
                "version": UCP_VERSION,
                "services": {
                    SHOPPING_SERVICE: [
                        {
                            "version": UCP_VERSION,
                            "transport": "rest",
                            "endpoint": endpoint,
                            "spec": SPEC_URL,
                            "schema": "https://ucp.dev/services/shopping/rest.openapi.json",
                        }
                    ]
                },
                "capabilities": {
                    CHECKOUT: capability(CHECKOUT, "shopping/checkout.json"),
                    FULFILLMENT: capability(
                        FULFILLMENT,
                        "shopping/fulfillment.json",
                        extends=CHECKOUT,
                        config={
                            "allows_multi_destination": {"shipping": False, "pickup": False},
                            "allows_method_combinations": [["shipping"]],
                        },
                    ),
                    CATALOG_SEARCH: capability(CATALOG_SEARCH, "shopping/catalog_search.json"),
                    CATALOG_LOOKUP: capability(CATALOG_LOOKUP, "shopping/catalog_lookup.json"),
                    ORDER: capability(ORDER, "shopping/order.json"),
                    SHIPPING_QUOTE: [
                        {
                            "version": UCP_VERSION,
                            "extends": FULFILLMENT,
                            "config": {
                                "endpoint": f"{endpoint}/shipping/quote",
                                "method": "POST",
                                "read_only": True,
                                "origin": WAREHOUSE,
                                "currencies": list(SUPPORTED_CURRENCIES),
                            },
                        }
                    ],
                    ORDER_CANCEL: [
                        {
                            "version": UCP_VERSION,
                            "extends": ORDER,
                            "config": {"endpoint": f"{endpoint}/orders/{{id}}/cancel", "method": "POST"},
                        }
                    ],
                },
                "payment_handlers": {
                    PAYMENT_HANDLER_NAME: [
                        {
                            "id": PAYMENT_HANDLER_ID,
                            "version": UCP_VERSION,
                            "available_instruments": [{"type": "card"}],
                            "config": {"credential_type": "token", "token_prefix": PAYMENT_TOKEN_PREFIX},
                        }
                    ]
                },
            }
        }

    # --- catalog -----------------------------------------------------------------------------

    def search(self, body: SearchIn, base_url: str) -> JsonObject:
        currency = _currency(body.context)
        filters = body.filters
        categories = filters.get("categories") or []
        if not isinstance(categories, list):
            categories = [categories]
        price = filters.get("price") or {}
        if not isinstance(price, dict):
            raise MerchantError(400, "invalid_request", "filters.price is an object", path="$.filters.price")
        limit = min(body.pagination.limit if body.pagination else 10, MAX_PAGE_SIZE)
        offset = _offset_from_cursor(body.pagination.cursor if body.pagination else None)
        page = self.catalog.search(
            body.query,
            currency=currency,
            categories=[str(c) for c in categories],
            size=_optional_str(filters.get("size")),
            color=_optional_str(filters.get("color") or filters.get("colour")),
            min_price=_optional_int(price.get("min"), "$.filters.price.min"),
            max_price=_optional_int(price.get("max"), "$.filters.price.max"),
            in_stock=bool(filters.get("in_stock") or filters.get("available")),
            offset=offset,
            limit=limit,
        )
        pagination: JsonObject = {"has_next_page": page.next_offset is not None, "total_count": page.total}
        if page.next_offset is not None:
            pagination["cursor"] = str(page.next_offset)
        return {
            "ucp": ucp_meta(CATALOG_SEARCH),
            "products": [render_product(hit.product, hit.variants, currency, base_url) for hit in page.hits],
            "pagination": pagination,
        }

    def lookup(self, body: LookupIn, base_url: str) -> JsonObject:
        currency = _currency(body.context)
        found: dict[str, tuple[CatalogProduct, list[Variant], dict[str, list[JsonObject]]]] = {}
        messages: list[JsonObject] = []
        for index, requested in enumerate(body.ids):
            product = self.catalog.product(requested)
            matched: list[tuple[Variant, str]] = []
            if product is not None:
                matched = [(v, "featured" if i == 0 else "product") for i, v in enumerate(product.variants)]
            elif (pair := self.catalog.variant(requested)) is not None:
                product = pair[0]
                matched = [(pair[1], "exact")]
            if product is None:
                messages.append(
                    _info("not_found", f"no product or variant has id {requested}", f"$.ids[{index}]")
                )
                continue
            priced = [(v, how) for v, how in matched if v.price_in(currency) is not None]
            if not priced:
                messages.append(
                    _info("currency_unavailable", f"{requested} is not sold in {currency}", f"$.ids[{index}]")
                )
                continue
            _, variants, inputs = found.setdefault(product.id, (product, [], {}))
            for variant, how in priced:
                if variant.id not in inputs:
                    variants.append(variant)
                inputs.setdefault(variant.id, []).append({"id": requested, "match": how})
        result: JsonObject = {
            "ucp": ucp_meta(CATALOG_LOOKUP),
            "products": [
                render_product(product, variants, currency, base_url, inputs)
                for product, variants, inputs in found.values()
            ],
        }
        if messages:
            result["messages"] = messages
        return result

    def quote(self, body: QuoteIn, base_url: str) -> JsonObject:
        currency = _currency(body.context, body.currency)
        lines = self._resolve_lines(body.line_items, currency, base_url, session=None)
        destination = destination_from(body.destination.postal_fields(), path="$.destination")
        quotes = quote_shipping(
            destination,
            subtotal=sum(line.unit_price * line.quantity for line in lines),
            currency=currency,
            now=self.clock(),
            restricted_items=any(line.restricted for line in lines),
        )
        return {
            "ucp": ucp_meta(FULFILLMENT, SHIPPING_QUOTE),
            "currency": currency,
            "origin": WAREHOUSE,
            "options": [q.render() for q in quotes],
        }

    # --- checkout sessions -------------------------------------------------------------------

    def create_checkout(self, body: CheckoutCreateIn, base_url: str) -> JsonObject:
        currency = _currency(body.context, body.currency)
        with self.lock:
            session = CheckoutSession(id=new_id("chk"), currency=currency, created_at=self.clock(), lines=[])
            # Line ids are the business's to assign on create (UCP: `create: omit`).
            items = [item.model_copy(update={"id": None}) for item in body.line_items]
            session.lines = self._resolve_lines(items, currency, base_url, session=session)
            if body.buyer is not None:
                session.buyer = body.buyer.model_dump(exclude_none=True)
            if body.fulfillment is not None:
                self._apply_fulfillment(session, body.fulfillment)
            self._check_options(session, requested=body.fulfillment is not None)
            self.sessions[session.id] = session
            return self._render_checkout(session, base_url)

    def get_checkout(self, session_id: str, base_url: str) -> JsonObject:
        with self.lock:
            return self._render_checkout(self._session(session_id), base_url)

    def update_checkout(self, session_id: str, body: CheckoutUpdateIn, base_url: str) -> JsonObject:
        with self.lock:
            current = self._session(session_id)
            self._ensure_open(current)
            asked = body.currency or (body.context.currency if body.context else None)
            if asked and _currency(body.context, body.currency) != current.currency:
                raise MerchantError(
                    422, "currency_change_unsupported", "a session keeps the currency it was created with"
                )
            session = copy.deepcopy(current)
            session.lines = self._resolve_lines(body.line_items, session.currency, base_url, session=session)
            if body.buyer is not None:
                session.buyer = body.buyer.model_dump(exclude_none=True)
            if body.fulfillment is not None:
                self._apply_fulfillment(session, body.fulfillment)
            self._check_options(session, requested=body.fulfillment is not None)
            self.sessions[session.id] = session
            return self._render_checkout(session, base_url)

    def complete_checkout(self, session_id: str, body: CheckoutCompleteIn, base_url: str) -> JsonObject:
        with self.lock:
            session = self._session(session_id)
            self._ensure_open(session)
            token = _payment_token(body.payment)
            selected = self._selected_quote(session)
            if selected is None:
                raise MerchantError(
                    422,
                    "fulfillment_required",
                    "set a shipping destination and choose a shipping option before completing",
                    path="$.fulfillment",
                )
            for index, line in enumerate(session.lines):
                self._check_stock(line.item_id, line.quantity, f"$.line_items[{index}]")
            if token == DECLINED_TOKEN:
                raise MerchantError(
                    402, "payment_failed", "the payment method was declined", path="$.payment.instruments[0]"
                )
            now = self.clock()
            order = OrderRecord(
                id=new_id("ord"),
                label=f"SB-{len(self.ledger.orders) + 1:06d}",
                checkout_id=session.id,
                currency=session.currency,
                lines=[
                    OrderLine(
                        line.id, line.item_id, line.title, line.unit_price, line.quantity, line.image_url
                    )
                    for line in session.lines
                ],
                subtotal=session.subtotal,
                shipping=selected.amount,
                shipping_option=selected.render(),
                destination=dict(session.destination or {}),
                created_at=now,
            )
            self.ledger.place_order(order, token)
            session.status = "completed"
            session.order_id = order.id
            return self._render_checkout(session, base_url)

    def cancel_checkout(self, session_id: str, base_url: str) -> JsonObject:
        with self.lock:
            session = self._session(session_id)
            if session.status == "completed":
                raise MerchantError(
                    422,
                    "checkout_completed",
                    f"checkout {session.id} became order {session.order_id}; cancel the order instead",
                    severity="unrecoverable",
                )
            session.status = "canceled"  # cancelling a canceled session changes nothing
            return self._render_checkout(session, base_url)

    # --- orders ------------------------------------------------------------------------------

    def get_order(self, order_id: str, base_url: str) -> JsonObject:
        with self.lock:
            return self._render_order(self._order(order_id), base_url)

    def cancel_order(self, order_id: str, base_url: str) -> JsonObject:
        with self.lock:
            order = self._order(order_id)
            self.ledger.cancel_order(order, self.clock())
            return self._render_order(order, base_url)

    # --- rules -------------------------------------------------------------------------------

    def _session(self, session_id: str) -> CheckoutSession:
        session = self.sessions.get(session_id)
        if session is None:
            raise not_found("checkout session", session_id)
        return session

    def _order(self, order_id: str) -> OrderRecord:
        order = self.ledger.orders.get(order_id)
        if order is None:
            raise not_found("order", order_id)
        return order

    @staticmethod
    def _ensure_open(session: CheckoutSession) -> None:
        if session.status == "completed":
            raise MerchantError(
                422,
                "checkout_completed",
                f"checkout {session.id} is already completed as order {session.order_id}",
                severity="unrecoverable",
            )
        if session.status == "canceled":
            raise MerchantError(
                422, "checkout_canceled", f"checkout {session.id} is canceled", severity="unrecoverable"
            )

    def _check_stock(self, item_id: str, quantity: int, path: str) -> tuple[CatalogProduct, Variant]:
        found = self.catalog.purchasable(item_id)
        if found is None:
            raise MerchantError(422, "item_unavailable", f"{item_id} is not a purchasable item", path=path)
        product, variant = found
        if variant.stock < quantity:
            detail = "is out of stock" if variant.stock == 0 else f"has only {variant.stock} left"
            raise MerchantError(422, "out_of_stock", f"{variant.id} {detail}", path=path)
        return product, variant

    def _resolve_lines(
        self,
        items: list[LineItemIn],
        currency: str,
        base_url: str,
        *,
        session: CheckoutSession | None,
    ) -> list[SessionLine]:
        ids = [item.id for item in items if item.id]
        if len(ids) != len(set(ids)):
            raise MerchantError(400, "invalid_request", "line item ids must be unique", path="$.line_items")
        taken = set(ids)
        lines = []
        for index, item in enumerate(items):
            path = f"$.line_items[{index}]"
            product, variant = self._check_stock(item.item.id, item.quantity, path)
            price = variant.price_in(currency)
            if price is None:
                raise MerchantError(
                    422, "item_unavailable", f"{variant.id} is not sold in {currency}", path=path
                )
            if item.id:
                line_id = item.id
            elif session is not None:
                line_id = session.next_line_id(taken)
            else:
                line_id = f"li_{index + 1}"
            taken.add(line_id)
            lines.append(
                SessionLine(
                    id=line_id,
                    item_id=variant.id,
                    title=product.variant_title(variant),
                    unit_price=price,
                    quantity=item.quantity,
                    image_url=media_url(base_url, product.id),
                    restricted=product.restricted,
                )
            )
        return lines

    def _apply_fulfillment(self, session: CheckoutSession, fulfillment: FulfillmentIn) -> None:
        """Full replacement of the fulfillment field, for the one shipping method the sandbox offers."""
        if not fulfillment.methods:
            session.destinations = []
            session.selected_destination_id = None
            session.selected_option_id = None
            return
        if len(fulfillment.methods) > 1:
            raise MerchantError(
                422,
                "fulfillment_unsupported",
                "one shipping method per checkout",
                path="$.fulfillment.methods",
            )
        method = fulfillment.methods[0]
        base = "$.fulfillment.methods[0]"
        if method.type != "shipping":
            raise MerchantError(
                422, "fulfillment_unsupported", "only shipping is offered", path=f"{base}.type"
            )
        if method.id is not None and method.id != session.method_id:
            raise MerchantError(
                422, "invalid_request", f"unknown fulfillment method {method.id}", path=f"{base}.id"
            )
        if method.destinations is not None:
            destinations = []
            for index, given in enumerate(method.destinations):
                postal = given.postal_fields()
                destination_from(postal, path=f"{base}.destinations[{index}]")
                destinations.append({"id": given.id or f"dest_{index + 1}", **postal})
            session.destinations = destinations
            known = {d["id"] for d in destinations}
            if method.selected_destination_id is not None:
                if method.selected_destination_id not in known:
                    raise MerchantError(
                        422,
                        "invalid_request",
                        f"no destination has id {method.selected_destination_id}",
                        path=f"{base}.selected_destination_id",
                    )
                session.selected_destination_id = method.selected_destination_id
            elif len(destinations) == 1:
                session.selected_destination_id = destinations[0]["id"]
            else:
                session.selected_destination_id = None
        elif method.selected_destination_id is not None:
            if method.selected_destination_id not in {d["id"] for d in session.destinations}:
                raise MerchantError(
                    422,
                    "invalid_request",
                    f"no destination has id {method.selected_destination_id}",
                    path=f"{base}.selected_destination_id",
                )
            session.selected_destination_id = method.selected_destination_id
        if method.groups is not None:
            choice: str | None = None
            for index, group in enumerate(method.groups):
                if group.id is not None and group.id != session.group_id:
                    raise MerchantError(
                        422,
                        "invalid_request",
                        f"unknown fulfillment group {group.id}",
                        path=f"{base}.groups[{index}].id",
                    )
                choice = group.selected_option_id
            session.selected_option_id = choice

    def _quotes(self, session: CheckoutSession) -> list[ShippingQuote]:
        destination = session.destination
        if destination is None or not session.lines:
            return []
        return quote_shipping(
            destination_from(destination, path="$.fulfillment.methods[0].destinations"),
            subtotal=session.subtotal,
            currency=session.currency,
            now=self.clock(),
            restricted_items=any(line.restricted for line in session.lines),
            path="$.fulfillment.methods[0].destinations",
        )

    def _check_options(self, session: CheckoutSession, *, requested: bool) -> None:
        """Validates the chosen option for the session's destination; a stale choice is dropped."""
        quotes = self._quotes(session)  # raises when the destination cannot take these items
        if session.selected_option_id is None:
            return
        if session.selected_option_id not in {q.rate.id for q in quotes}:
            if requested:
                raise MerchantError(
                    422,
                    "fulfillment_option_unavailable",
                    f"shipping option {session.selected_option_id} is not offered for this destination",
                    path="$.fulfillment.methods[0].groups[0].selected_option_id",
                )
            session.selected_option_id = None

    def _selected_quote(self, session: CheckoutSession) -> ShippingQuote | None:
        if session.selected_option_id is None:
            return None
        try:
            quotes = self._quotes(session)
        except MerchantError:
            return None
        return next((q for q in quotes if q.rate.id == session.selected_option_id), None)

    # --- rendering ---------------------------------------------------------------------------

    def _render_checkout(self, session: CheckoutSession, base_url: str) -> JsonObject:
        endpoint = base_url.rstrip("/")
        order = self.ledger.orders.get(session.order_id) if session.order_id else None
        if order is not None:
            # A completed session shows what was bought, not today's quote.
            options: list[JsonObject] = [order.shipping_option]
            shipping: int | None = order.shipping
        else:
            try:
                quotes = self._quotes(session)
            except MerchantError:
                quotes = []
            options = [q.render() for q in quotes]
            chosen = next((q for q in quotes if q.rate.id == session.selected_option_id), None)
            shipping = chosen.amount if chosen else None

        subtotal = session.subtotal
        totals: list[JsonObject] = [{"type": "subtotal", "display_text": "Subtotal", "amount": subtotal}]
        if shipping is not None:
            totals.append({"type": "fulfillment", "display_text": "Shipping", "amount": shipping})
        totals.append({"type": "total", "display_text": "Total", "amount": subtotal + (shipping or 0)})

        messages: list[JsonObject] = []
        for index, line in enumerate(session.lines):
            if line.restricted:
                messages.append(
                    {
                        "type": "warning",
                        "code": "age_restricted",
                        "path": f"$.line_items[{index}]",
                        "content": f"{line.title} is age-restricted: the recipient shows ID on delivery.",
                    }
                )
        if session.status == "open" and shipping is None:
            if session.destination is None:
                content, path = "Set a shipping destination.", "$.fulfillment.methods[0].destinations"
            else:
                content, path = (
                    "Choose a shipping option.",
                    "$.fulfillment.methods[0].groups[0].selected_option_id",
                )
            messages.append(
                {
                    "type": "error",
                    "code": "fulfillment_required",
                    "path": path,
                    "content": content,
                    "severity": "recoverable",
                }
            )
        if shipping == 0 and session.status == "open":
            messages.append(
                {"type": "info", "code": "free_shipping", "content": "Standard shipping is free."}
            )

        line_ids = [line.id for line in session.lines]
        body: JsonObject = {
            "ucp": ucp_meta(CHECKOUT, FULFILLMENT, payment_handlers=True),
            "id": session.id,
            "status": _checkout_status(session, shipping is not None),
            "currency": session.currency,
            "line_items": [
                {
                    "id": line.id,
                    "item": {
                        "id": line.item_id,
                        "title": line.title,
                        "price": line.unit_price,
                        "image_url": line.image_url,
                    },
                    "quantity": line.quantity,
                    "totals": [
                        {"type": "subtotal", "amount": line.unit_price * line.quantity},
                        {"type": "total", "amount": line.unit_price * line.quantity},
                    ],
                }
                for line in session.lines
            ],
            "totals": totals,
            "fulfillment": {
                "methods": [
                    {
                        "id": session.method_id,
                        "type": "shipping",
                        "line_item_ids": line_ids,
                        "destinations": session.destinations,
                        "selected_destination_id": session.selected_destination_id,
                        "groups": [
                            {
                                "id": session.group_id,
                                "line_item_ids": line_ids,
                                "options": options,
                                "selected_option_id": session.selected_option_id,
                            }
                        ],
                    }
                ],
                "available_methods": [
                    {"type": "shipping", "line_item_ids": line_ids, "fulfillable_on": "now"}
                ],
            },
            "messages": messages,
            "links": _links(endpoint),
            "expires_at": iso(session.created_at + SESSION_TTL),
        }
        if session.buyer:
            body["buyer"] = session.buyer
        if order is not None:
            body["order"] = {
                "id": order.id,
                "label": order.label,
                "permalink_url": f"{endpoint}/orders/{order.id}",
            }
        return body

    def _render_order(self, order: OrderRecord, base_url: str) -> JsonObject:
        endpoint = base_url.rstrip("/")
        canceled = order.status == "canceled"
        body: JsonObject = {
            "ucp": ucp_meta(ORDER, ORDER_CANCEL),
            "id": order.id,
            "label": order.label,
            "checkout_id": order.checkout_id,
            "permalink_url": f"{endpoint}/orders/{order.id}",
            "currency": order.currency,
            "line_items": [
                {
                    "id": line.id,
                    "item": {
                        "id": line.item_id,
                        "title": line.title,
                        "price": line.unit_price,
                        **({"image_url": line.image_url} if line.image_url else {}),
                    },
                    "quantity": {
                        "original": line.quantity,
                        "total": 0 if canceled else line.quantity,
                        "fulfilled": 0,
                    },
                    "totals": [
                        {"type": "subtotal", "amount": line.unit_price * line.quantity},
                        {"type": "total", "amount": line.unit_price * line.quantity},
                    ],
                    "status": "removed" if canceled else "processing",
                }
                for line in order.lines
            ],
            "fulfillment": {
                "expectations": [
                    {
                        "id": "exp_1",
                        "line_items": [{"id": line.id, "quantity": line.quantity} for line in order.lines],
                        "method_type": "shipping",
                        "destination": {k: v for k, v in order.destination.items() if k != "id"},
                        "description": order.shipping_option.get("description", ""),
                        "fulfillable_on": "now",
                    }
                ],
                "events": [],
            },
            "totals": [
                {"type": "subtotal", "display_text": "Subtotal", "amount": order.subtotal},
                {"type": "fulfillment", "display_text": "Shipping", "amount": order.shipping},
                {"type": "total", "display_text": "Total", "amount": order.total},
            ],
        }
        if canceled and order.canceled_at is not None:
            occurred = iso(order.canceled_at)
            body["adjustments"] = [
                {
                    "id": "adj_cancel",
                    "type": "cancellation",
                    "occurred_at": occurred,
                    "status": "completed",
                    "line_items": [{"id": line.id, "quantity": -line.quantity} for line in order.lines],
                    "description": "Order canceled at the buyer's request",
                },
                *(
                    {
                        "id": refund.id,
                        "type": "refund",
                        "occurred_at": iso(refund.created_at),
                        "status": "completed",
                        "totals": [{"type": "total", "amount": -refund.amount}],
                        "description": "Refund of the order's charge",
                    }
                    for refund in self.ledger.refunds_for(order.id)
                ),
            ]
        return body


def _checkout_status(session: CheckoutSession, has_shipping: bool) -> str:
    if session.status == "completed":
        return "completed"
    if session.status == "canceled":
        return "canceled"
    return "ready_for_complete" if has_shipping and session.lines else "incomplete"


def _links(endpoint: str) -> list[JsonObject]:
    return [
        {"type": "terms_of_service", "url": f"{endpoint}/policies/terms"},
        {"type": "privacy_policy", "url": f"{endpoint}/policies/privacy"},
        {"type": "refund_policy", "url": f"{endpoint}/policies/refunds"},
        {"type": "shipping_policy", "url": f"{endpoint}/policies/shipping"},
    ]


def _info(code: str, content: str, path: str) -> JsonObject:
    return {"type": "info", "code": code, "path": path, "content": content}


def _currency(context: ContextIn | None, hint: str | None = None) -> str:
    value = (context.currency if context and context.currency else None) or hint or DEFAULT_CURRENCY
    currency = value.strip().upper()
    if currency not in SUPPORTED_CURRENCIES:
        raise MerchantError(
            422,
            "currency_unsupported",
            f"prices are offered in {', '.join(SUPPORTED_CURRENCIES)}, not {currency}",
            path="$.context.currency",
        )
    return currency


def _payment_token(payment: PaymentIn | None) -> str:
    instruments = payment.instruments if payment else []
    if not instruments:
        raise MerchantError(
            422, "payment_required", "completing a checkout needs a payment instrument", path="$.payment"
        )
    chosen = next((i for i in instruments if i.selected), instruments[0])
    if chosen.handler_id is not None and chosen.handler_id != PAYMENT_HANDLER_ID:
        raise MerchantError(
            422,
            "payment_handler_unsupported",
            f"payment handler {chosen.handler_id} is not offered; use {PAYMENT_HANDLER_ID}",
            path="$.payment.instruments[0].handler_id",
        )
    token = chosen.credential.token if chosen.credential else None
    if not token or not token.startswith(PAYMENT_TOKEN_PREFIX):
        raise MerchantError(
            422,
            "payment_invalid",
            f"the instrument needs a token credential starting with {PAYMENT_TOKEN_PREFIX}",
            path="$.payment.instruments[0].credential",
        )
    return token


def _offset_from_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    if not cursor.isdigit():
        raise MerchantError(400, "invalid_request", "unknown pagination cursor", path="$.pagination.cursor")
    return int(cursor)


def _optional_str(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def _optional_int(value: object, path: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MerchantError(400, "invalid_request", "price filters are minor-unit integers", path=path)
    return value
