"""What a plan needs from a merchant, in the domain's words.

These are the ports; `connectors/ucp.py` is the adapter that speaks UCP REST.
A fake for tests lives in `tests/` behind the same protocols.
"""

from __future__ import annotations

from datetime import date
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from cartpilot.kernel.money import Money


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Address(_Model):
    line1: str = Field(min_length=1, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    region: str | None = Field(default=None, max_length=100)
    postalCode: str | None = Field(default=None, max_length=20)
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")


class Recipient(_Model):
    name: str = Field(min_length=1, max_length=120)
    phone: str = Field(min_length=3, max_length=32)
    address: Address


class ProductVariant(_Model):
    """A purchasable item: the id the merchant's checkout takes."""

    id: str
    productId: str
    title: str
    price: Money
    size: str | None = None
    color: str | None = None
    stock: int = Field(ge=0)
    category: str
    imageUrl: str | None = None

    @property
    def in_stock(self) -> bool:
        return self.stock > 0


class Product(_Model):
    id: str
    title: str
    description: str = ""
    category: str
    variants: list[ProductVariant]


class SearchQuery(_Model):
    text: str
    currency: str
    category: str | None = None
    size: str | None = None
    color: str | None = None
    maxPrice: Money | None = None
    limit: int = Field(default=10, ge=1, le=50)


class CartLine(_Model):
    itemId: str
    quantity: int = Field(ge=1, le=99)


class ShippingOption(_Model):
    id: str
    title: str
    carrier: str | None = None
    price: Money
    earliestDelivery: date
    latestDelivery: date


class SessionLine(_Model):
    itemId: str
    title: str
    quantity: int
    unitPrice: Money


class CheckoutSession(_Model):
    id: str
    status: str
    currency: str
    lines: list[SessionLine]
    total: Money
    shippingOptions: list[ShippingOption] = []
    selectedShippingOptionId: str | None = None
    orderId: str | None = None


class Order(_Model):
    id: str
    checkoutId: str
    status: str
    total: Money
    lines: list[SessionLine]
    permalinkUrl: str | None = None


class Buyer(_Model):
    """Who pays; the merchant needs a contact, never more than it must."""

    fullName: str
    email: str | None = None
    phone: str | None = None


class Catalog(Protocol):
    def search(self, query: SearchQuery) -> list[Product]: ...

    def lookup(self, item_ids: list[str], currency: str) -> list[ProductVariant]: ...


class Fulfillment(Protocol):
    def quote(self, lines: list[CartLine], destination: Address, currency: str) -> list[ShippingOption]:
        """Read-only: the options and delivery estimates for these lines to this address."""
        ...

    def select(
        self, session_id: str, recipient: Recipient, option_id: str, idempotency_key: str
    ) -> CheckoutSession: ...


class Checkout(Protocol):
    def create(
        self, lines: list[CartLine], buyer: Buyer, currency: str, idempotency_key: str
    ) -> CheckoutSession: ...

    def add_items(self, session_id: str, lines: list[CartLine], idempotency_key: str) -> CheckoutSession: ...

    def get(self, session_id: str) -> CheckoutSession: ...

    def cancel(self, session_id: str, idempotency_key: str) -> CheckoutSession: ...


class Payments(Protocol):
    def complete(self, session_id: str, payment_method_id: str, idempotency_key: str) -> Order:
        """Completes the checkout with the payment method: the one call that charges."""
        ...


class Orders(Protocol):
    def get(self, order_id: str) -> Order: ...

    def cancel(self, order_id: str, idempotency_key: str) -> Order:
        """Cancels the order and refunds its charge."""
        ...


class Merchant(Protocol):
    """Everything one merchant offers, port by port."""

    @property
    def catalog(self) -> Catalog: ...

    @property
    def fulfillment(self) -> Fulfillment: ...

    @property
    def checkout(self) -> Checkout: ...

    @property
    def payments(self) -> Payments: ...

    @property
    def orders(self) -> Orders: ...
