"""In-memory stand-ins behind the same ports as the real adapters, for unit tests."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, NamedTuple

from cartpilot.commerce.errors import MerchantRejected
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


@dataclass
class FakeShop:
    """The shop's state; the port classes below are its faces, as a real merchant has several APIs."""

    products: list[Product] = field(default_factory=sample_products)
    sessions: dict[str, CheckoutSession] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    charges: list[tuple[str, Money]] = field(default_factory=list)
    refunds: list[tuple[str, Money]] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)
    fail_complete_with: Exception | None = None
    ids: itertools.count = field(default_factory=itertools.count)
    calls: list[MerchantCall] = field(default_factory=list)
    faults: dict[str, list[Exception]] = field(default_factory=dict)

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

    def session_lines(self, lines: list[CartLine]) -> list[SessionLine]:
        found = self.variants()
        return [
            SessionLine(itemId=line.itemId, title=found[line.itemId].title, quantity=line.quantity,
                        unitPrice=found[line.itemId].price)
            for line in lines
        ]  # fmt: skip


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
        self.shop.received("catalog.lookup", itemIds=list(item_ids), currency=currency)
        variants = self.shop.variants()
        return [variants[item_id] for item_id in item_ids if item_id in variants]


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

    def quote(self, lines: list[CartLine], destination: Address, currency: str) -> list[ShippingOption]:
        self.shop.received("fulfillment.quote", city=destination.city)
        return quote_options()

    def select(
        self, session_id: str, recipient: Recipient, option_id: str, idempotency_key: str
    ) -> CheckoutSession:
        self.shop.received(
            "fulfillment.select", session_id, idempotency_key, recipient=recipient, optionId=option_id
        )
        session = self.shop.sessions[session_id]
        option = next(o for o in quote_options() if o.id == option_id)
        updated = session.model_copy(
            update={
                "selectedShippingOptionId": option_id,
                "total": _items_total(session.lines, session.currency) + option.price,
                "shippingOptions": [option],
            }
        )
        self.shop.sessions[session_id] = updated
        return updated


class FakeCheckout:
    def __init__(self, shop: FakeShop) -> None:
        self.shop = shop

    def create(
        self, lines: list[CartLine], buyer: Buyer, currency: str, idempotency_key: str
    ) -> CheckoutSession:
        self.shop.received(
            "checkout.create", None, idempotency_key, lines=list(lines), buyer=buyer, currency=currency
        )
        if idempotency_key in self.shop.keys:
            return self.shop.sessions[self.shop.keys[idempotency_key]]
        session_lines = self.shop.session_lines(lines)
        session = CheckoutSession(
            id=f"cs-{next(self.shop.ids)}", status="incomplete", currency=currency, lines=session_lines,
            total=_items_total(session_lines, currency),
        )  # fmt: skip
        self.shop.sessions[session.id] = session
        self.shop.keys[idempotency_key] = session.id
        return session

    def add_items(self, session_id: str, lines: list[CartLine], idempotency_key: str) -> CheckoutSession:
        self.shop.received("checkout.add_items", session_id, idempotency_key, lines=list(lines))
        session = self.shop.sessions[session_id]
        if idempotency_key in self.shop.keys:
            return session
        all_lines = session.lines + self.shop.session_lines(lines)
        updated = session.model_copy(
            update={"lines": all_lines, "total": _items_total(all_lines, session.currency)}
        )
        self.shop.sessions[session_id] = updated
        self.shop.keys[idempotency_key] = session_id
        return updated

    def get(self, session_id: str) -> CheckoutSession:
        self.shop.received("checkout.get", session_id)
        return self.shop.sessions[session_id]

    def cancel(self, session_id: str, idempotency_key: str) -> CheckoutSession:
        self.shop.received("checkout.cancel", session_id, idempotency_key)
        updated = self.shop.sessions[session_id].model_copy(update={"status": "canceled"})
        self.shop.sessions[session_id] = updated
        return updated


class FakePayments:
    def __init__(self, shop: FakeShop) -> None:
        self.shop = shop

    def complete(self, session_id: str, payment_method_id: str, idempotency_key: str) -> Order:
        shop = self.shop
        shop.received("payments.complete", session_id, idempotency_key, paymentMethodId=payment_method_id)
        if idempotency_key in shop.keys:
            return shop.orders[shop.keys[idempotency_key]]
        if shop.fail_complete_with is not None:
            raise shop.fail_complete_with
        if payment_method_id == "pm_declined":
            raise MerchantRejected("payment declined", status_code=402, code="payment_declined")
        session = shop.sessions[session_id]
        order = Order(id=f"ord-{next(shop.ids)}", checkoutId=session_id, status="confirmed", total=session.total,
                      lines=session.lines)  # fmt: skip
        shop.orders[order.id] = order
        shop.charges.append((order.id, order.total))
        shop.sessions[session_id] = session.model_copy(update={"status": "completed", "orderId": order.id})
        shop.keys[idempotency_key] = order.id
        return order


class FakeOrders:
    def __init__(self, shop: FakeShop) -> None:
        self.shop = shop

    def get(self, order_id: str) -> Order:
        self.shop.received("orders.get", order_id)
        return self.shop.orders[order_id]

    def cancel(self, order_id: str, idempotency_key: str) -> Order:
        self.shop.received("orders.cancel", order_id, idempotency_key)
        order = self.shop.orders[order_id]
        if order.status != "canceled":
            self.shop.refunds.append((order_id, order.total))
        canceled = order.model_copy(update={"status": "canceled"})
        self.shop.orders[order_id] = canceled
        return canceled


@dataclass
class FakeMerchant:
    """The Merchant port: one shop, five faces."""

    shop: FakeShop = field(default_factory=FakeShop)

    def __post_init__(self) -> None:
        self.catalog = FakeCatalog(self.shop)
        self.fulfillment = FakeFulfillment(self.shop)
        self.checkout = FakeCheckout(self.shop)
        self.payments = FakePayments(self.shop)
        self.orders = FakeOrders(self.shop)
