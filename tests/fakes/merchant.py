"""In-memory stand-ins behind the same ports as the real adapters, for unit tests.

The fake keeps the sandbox merchant's rules (tests/contract/test_merchant.py runs both through the
same suite): unknown ids are ``MerchantRejected`` 404 ``not_found``; a completed or canceled session
takes no more changes (422 ``checkout_completed`` / ``checkout_canceled``); payment needs a chosen
shipping option; an idempotency key is scoped to its operation, replays its first answer (refusals
included), and with another body is an ``IdempotencyKeyReused``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, NamedTuple, TypeVar

from pydantic import SecretStr

from cartpilot.commerce.errors import (
    IdempotencyKeyReused,
    MerchantEscalation,
    MerchantRejected,
    UndoUnsupported,
)
from cartpilot.commerce.ports import (
    Buyer,
    CartLine,
    CheckoutSession,
    MerchantProfile,
    Order,
    PaymentCredential,
    PaymentHandler,
    Product,
    ProductVariant,
    Quote,
    Recipient,
    ReturnFiled,
    SearchQuery,
    SessionLine,
    ShippingOption,
)
from cartpilot.kernel.money import Money, total_of

TODAY = date(2026, 11, 25)


def cny(amount: str) -> Money:
    """Yuan in major units, exactly: ``cny("699.00")`` is 69900 fen."""
    return Money.from_decimal(amount, "CNY")


def usd(amount: str) -> Money:
    """Dollars in major units, exactly: ``usd("3.00")`` is 300 cents."""
    return Money.from_decimal(amount, "USD")


def _variant(vid: str, pid: str, title: str, price: str, category: str, *, size: str | None = None,
             color: str | None = None, stock: int = 10) -> ProductVariant:  # fmt: skip
    return ProductVariant(
        id=vid,
        productId=pid,
        title=title,
        price=cny(price),
        size=size,
        color=color,
        stock=stock,
        category=category,
    )


def sample_products() -> list[Product]:
    shoes_a = [
        _variant(f"shoe-a-{size}", "shoe-a", "Swift Runner", "699.00", "running-shoes", size=str(size),
                 color="black", stock=0 if size == 44 else 5)
        for size in range(39, 46)
    ]  # fmt: skip
    shoes_b = [
        _variant(
            f"shoe-b-{size}",
            "shoe-b",
            "Cloud Pacer",
            "899.00",
            "running-shoes",
            size=str(size),
            color="white",
        )
        for size in range(40, 46)
    ]
    return [
        Product(id="shoe-a", title="Swift Runner", category="running-shoes", variants=shoes_a),
        Product(id="shoe-b", title="Cloud Pacer", category="running-shoes", variants=shoes_b),
        Product(
            id="socks-1",
            title="Running Socks",
            category="socks",
            variants=[_variant("socks-1-m", "socks-1", "Running Socks", "59.00", "socks", size="M")],
        ),
        Product(
            id="gift-wrap",
            title="Gift Wrap",
            category="gift-wrap",
            variants=[
                _variant("gift-wrap-standard", "gift-wrap", "Gift Wrap", "20.00", "gift-wrap", stock=9999)
            ],
        ),
        Product(
            id="knife-1",
            title="Chef Knife",
            category="knives",
            variants=[_variant("knife-1-std", "knife-1", "Chef Knife", "399.00", "knives")],
        ),
    ]


T = TypeVar("T")


class MerchantCall(NamedTuple):
    """One call the shop received: which operation, on what (a session or an order id), with which key."""

    operation: str
    target: str | None
    key: str | None
    args: dict[str, Any]


# The calls that change something at the merchant (the others only read).
WRITE_OPERATIONS = frozenset(
    {
        "checkout.create",
        "checkout.add_items",
        "checkout.cancel",
        "fulfillment.select",
        "payments.complete",
        "orders.cancel",
    }
)

DECLINED_PAYMENT_METHOD = "pm_declined"


def not_found(kind: str, identifier: str) -> MerchantRejected:
    """How the UCP adapter surfaces the merchant's 404."""
    return MerchantRejected(f"{kind} {identifier} does not exist", status_code=404, code="not_found")


def refused(code: str, message: str, status_code: int = 422) -> MerchantRejected:
    return MerchantRejected(message, status_code=status_code, code=code)


