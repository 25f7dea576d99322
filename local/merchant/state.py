"""The sandbox merchant's state and business rules: checkout sessions, payment and orders.

Everything lives in memory behind one lock, because requests arrive from several threads (the
uvicorn loop, test clients). An operation either raises a `BusinessRefusal` having changed nothing
the refusal does not describe, or changes the state and returns what a response shows; the codecs
render it in the version the process speaks.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cartpilot_local.merchant.catalog import Catalog, CatalogProduct, Variant, build_catalog, product_image
from cartpilot_local.merchant.faults import FaultPlan
from cartpilot_local.merchant.fulfillment import apply_fulfillment
from cartpilot_local.merchant.handlers import PaymentHandler
from cartpilot_local.merchant.idempotency import IdempotencyStore
from cartpilot_local.merchant.jwk import SigningKey
from cartpilot_local.merchant.ledger import Ledger, OrderLine, OrderRecord, Refund, new_id
from cartpilot_local.merchant.payloads import CheckoutRequest, LineRequest, PaymentRequest
from cartpilot_local.merchant.protocol import (
    DEFAULT_CURRENCY,
    SUPPORTED_CURRENCIES,
    BusinessRefusal,
    JsonObject,
    Message,
    not_found,
)
from cartpilot_local.merchant.psp import IssuedToken, TokenRefused, TokenVault
from cartpilot_local.merchant.returns import (
    ReturnRecord,
    file_return,
    receive_return,
    refuse_cancel_if_shipped,
)
from cartpilot_local.merchant.sessions import (
    CheckoutSession,
    CheckoutStatus,
    CheckoutView,
    PaidInstrument,
    SessionLine,
)
from cartpilot_local.merchant.shipping import ShippingQuote, destination_from, quote_shipping

Clock = Callable[[], datetime]

ESCALATION_CODE = "buyer_verification_required"
ESCALATION_CONTENT = (
    "The card issuer asks the buyer to confirm this purchase; finish it on the merchant's checkout page."
)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Caller:
    """Who a response is for: the merchant's base URL as they reached it, and what was negotiated."""

    base_url: str
    fulfillment: bool = True  # dev.ucp.shopping.fulfillment is active
    decline_code: str = "payment_failed"  # the version's word for a declined payment

    @property
    def endpoint(self) -> str:
        return self.base_url.rstrip("/")


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
        self.psp = TokenVault()
        self.signing_key = SigningKey.generate("sandbox-merchant")
        self.escalations: list[Message] = []

    def reset(self) -> None:
        """Forgets sessions, orders, charges, refunds, tokens, keys, faults and escalations."""
        with self.lock:
            self.catalog = self._shelf_catalog
            self.sessions.clear()
            self.ledger = Ledger()
            self.idempotency.clear()
            self.faults.clear()
            self.psp.clear()
            self.escalations.clear()

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

    def publish_image(self, category: str, url: str) -> int:
        """Test-only: every product of ``category`` names ``url`` as its image (undone by reset)."""
        with self.lock:
            products = tuple(
                dataclasses.replace(p, image_url=url) if p.category == category else p
                for p in self.catalog.products
            )
            self.catalog = Catalog(products=products)
            return sum(1 for p in products if p.category == category)

    def escalate(self, times: int, code: str = ESCALATION_CODE, content: str = ESCALATION_CONTENT) -> int:
        """The next ``times`` completions hand the buyer to the merchant's page instead of charging."""
        with self.lock:
            self.escalations.extend([Message.error(code, content, severity="requires_buyer_input")] * times)
            return len(self.escalations)

    def ledger_json(self) -> JsonObject:
        with self.lock:
            return self.ledger.to_json()

    def issue_token(
        self, payment_method_id: str, checkout_id: str | None = None, idempotency_key: str | None = None
    ) -> IssuedToken:
        return self.psp.issue(payment_method_id, self.clock(), checkout_id, idempotency_key)

    # --- checkout sessions -------------------------------------------------------------------

    def create_checkout(self, request: CheckoutRequest, caller: Caller) -> CheckoutView:
        currency = self._currency(request)
        with self.lock:
            session = CheckoutSession(id=new_id("chk"), currency=currency, created_at=self.clock())
            # checkout.json: line ids are the business's to assign on create (`create: omit`).
            fresh = [dataclasses.replace(line, id=None) for line in request.lines or ()]
            session.lines = self._resolve_lines(fresh, currency, caller, session)
            session.buyer = request.buyer
            notes: list[Message] = []
            if request.methods is not None:
                notes = apply_fulfillment(session, request.methods, self._offered)
            self.sessions[session.id] = session
            return self._view(session, caller, notes)

    def get_checkout(self, session_id: str, caller: Caller) -> CheckoutView:
        with self.lock:
            return self._view(self._session(session_id), caller)

    def update_checkout(self, session_id: str, request: CheckoutRequest, caller: Caller) -> CheckoutView:
        """checkout.md "Update Checkout": a full replacement; fields left out keep their value."""
        with self.lock:
            current = self._session(session_id)
            self._ensure_open(current)
            notes: list[Message] = []
            if request.currency and request.currency.strip().upper() != current.currency:
                change = f"this checkout is in {current.currency}; a session keeps the currency it was created with"
                if request.currency_required:
                    raise BusinessRefusal(Message.error("invalid", change, path="$.currency"), session_id)
                notes.append(Message.info("currency_kept", change, path="$.context.currency"))
            session = copy.deepcopy(current)
            if request.lines is not None:
                session.lines = self._resolve_lines(list(request.lines), session.currency, caller, session)
            if request.buyer is not None:
                session.buyer = request.buyer
            if request.methods is not None:
                notes += apply_fulfillment(session, request.methods, self._offered)
            elif session.selected_option_id not in {q.id for q in self._offered(session)}:
                session.selected_option_id = None  # new lines can change what is on offer
            self.sessions[session.id] = session
            return self._view(session, caller, notes)

    def complete_checkout(
        self, session_id: str, payment: PaymentRequest, caller: Caller, handlers: Sequence[PaymentHandler]
    ) -> CheckoutView:
        with self.lock:
            session = self._session(session_id)
            self._ensure_open(session)
            ready = self._view(session, caller)
            if ready.status != "ready_for_complete":
                return ready  # its messages say what is missing
            now = self.clock()
            handler = self._handler(payment, handlers, session.id)
            token = self._token(payment, session.id, now)
            if self.escalations:
                # Like a soft decline asking for 3-D Secure (overview.md "Scenario B"): nothing is
                # charged, the token stays unused, and the buyer finishes on the merchant's page.
                session.escalation = self.escalations.pop(0)
                return self._view(session, caller)
            self.psp.redeem(token.token, now, session.id)
            if token.declines:
                raise BusinessRefusal(
                    Message.error(
                        caller.decline_code, "The card was declined by the issuer.", path="$.payment"
                    ),
                    session.id,
                )
            chosen = ready.chosen
            assert chosen is not None  # ready_for_complete means an option is chosen
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
                shipping=chosen.amount,
                shipping_quote=chosen,
                destination=dict(session.destination.postal if session.destination else {}),
                created_at=now,
            )
            self.ledger.place_order(order, token.payment_method_id)
            session.state = "completed"
            session.order_id = order.id
            session.paid_with = PaidInstrument(
                id=payment.instrument_id or "instrument_1",
                handler_id=handler.id,
                brand=token.brand,
                last_digits=token.last_digits,
            )
            return self._view(session, caller)

    def cancel_checkout(self, session_id: str, caller: Caller) -> CheckoutView:
        """checkout.md "Cancel Checkout": a completed or canceled session cannot be canceled."""
        with self.lock:
            session = self._session(session_id)
            self._ensure_open(session)
            session.state = "canceled"
            return self._view(session, caller)

    def view_with(self, session_id: str, caller: Caller, messages: Sequence[Message]) -> CheckoutView:
        """A session as it stands, with a refusal's messages: how a business outcome is answered."""
        with self.lock:
            return self._view(self._session(session_id), caller, list(messages))

    # --- orders ------------------------------------------------------------------------------

    def get_order(self, order_id: str) -> tuple[OrderRecord, list[Refund]]:
        with self.lock:
            order = self._order(order_id)
            return order, self.ledger.refunds_for(order.id)

    def cancel_order(self, order_id: str) -> tuple[OrderRecord, list[Refund]]:
        with self.lock:
            order = self._order(order_id)
            refuse_cancel_if_shipped(order)
            self.ledger.cancel_order(order, self.clock())
            return order, self.ledger.refunds_for(order.id)

    def file_return(self, order_id: str) -> tuple[OrderRecord, list[Refund]]:
        """com.cartpilot.order_return: files the shipped order's return (once)."""
        with self.lock:
            order = self._order(order_id)
            file_return(self.ledger, order, self.clock())
            return order, self.ledger.refunds_for(order.id)

    def receive_return(self, return_id: str) -> tuple[ReturnRecord, OrderRecord]:
        """Test-only: the returned goods arrive; the charge is refunded once. KeyError: no such return."""
        with self.lock:
            filed = self.ledger.returns[return_id]
            receive_return(self.ledger, filed, self.clock())
            return filed, self.ledger.orders[filed.order_id]

    # --- rules -------------------------------------------------------------------------------

    def _currency(self, request: CheckoutRequest) -> str:
        asked = (request.currency or "").strip().upper()
        if asked in SUPPORTED_CURRENCIES:
            return asked
        if request.currency_required:
            raise BusinessRefusal(
                Message.error(
                    "currency_unsupported",
                    f"prices are offered in {', '.join(SUPPORTED_CURRENCIES)}, not {asked or 'no currency'}",
                    path="$.currency",
                    severity="unrecoverable",
                )
            )
        # checkout.json: "merchants determine currency"; a context hint we cannot serve is overruled.
        return DEFAULT_CURRENCY

    def _handler(
        self, payment: PaymentRequest, handlers: Sequence[PaymentHandler], session_id: str
    ) -> PaymentHandler:
        # overview.md "Security Best Practices": validate handler_id against the advertised set.
        handler = next((h for h in handlers if h.id == payment.handler_id), None)
        if handler is None:
            offered = ", ".join(h.id for h in handlers)
            raise BusinessRefusal(
                Message.error(
                    "invalid", f"payment handler {payment.handler_id} is not offered; choose one of {offered}",
                    path="$.payment.instruments[0].handler_id",
                ),
                session_id,
            )  # fmt: skip
        if not handler.chargeable:
            raise BusinessRefusal(
                Message.error(
                    "payment_failed",
                    f"{handler.name} payments cannot be processed by this merchant right now",
                    path="$.payment.instruments[0].handler_id",
                ),
                session_id,
            )
        return handler

    def _token(self, payment: PaymentRequest, session_id: str, now: datetime) -> IssuedToken:
        if not payment.token:
            raise BusinessRefusal(
                Message.error(
                    "invalid",
                    "the instrument needs a token credential",
                    path="$.payment.instruments[0].credential",
                ),
                session_id,
            )
        try:
            return self.psp.check(payment.token, now, session_id)
        except TokenRefused as refused:
            raise BusinessRefusal(
                Message.error("payment_failed", str(refused), path="$.payment.instruments[0].credential"),
                session_id,
            ) from None

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
        if session.state == "completed":
            raise BusinessRefusal(
                Message.error(
                    "checkout_completed",
                    f"checkout {session.id} is completed as order {session.order_id} and cannot change",
                    severity="unrecoverable",
                )
            )
        if session.state == "canceled":
            raise BusinessRefusal(
                Message.error(
                    "checkout_canceled", f"checkout {session.id} is canceled", severity="unrecoverable"
                )
            )

    def _stock_problem(self, item_id: str, quantity: int, path: str) -> Message | None:
        found = self.catalog.purchasable(item_id)
        if found is None:
            return Message.error("item_unavailable", f"{item_id} is no longer sold", path=path)
        variant = found[1]
        if variant.stock < quantity:
            detail = "is out of stock" if variant.stock == 0 else f"has only {variant.stock} left"
            return Message.error("out_of_stock", f"{variant.id} {detail}", path=path)
        return None

    def _resolve_lines(
        self, requested: list[LineRequest], currency: str, caller: Caller, session: CheckoutSession
    ) -> list[SessionLine]:
        """Prices each line; an item that cannot be priced refuses the whole request."""
        known = {line.id for line in session.lines}
        taken = {line.id for line in requested if line.id in known}
        lines = []
        for index, line in enumerate(requested):
            product, variant = self._priceable(line.item_id, currency, f"$.line_items[{index}]", session)
            line_id = line.id if line.id in known else session.new_line_id(taken)
            taken.add(line_id)
            price = variant.price_in(currency)
            assert price is not None
            lines.append(
                SessionLine(
                    id=line_id,
                    item_id=variant.id,
                    title=product.variant_title(variant),
                    unit_price=price,
                    quantity=line.quantity,
                    image_url=product_image(caller.base_url, product),
                    restricted=product.restricted,
                )
            )
        return lines

    def _priceable(
        self, item_id: str, currency: str, path: str, session: CheckoutSession
    ) -> tuple[CatalogProduct, Variant]:
        found = self.catalog.purchasable(item_id)
        reason = None
        if found is None:
            reason = f"{item_id} is not an item we sell"
        elif found[1].price_in(currency) is None:
            reason = f"{found[1].id} is not sold in {currency}"
        if reason is None and found is not None:
            return found
        message = Message.error("item_unavailable", reason or item_id, path=path)
        if session.id in self.sessions:
            raise BusinessRefusal(message, session.id)  # the session stays as it was
        # checkout-rest.md: when nothing can be created, no checkout resource is returned.
        raise BusinessRefusal(dataclasses.replace(message, severity="unrecoverable"))

    def _offered(self, session: CheckoutSession) -> list[ShippingQuote]:
        destination = session.destination
        if session.method_id is None or destination is None or not session.lines:
            return []
        try:
            return quote_shipping(
                destination_from(destination.postal, path="$.fulfillment.methods[0].destinations"),
                subtotal=session.subtotal,
                currency=session.currency,
                now=self.clock(),
                restricted_items=any(line.restricted for line in session.lines),
            )
        except BusinessRefusal:
            return []

    def _view(self, session: CheckoutSession, caller: Caller, notes: Sequence[Message] = ()) -> CheckoutView:
        order = self.ledger.orders.get(session.order_id) if session.order_id else None
        if order is not None:
            # A completed session shows what was bought, not today's quote.
            return CheckoutView(copy.deepcopy(session), "completed", tuple(notes), (order.shipping_quote,),
                                order.shipping_quote, order, None)  # fmt: skip
        if session.state == "canceled":
            return CheckoutView(copy.deepcopy(session), "canceled", tuple(notes), (), None, None, None)
        options = self._offered(session)
        chosen = next((q for q in options if q.id == session.selected_option_id), None)
        assessment = self._assess(session, caller, options, chosen)
        status: CheckoutStatus = "ready_for_complete"
        if any(m.needs_buyer for m in assessment):
            status = "requires_escalation"
        elif any(m.type == "error" for m in assessment):
            status = "incomplete"
        return CheckoutView(
            session=copy.deepcopy(session),
            status=status,
            messages=(*assessment, *notes),
            options=tuple(options),
            chosen=chosen,
            order=None,
            # checkout.md "Continue URL": SHOULD for every non-terminal status, MUST for escalation.
            continue_url=f"{caller.endpoint}/checkout/{session.id}",
        )

    def _assess(
        self,
        session: CheckoutSession,
        caller: Caller,
        options: list[ShippingQuote],
        chosen: ShippingQuote | None,
    ) -> list[Message]:
        """What the session still needs, as messages; their severities decide the status."""
        found: list[Message] = []
        if session.escalation is not None:
            found.append(session.escalation)
        for index, line in enumerate(session.lines):
            problem = self._stock_problem(line.item_id, line.quantity, f"$.line_items[{index}]")
            if problem is not None:
                found.append(problem)
            if line.restricted:
                found.append(
                    Message.warning(
                        "age_restricted",
                        f"{line.title} is age-restricted: the recipient shows ID on delivery.",
                        path=f"$.line_items[{index}]",
                    )
                )
        base = "$.fulfillment.methods[0]"
        if not caller.fulfillment:
            found.append(
                Message.error(
                    "fulfillment_required",
                    "These items ship; without the fulfillment extension the buyer chooses delivery on our site.",
                    severity="requires_buyer_input",
                )
            )
        elif session.method_id is None or not session.destinations:
            found.append(Message.error("missing", "Set a shipping destination.", path=f"{base}.destinations"))
        elif session.destination is None:
            found.append(
                Message.error(
                    "missing", "Choose one of the destinations.", path=f"{base}.selected_destination_id"
                )
            )
        elif not options:
            found.append(self._undeliverable(session))
        elif chosen is None:
            found.append(
                Message.error(
                    "missing", "Choose a shipping option.", path=f"{base}.groups[0].selected_option_id"
                )
            )
        elif chosen.amount == 0:
            found.append(Message.info("free_shipping", f"{chosen.rate.title} is free for this order."))
        return found

    def _undeliverable(self, session: CheckoutSession) -> Message:
        index = next(i for i, d in enumerate(session.destinations) if d.id == session.selected_destination_id)
        path = f"$.fulfillment.methods[0].destinations[{index}]"
        destination = session.destination
        assert destination is not None
        try:
            quote_shipping(
                destination_from(destination.postal, path=path),
                subtotal=session.subtotal,
                currency=session.currency,
                now=self.clock(),
                restricted_items=any(line.restricted for line in session.lines),
                path=path,
            )
        except BusinessRefusal as refusal:
            return refusal.message
        return Message.error("address_undeliverable", "we cannot deliver these items there", path=path)
