"""UCP vocabulary the sandbox speaks in both versions: names, versions, messages and refusals.

Wire shapes differ per version and live in the codecs (``cartpilot_local.merchant.codecs``); what is
here is the same in 2026-01-11 and 2026-04-08.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

JsonObject = dict[str, Any]

V2026_01_11 = "2026-01-11"
V2026_04_08 = "2026-04-08"
UCP_VERSIONS = (V2026_01_11, V2026_04_08)

SHOPPING_SERVICE = "dev.ucp.shopping"
CHECKOUT = "dev.ucp.shopping.checkout"
FULFILLMENT = "dev.ucp.shopping.fulfillment"
CATALOG_SEARCH = "dev.ucp.shopping.catalog.search"
CATALOG_LOOKUP = "dev.ucp.shopping.catalog.lookup"
ORDER = "dev.ucp.shopping.order"
# UCP has no order cancel; the sandbox offers one as a vendor extension of the order capability, so
# undo can be exercised end to end. Vendor names bind to the vendor's domain (overview.md "Spec URL
# Binding"), hence cartpilot.com in its spec and schema URLs.
ORDER_CANCEL = "com.cartpilot.order_cancel"
# Nor returns: a shipped order comes back through this one (cartpilot_local.merchant.returns).
ORDER_RETURN = "com.cartpilot.order_return"
VENDOR_ORIGIN = "https://cartpilot.com/ucp"
# The vendor extensions of the order capability: their spec/schema name and their route.
ORDER_EXTENSIONS = {
    ORDER_CANCEL: ("order_cancel", "/orders/{id}/cancel"),
    ORDER_RETURN: ("order_return", "/orders/{id}/return"),
}

SUPPORTED_CURRENCIES = ("CNY", "USD")
DEFAULT_CURRENCY = "CNY"

MessageType = Literal["error", "warning", "info"]
Severity = Literal["recoverable", "requires_buyer_input", "requires_buyer_review", "unrecoverable"]


@dataclass(frozen=True)
class Message:
    """A checkout, order or catalog message; codecs render it in their version's shape."""

    type: MessageType
    code: str
    content: str
    path: str | None = None
    severity: Severity | None = None  # errors only

    @classmethod
    def error(
        cls, code: str, content: str, *, path: str | None = None, severity: Severity = "recoverable"
    ) -> Message:
        return cls("error", code, content, path, severity)

    @classmethod
    def warning(cls, code: str, content: str, *, path: str | None = None) -> Message:
        return cls("warning", code, content, path)

    @classmethod
    def info(cls, code: str, content: str, *, path: str | None = None) -> Message:
        return cls("info", code, content, path)

    @property
    def needs_buyer(self) -> bool:
        """checkout.md: errors with ``requires_*`` severity make the status requires_escalation."""
        return self.type == "error" and (self.severity or "").startswith("requires_")


class TransportError(Exception):
    """A refusal before the business logic ran: negotiation, signature, authentication, bad input,
    idempotency conflicts and injected faults. overview.md "Error Handling": a transport error with
    an HTTP status, the body shaped by the version."""

    def __init__(
        self,
        status: int,
        code: str,
        content: str,
        *,
        headers: dict[str, str] | None = None,
        continue_url: str | None = None,
    ) -> None:
        super().__init__(content)
        self.status = status
        self.code = code
        self.content = content
        self.headers = headers or {}
        self.continue_url = continue_url


@dataclass
class BusinessRefusal(Exception):
    """The business logic ran and said no (checkout-rest.md "Business Outcomes").

    With ``session_id`` the checkout is returned with the message; without, no resource exists to
    show (unknown id, nothing could be created, a session past its end) and the version's
    no-resource answer is given.
    """

    message: Message
    session_id: str | None = None
    not_found: bool = False
    extra: list[Message] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.message.content)

    @property
    def messages(self) -> list[Message]:
        return [self.message, *self.extra]


def not_found(kind: str, identifier: str) -> BusinessRefusal:
    return BusinessRefusal(
        Message.error("not_found", f"{kind} {identifier} does not exist", severity="unrecoverable"),
        not_found=True,
    )