SANDBOX_HANDLER = PaymentHandler(
    name="com.cartpilot.sandbox_tokenizer", id="sandbox_tokenizer", instrumentTypes=("card",)
)
FAKE_MERCHANT_URL = "https://fake-merchant.example"
# Order statuses (wire.order_status) once something has shipped: cancel no longer, return instead.
SHIPPED_STATUSES = frozenset({"partial", "fulfilled"})


@dataclass
class FakeShop:
    """The shop's state; the port classes below are its faces, as a real merchant has several APIs."""

    products: list[Product] = field(default_factory=sample_products)
    sessions: dict[str, CheckoutSession] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    charges: list[tuple[str, Money]] = field(default_factory=list)
    refunds: list[tuple[str, Money]] = field(default_factory=list)
    # (operation, idempotency key) -> (what the request was, its first answer: a result or a refusal)
    answers: dict[tuple[str, str], tuple[Any, Any]] = field(default_factory=dict)
    fail_complete_with: Exception | None = None
    ids: itertools.count = field(default_factory=itertools.count)
    calls: list[MerchantCall] = field(default_factory=list)
    faults: dict[str, list[Exception]] = field(default_factory=dict)
    options: list[ShippingOption] = field(default_factory=lambda: quote_options())
    offers_cancel: bool = True
    offers_return: bool = False
    returns: dict[str, str] = field(default_factory=dict)  # order id -> return id
    offers_catalog: bool = True  # False: a merchant whose products come from a feed
    escalate_with: str | None = None  # a continue URL: completion requires the buyer
    version: str = "2026-04-08"
    handlers: tuple[PaymentHandler, ...] = field(default_factory=lambda: (SANDBOX_HANDLER,))
    tokens: dict[str, str] = field(default_factory=dict)  # token -> payment method id it stands for
    # Tax the shop charges once a destination is set (checkout.md totals type "tax"); None: no tax.
    tax: Money | None = None

    def variants(self) -> dict[str, ProductVariant]:
        return {v.id: v for product in self.products for v in product.variants}

    # --- what a test sees of the calls, and the faults it can arrange ----------------------------

    def received(
        self, operation: str, target: str | None = None, key: str | None = None, **args: Any
    ) -> None:
        """Records a call, then raises the next fault arranged for its operation, if any."""
        self.calls.append(MerchantCall(operation, target, key, args))
        pending = self.faults.get(operation)
        if pending:
            raise pending.pop(0)

    def writes(self) -> list[MerchantCall]:
        """Every call that could change something at the merchant, in the order received."""
        return [call for call in self.calls if call.operation in WRITE_OPERATIONS]

    def fail_next(self, operation: str, error: Exception, times: int = 1) -> None:
        """The next ``times`` calls of ``operation`` (e.g. ``"orders.cancel"``) raise ``error``."""
        self.faults.setdefault(operation, []).extend([error] * times)

    # --- the merchant changing things behind the plan's back -------------------------------------

    def change_variant(self, item_id: str, **changes: Any) -> None:
        """Changes one variant in the catalog (price, stock, title ...); sessions keep their lines."""
        self.products = [
            product.model_copy(
                update={
                    "variants": [
                        v.model_copy(update=changes) if v.id == item_id else v for v in product.variants
                    ]
                }
            )
            for product in self.products
        ]

    def reprice(self, item_id: str, price: Money) -> None:
        self.change_variant(item_id, price=price)

    def change_session_total(self, session_id: str, total: Money) -> None:
        """The merchant now asks another total for an open session (a fee, a repriced line)."""
        self.sessions[session_id] = self.sessions[session_id].model_copy(update={"total": total})

    # --- the merchant's rules --------------------------------------------------------------------

    def once(self, operation: str, key: str, request: Any, work: Callable[[], T]) -> T:
        """Idempotency as the sandbox keeps it: a key belongs to one operation; the same request
        with it replays the first answer (a refusal too), another request with it is a conflict."""
        stored = self.answers.get((operation, key))
        if stored is not None:
            first_request, answer = stored
            if first_request != request:
                raise IdempotencyKeyReused(
                    f"{operation}: this Idempotency-Key was used with a different request"
                )
            if isinstance(answer, MerchantRejected):
                raise answer
            return answer  # type: ignore[no-any-return]
        try:
            result = work()
        except MerchantRejected as refusal:
            self.answers[(operation, key)] = (request, refusal)
            raise
        self.answers[(operation, key)] = (request, result)
        return result

    def session(self, session_id: str) -> CheckoutSession:
        if session_id not in self.sessions:
            raise not_found("checkout session", session_id)
        return self.sessions[session_id]

    def open_session(self, session_id: str) -> CheckoutSession:
        session = self.session(session_id)
        if session.status == "completed":
            raise refused(
                "checkout_completed", f"checkout {session_id} is already completed as order {session.orderId}"
            )
        if session.status == "canceled":
            raise refused("checkout_canceled", f"checkout {session_id} is canceled")
        return session

    def order(self, order_id: str) -> Order:
        if order_id not in self.orders:
            raise not_found("order", order_id)
        return self.orders[order_id]

    def purchasable(self, item_id: str, quantity: int, currency: str) -> ProductVariant:
        variant = self.variants().get(item_id)
        if variant is None:
            raise refused("item_unavailable", f"{item_id} is not a purchasable item")
        if variant.stock < quantity:
            detail = "is out of stock" if variant.stock == 0 else f"has only {variant.stock} left"
            raise refused("out_of_stock", f"{item_id} {detail}")
        if variant.price.currency != currency:
            raise refused("item_unavailable", f"{item_id} is not sold in {currency}")
        return variant

    def session_lines(self, lines: list[CartLine], currency: str = "CNY") -> list[SessionLine]:
        found = [(line, self.purchasable(line.itemId, line.quantity, currency)) for line in lines]
        return [
            SessionLine(
                itemId=line.itemId, title=variant.title, quantity=line.quantity, unitPrice=variant.price
            )
            for line, variant in found
        ]


