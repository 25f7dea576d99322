"""What a plan needs from a merchant, in the domain's words.

These are the ports; `commerce/ucp.py` is the adapter that speaks UCP REST, one wire codec per
protocol version behind it, so nothing here names a version. A fake for tests lives in `tests/fakes/`
behind the same protocols.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from cartpilot.kernel.money import Money


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


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
    category: str = Field(description="The most specific category, the one a search filters by")
    categoryPath: tuple[str, ...] = Field(
        default=(),
        description="Every level of every category path the merchant gives, broadest first; "
        "a brand's restricted categories are matched against all of them",
    )
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
    """One way to deliver a fulfillment group; merchants need not promise a delivery window."""

    id: str
    title: str
    carrier: str | None = None
    price: Money
    earliestDelivery: date | None = None
    latestDelivery: date | None = None

    def arrives_by(self, deadline: date) -> bool:
        """Only a promised window can meet a deadline: an option without one never claims to."""
        return self.latestDelivery is not None and self.latestDelivery <= deadline


class SessionLine(_Model):
    itemId: str
    title: str
    quantity: int
    unitPrice: Money


class Quote(_Model):
    """What a pricing checkout session confirmed: the merchant's own prices and options.

    UCP reveals fulfillment options only inside a checkout once a destination is set
    (fulfillment.md), and a catalog or product feed may lag the checkout's prices, so a plan's
    prices and shipping come from a session opened for the purpose and canceled after reading.
    """

    sessionId: str
    currency: str
    lines: list[SessionLine]
    options: list[ShippingOption]
    tax: Money | None = Field(
        default=None,
        description="Tax the session charges for the lines at this destination; None: it named none",
    )

    def unit_price(self, item_id: str) -> Money | None:
        return next((line.unitPrice for line in self.lines if line.itemId == item_id), None)


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


class ReturnFiled(_Model):
    """A return the merchant accepted for a shipped order: its id, and the order as it now stands."""

    returnId: str
    order: Order


class Buyer(_Model):
    """Who pays; the merchant needs a contact, never more than it must."""

    fullName: str
    email: str | None = None
    phone: str | None = None


class PaymentHandler(_Model):
    """A payment handler the merchant advertises: who can fund it, and with what instruments."""

    name: str = Field(description="Reverse-domain handler name, e.g. com.cartpilot.sandbox_tokenizer")
    id: str = Field(description="The merchant's id for this handler instance")
    instrumentTypes: tuple[str, ...] = ()
    config: dict[str, Any] = Field(default_factory=dict)


class MerchantProfile(_Model):
    """What discovery and negotiation settled with one merchant: version, endpoint, capabilities."""

    merchantUrl: str
    version: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="The negotiated UCP version")
    endpoint: str = Field(description="The REST endpoint of the shopping service")
    capabilities: tuple[str, ...] = ()
    paymentHandlers: tuple[PaymentHandler, ...] = ()

    def offers(self, capability: str) -> bool:
        return capability in self.capabilities


class PaymentCredential(_Model):
    """An instrument's credential for one handler: a token, never the saved payment method's id."""

    handler: PaymentHandler
    instrumentType: str = "card"
    token: SecretStr
    expiresAt: str | None = None
    display: dict[str, str] = Field(default_factory=dict, description="Brand and last digits, for people")


class Catalog(Protocol):
    def search(self, query: SearchQuery) -> list[Product]: ...

    def lookup(self, item_ids: list[str], currency: str) -> list[ProductVariant]: ...


class Fulfillment(Protocol):
    def quote(self, lines: list[CartLine], recipient: Recipient, currency: str) -> Quote:
        """Prices and options for these lines to this recipient, from a pricing session that charges nothing."""
        ...

    def select(
        self, session_id: str, recipient: Recipient, option: ShippingOption, idempotency_key: str
    ) -> CheckoutSession:
        """Sets the destination, reads the merchant's groups, and chooses the planned option.

        The option is matched by id, else by the same title and price (ids are the merchant's and may
        differ between sessions); none matching is a refusal, never another option.
        """
        ...


class Checkout(Protocol):
    def create(
        self, lines: list[CartLine], buyer: Buyer, currency: str, idempotency_key: str
    ) -> CheckoutSession: ...

    def add_items(self, session_id: str, lines: list[CartLine], idempotency_key: str) -> CheckoutSession: ...

    def get(self, session_id: str) -> CheckoutSession: ...

    def cancel(self, session_id: str, idempotency_key: str) -> CheckoutSession: ...


class Payments(Protocol):
    def complete(self, session_id: str, credential: PaymentCredential, idempotency_key: str) -> Order:
        """Completes the checkout with the credential: the one call that charges."""
        ...


class Orders(Protocol):
    def get(self, order_id: str, checkout_id: str | None = None) -> Order:
        """The order as the merchant holds it; where the protocol version has no order route
        (2026-01-11), read from the completed checkout ``checkout_id``."""
        ...

    def cancel(self, order_id: str, idempotency_key: str) -> Order:
        """Cancels the order and refunds its charge; `UndoUnsupported` where the merchant offers no way."""
        ...

    def file_return(self, order_id: str, idempotency_key: str) -> ReturnFiled:
        """Files a return of the whole shipped order (refunded once the merchant receives the goods);
        `UndoUnsupported` where the merchant offers no returns."""
        ...


class CredentialProvider(Protocol):
    """Turns a shopper's saved payment method into a credential one handler accepts."""

    def can_fund(self, handler: PaymentHandler) -> bool: ...

    def credential(
        self, handler: PaymentHandler, payment_method_id: str, idempotency_key: str
    ) -> PaymentCredential:
        """The same key gives the same credential, so a retried completion sends the same body."""
        ...


class Merchant(Protocol):
    """Everything one merchant offers, port by port."""

    def profile(self) -> MerchantProfile:
        """Discovery and negotiation (cached); a merchant with no version in common is refused."""
        ...

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
