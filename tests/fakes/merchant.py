"""In-memory stand-ins behind the same ports as the real adapters, for unit tests."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date, timedelta

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
    return Money.from_decimal(amount, "CNY")


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

    def variants(self) -> dict[str, ProductVariant]:
        return {v.id: v for product in self.products for v in product.variants}

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
        first_word = query.text.lower().split()[0]
        return [
            product
            for product in self.shop.products
            if (query.category is None or product.category == query.category)
            and first_word in f"{product.title} {product.category}".lower().replace("-", " ")
        ]

    def lookup(self, item_ids: list[str], currency: str) -> list[ProductVariant]:
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
        return quote_options()

    def select(
        self, session_id: str, recipient: Recipient, option_id: str, idempotency_key: str
    ) -> CheckoutSession:
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
        return self.shop.sessions[session_id]

    def cancel(self, session_id: str, idempotency_key: str) -> CheckoutSession:
        updated = self.shop.sessions[session_id].model_copy(update={"status": "canceled"})
        self.shop.sessions[session_id] = updated
        return updated


class FakePayments:
    def __init__(self, shop: FakeShop) -> None:
        self.shop = shop

    def complete(self, session_id: str, payment_method_id: str, idempotency_key: str) -> Order:
        shop = self.shop
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
        return self.shop.orders[order_id]

    def cancel(self, order_id: str, idempotency_key: str) -> Order:
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