def _items_total(lines: list[SessionLine], currency: str) -> Money:
    return total_of([line.unitPrice.times(line.quantity) for line in lines], currency)


class FakeCatalog:
    def __init__(self, shop: FakeShop) -> None:
        self.shop = shop

    def search(self, query: SearchQuery) -> list[Product]:
        self.shop.received("catalog.search", text=query.text)
        first_word = query.text.lower().split()[0]
        return [
            product
            for product in self.shop.products
            if (query.category is None or product.category == query.category)
            and first_word in f"{product.title} {product.category}".lower().replace("-", " ")
        ]

    def lookup(self, item_ids: list[str], currency: str) -> list[ProductVariant]:
        """The variants asked for, in order; an unknown id, or one not sold in ``currency``, is left out."""
        self.shop.received("catalog.lookup", itemIds=list(item_ids), currency=currency)
        variants = self.shop.variants()
        return [
            variants[item_id]
            for item_id in item_ids
            if item_id in variants and variants[item_id].price.currency == currency
        ]


def quote_options() -> list[ShippingOption]:
    return [
        ShippingOption(id="standard", title="Standard", price=cny("0.00"),
                       earliestDelivery=TODAY + timedelta(days=3), latestDelivery=TODAY + timedelta(days=6)),
        ShippingOption(id="expedited", title="Expedited", price=cny("45.00"),
                       earliestDelivery=TODAY + timedelta(days=1), latestDelivery=TODAY + timedelta(days=2)),
    ]  # fmt: skip


class FakeFulfillment:
    def __init__(self, shop: FakeShop) -> None:
        self.shop = shop

    def quote(self, lines: list[CartLine], recipient: Recipient, currency: str) -> Quote:
        """As a pricing session: the merchant's current prices for the lines, and its options."""
        self.shop.received("fulfillment.quote", city=recipient.address.city)
        session_lines = self.shop.session_lines(lines, currency)
        return Quote(
            sessionId=f"cs-quote-{next(self.shop.ids)}", currency=currency, lines=session_lines,
            options=self.shop.options, tax=self.shop.tax,
        )  # fmt: skip

    def select(
        self, session_id: str, recipient: Recipient, option: ShippingOption, idempotency_key: str
    ) -> CheckoutSession:
        shop = self.shop
        planned = option
        shop.received(
            "fulfillment.select", session_id, idempotency_key, recipient=recipient, optionId=planned.id
        )

        def work() -> CheckoutSession:
            session = shop.open_session(session_id)
            offered = shop.options
            chosen = next((o for o in offered if o.id == planned.id), None) or next(
                (o for o in offered if o.title == planned.title and o.price == planned.price), None
            )
            if chosen is None:
                raise refused(
                    "fulfillment_option_unavailable",
                    f"shipping option {planned.id} is not offered for this destination",
                )
            updated = session.model_copy(
                update={
                    "selectedShippingOptionId": chosen.id,
                    # As the sandbox (and UCP): with a destination and an option chosen it can be paid.
                    "status": "ready_for_complete",
                    "total": _items_total(session.lines, session.currency)
                    + chosen.price
                    + (shop.tax or Money.zero(session.currency)),
                    "shippingOptions": [chosen],
                }
            )
            shop.sessions[session_id] = updated
            return updated

        return shop.once("fulfillment.select", idempotency_key, (session_id, recipient, planned.id), work)


