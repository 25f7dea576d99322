"""UCP 2026-04-08 vocabulary the sandbox speaks: capability names, metadata blocks and error bodies."""

from __future__ import annotations

from typing import Any

JsonObject = dict[str, Any]

UCP_VERSION = "2026-04-08"

SHOPPING_SERVICE = "dev.ucp.shopping"
CHECKOUT = "dev.ucp.shopping.checkout"
FULFILLMENT = "dev.ucp.shopping.fulfillment"
CATALOG_SEARCH = "dev.ucp.shopping.catalog.search"
CATALOG_LOOKUP = "dev.ucp.shopping.catalog.lookup"
ORDER = "dev.ucp.shopping.order"
# Our extensions. UCP reveals fulfillment options only inside a checkout session, and a
# planner must not create sessions, so quotes are a read-only extension of fulfillment.
SHIPPING_QUOTE = "com.cartpilot.shipping_quote"
# UCP has no order cancel; the sandbox offers one so undo can be exercised end to end.
ORDER_CANCEL = "com.cartpilot.order_cancel"

PAYMENT_HANDLER_NAME = "com.cartpilot.sandbox_token"
PAYMENT_HANDLER_ID = "sandbox_token"
# Payment method ids, not secrets: the sandbox charges any `pm_...` and declines this one.
PAYMENT_TOKEN_PREFIX = "pm_"  # noqa: S105
DECLINED_TOKEN = "pm_declined"  # noqa: S105

SUPPORTED_CURRENCIES = ("CNY", "USD")
DEFAULT_CURRENCY = "CNY"

SPEC_URL = "https://ucp.dev/specification/overview"
SCHEMA_BASE = "https://ucp.dev/schemas"

# Error codes the sandbox uses beyond UCP's examples; the client keys on the idempotency ones.
IDEMPOTENCY_CONFLICT = "idempotency_conflict"
IDEMPOTENCY_IN_FLIGHT = "idempotency_in_flight"


def ucp_meta(*capabilities: str, payment_handlers: bool = False) -> JsonObject:
    """The `ucp` block of a successful response, naming the capabilities in play."""
    meta: JsonObject = {
        "version": UCP_VERSION,
        "status": "success",
        "capabilities": {name: [{"version": UCP_VERSION}] for name in capabilities},
    }
    if payment_handlers:
        meta["payment_handlers"] = {
            PAYMENT_HANDLER_NAME: [
                {
                    "id": PAYMENT_HANDLER_ID,
                    "version": UCP_VERSION,
                    "available_instruments": [{"type": "card"}],
                }
            ]
        }
    return meta


def error_message(
    code: str, content: str, *, path: str | None = None, severity: str = "recoverable"
) -> JsonObject:
    message: JsonObject = {"type": "error", "code": code, "content": content, "severity": severity}
    if path is not None:
        message["path"] = path
    return message


def error_body(
    code: str, content: str, *, path: str | None = None, severity: str = "recoverable"
) -> JsonObject:
    """UCP's error_response: `ucp.status` is "error" and at least one message says why."""
    return {
        "ucp": {"version": UCP_VERSION, "status": "error"},
        "messages": [error_message(code, content, path=path, severity=severity)],
    }


class MerchantError(Exception):
    """A refusal with an HTTP status and a UCP error body; business refusals are replayable."""

    def __init__(
        self,
        status: int,
        code: str,
        content: str,
        *,
        path: str | None = None,
        severity: str = "recoverable",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(content)
        self.status = status
        self.code = code
        self.content = content
        self.path = path
        self.severity = severity
        self.headers = headers or {}

    def body(self) -> JsonObject:
        return error_body(self.code, self.content, path=self.path, severity=self.severity)


def not_found(kind: str, identifier: str) -> MerchantError:
    return MerchantError(404, "not_found", f"{kind} {identifier} does not exist", severity="unrecoverable")