class FakeCheckout:
    def __init__(self, shop: FakeShop) -> None:
        self.shop = shop

    def create(
        self, lines: list[CartLine], buyer: Buyer, currency: str, idempotency_key: str
    ) -> CheckoutSession:
        shop = self.shop
        shop.received(
            "checkout.create", None, idempotency_key, lines=list(lines), buyer=buyer, currency=currency
        )

        def work() -> CheckoutSession:
            session_lines = shop.session_lines(lines, currency)
            session = CheckoutSession(
                id=f"cs-{next(shop.ids)}", status="incomplete", currency=currency, lines=session_lines,
                total=_items_total(session_lines, currency),
            )  # fmt: skip
            shop.sessions[session.id] = session
            return session

        return shop.once("checkout.create", idempotency_key, (list(lines), buyer, currency), work)

    def add_items(self, session_id: str, lines: list[CartLine], idempotency_key: str) -> CheckoutSession:
        shop = self.shop
        shop.received("checkout.add_items", session_id, idempotency_key, lines=list(lines))

        def work() -> CheckoutSession:
            session = shop.open_session(session_id)
            all_lines = session.lines + shop.session_lines(lines, session.currency)
            updated = session.model_copy(
                update={"lines": all_lines, "total": _items_total(all_lines, session.currency)}
            )
            shop.sessions[session_id] = updated
            return updated

        shop.session(session_id)  # the adapter reads the session first: an unknown one is not found
        return shop.once("checkout.add_items", idempotency_key, (session_id, list(lines)), work)

    def get(self, session_id: str) -> CheckoutSession:
        self.shop.received("checkout.get", session_id)
        return self.shop.session(session_id)

    def cancel(self, session_id: str, idempotency_key: str) -> CheckoutSession:
        shop = self.shop
        shop.received("checkout.cancel", session_id, idempotency_key)

        def work() -> CheckoutSession:
            session = shop.session(session_id)
            if session.status == "completed":
                raise refused(
                    "checkout_completed",
                    f"checkout {session_id} became order {session.orderId}; cancel the order instead",
                )
            updated = session.model_copy(update={"status": "canceled"})
            shop.sessions[session_id] = updated
            return updated

        return shop.once("checkout.cancel", idempotency_key, session_id, work)


class FakePayments:
    def __init__(self, shop: FakeShop) -> None:
        self.shop = shop

    def complete(self, session_id: str, credential: PaymentCredential, idempotency_key: str) -> Order:
        shop = self.shop
        token = credential.token.get_secret_value()
        shop.received("payments.complete", session_id, idempotency_key, token=token)
        request = (session_id, token)
        if ("payments.complete", idempotency_key) not in shop.answers and shop.fail_complete_with is not None:
            raise shop.fail_complete_with

        def work() -> Order:
            session = shop.open_session(session_id)
            if session.selectedShippingOptionId is None:
                raise refused(
                    "missing",
                    "set a shipping destination and choose a shipping option before completing",
                )
            for line in session.lines:
                shop.purchasable(line.itemId, line.quantity, session.currency)
            if shop.escalate_with is not None:
                raise MerchantEscalation("the merchant needs the buyer to finish", shop.escalate_with)
            payment_method_id = shop.tokens.get(token)
            if payment_method_id is None:
                raise refused("payment_failed", "the credential is not a token this merchant issued")
            if payment_method_id == DECLINED_PAYMENT_METHOD:
                raise refused("payment_failed", "payment declined", status_code=402)
            order = Order(id=f"ord-{next(shop.ids)}", checkoutId=session_id, status="confirmed",
                          total=session.total, lines=session.lines)  # fmt: skip
            shop.orders[order.id] = order
            shop.charges.append((order.id, order.total))
            shop.sessions[session_id] = session.model_copy(
                update={"status": "completed", "orderId": order.id}
            )
            return order

        return shop.once("payments.complete", idempotency_key, request, work)


class FakeOrders:
    def __init__(self, shop: FakeShop) -> None:
        self.shop = shop

    def get(self, order_id: str, checkout_id: str | None = None) -> Order:
        self.shop.received("orders.get", order_id)
        return self.shop.order(order_id)

    def cancel(self, order_id: str, idempotency_key: str) -> Order:
        shop = self.shop
        if not shop.offers_cancel:
            raise UndoUnsupported("the merchant offers no way to cancel an order")
        shop.received("orders.cancel", order_id, idempotency_key)

        def work() -> Order:
            order = shop.order(order_id)
            if order.status in SHIPPED_STATUSES:
                raise refused("order_fulfilled", f"order {order_id} has shipped; return it instead", 409)
            if order.status != "canceled":
                shop.refunds.append((order_id, order.total))
            canceled = order.model_copy(update={"status": "canceled"})
            shop.orders[order_id] = canceled
            return canceled

        return shop.once("orders.cancel", idempotency_key, order_id, work)

    def file_return(self, order_id: str, idempotency_key: str) -> ReturnFiled:
        shop = self.shop
        if not shop.offers_return:
            raise UndoUnsupported("the merchant offers no returns")
        shop.received("orders.return", order_id, idempotency_key)

        def work() -> ReturnFiled:
            order = shop.order(order_id)
            if order.status not in SHIPPED_STATUSES:
                raise refused("order_not_fulfilled", f"order {order_id} has not shipped; cancel it", 409)
            return_id = shop.returns.setdefault(order_id, f"ret-{next(shop.ids)}")
            return ReturnFiled(returnId=return_id, order=order)

        return shop.once("orders.return", idempotency_key, order_id, work)


class FakeCredentials:
    """The CredentialProvider port over the fake shop's tokenizer: one token per key, as a PSP keeps."""

    def __init__(self, shop: FakeShop) -> None:
        self.shop = shop
        self._by_key: dict[str, str] = {}

    def can_fund(self, handler: PaymentHandler) -> bool:
        return handler.name == SANDBOX_HANDLER.name

    def credential(
        self, handler: PaymentHandler, payment_method_id: str, idempotency_key: str
    ) -> PaymentCredential:
        if not self.can_fund(handler):
            raise refused("payment_handler_unsupported", f"cannot fund {handler.name}")
        token = self._by_key.get(idempotency_key)
        if token is None:
            token = self._by_key[idempotency_key] = f"tok-{next(self.shop.ids)}"
            self.shop.tokens[token] = payment_method_id
        return PaymentCredential(handler=handler, token=SecretStr(token), display={"brand": "visa"})


@dataclass
class FakeMerchant:
    """The Merchant port: one shop, five faces."""

    shop: FakeShop = field(default_factory=FakeShop)

    def profile(self) -> MerchantProfile:
        capabilities = ["dev.ucp.shopping.checkout", "dev.ucp.shopping.fulfillment", "dev.ucp.shopping.order"]
        if self.shop.offers_catalog:
            capabilities += ["dev.ucp.shopping.catalog.lookup", "dev.ucp.shopping.catalog.search"]
        if self.shop.offers_cancel:
            capabilities.append("com.cartpilot.order_cancel")
        if self.shop.offers_return:
            capabilities.append("com.cartpilot.order_return")
        return MerchantProfile(
            merchantUrl=FAKE_MERCHANT_URL, version=self.shop.version, endpoint=FAKE_MERCHANT_URL,
            capabilities=tuple(capabilities), paymentHandlers=self.shop.handlers,
        )  # fmt: skip

    def __post_init__(self) -> None:
        self.catalog = FakeCatalog(self.shop)
        self.fulfillment = FakeFulfillment(self.shop)
        self.checkout = FakeCheckout(self.shop)
        self.payments = FakePayments(self.shop)
        self.orders = FakeOrders(self.shop)
        self.credentials = FakeCredentials(self.shop)
