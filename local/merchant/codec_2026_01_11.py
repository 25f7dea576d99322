"""UCP 2026-01-11 on the wire: capability lists, a ``payment`` object, ``payment_data`` at completion.

- Discovery (overview.md "Business Profile"): ``services`` keyed by name with a ``rest`` binding,
  ``capabilities`` an array of named entries, payment handlers under a top-level ``payment``.
- A checkout always carries ``payment`` with its ``handlers`` (checkout.json requires it); a create
  names its ``currency`` and its ``payment``; completion sends ``payment_data`` (one instrument)
  and optional ``risk_signals`` (openapi.json ``complete_checkout``).
- Orders have no currency; line items are processing, partial or fulfilled.
- Errors use the version's "standard UCP error structure" (checkout-rest.md "Error Responses"):
  ``{"status": "requires_escalation", "messages": [...]}`` with a standard HTTP status. Its
  severities have no ``unrecoverable``: a dead end needs the buyer, so it is ``requires_buyer_input``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cartpilot_local.merchant.agent import BusinessCapability
from cartpilot_local.merchant.codec_base import (
    RenderContext,
    WireCodec,
    fulfilled_quantity,
    line_status,
    parse_body,
)
from cartpilot_local.merchant.handlers import PaymentHandler
from cartpilot_local.merchant.ledger import OrderRecord, Refund, iso
from cartpilot_local.merchant.payloads import (
    CheckoutIn,
    CheckoutRequest,
    PaymentDataIn,
    PaymentRequest,
    line_requests,
    method_requests,
    payment_request,
)
from cartpilot_local.merchant.protocol import (
    CHECKOUT,
    FULFILLMENT,
    ORDER,
    ORDER_CANCEL,
    ORDER_EXTENSIONS,
    ORDER_RETURN,
    SHOPPING_SERVICE,
    V2026_01_11,
    VENDOR_ORIGIN,
    BusinessRefusal,
    JsonObject,
    Message,
    TransportError,
)
from cartpilot_local.merchant.returns import return_adjustments
from cartpilot_local.merchant.sessions import CheckoutView

_SITE = "https://ucp.dev"
_SPECS = {
    CHECKOUT: ("checkout", "shopping/checkout.json"),
    FULFILLMENT: ("fulfillment", "shopping/fulfillment.json"),
    ORDER: ("order", "shopping/order.json"),
}
# overview.md "Error Handling" shows version_unsupported with `message`; message_error.json requires
# `content`. Negotiation errors carry both.
_NEGOTIATION = frozenset({"version_unsupported", "capabilities_incompatible"})


class Codec20260111(WireCodec):
    version = V2026_01_11
    decline_code = "payment_declined"  # message_error.json lists payment_declined

    def business_capabilities(self, *, catalog: bool) -> dict[str, BusinessCapability]:
        # 2026-01-11 has no catalog capability: the no-catalog mode is the only mode.
        extends = {FULFILLMENT: (CHECKOUT,), ORDER_CANCEL: (ORDER,), ORDER_RETURN: (ORDER,)}
        return {
            name: BusinessCapability(name, self.version, extends.get(name, ()))
            for name in (CHECKOUT, FULFILLMENT, ORDER, ORDER_CANCEL, ORDER_RETURN)
        }

    def discovery(
        self, base_url: str, capabilities: Mapping[str, BusinessCapability], handlers: Sequence[PaymentHandler],
        signing_keys: Sequence[JsonObject],
    ) -> JsonObject:  # fmt: skip
        endpoint = base_url.rstrip("/")
        declared = []
        for name, capability in capabilities.items():
            entry: JsonObject = {"name": name, "version": capability.version}
            if name in ORDER_EXTENSIONS:
                slug, route = ORDER_EXTENSIONS[name]
                entry |= {
                    "spec": f"{VENDOR_ORIGIN}/specification/{slug}",
                    "schema": f"{VENDOR_ORIGIN}/schemas/{slug}.json",
                    "config": {"endpoint": f"{endpoint}{route}", "method": "POST"},
                }
            else:
                spec, schema = _SPECS[name]
                entry |= {"spec": f"{_SITE}/specification/{spec}", "schema": f"{_SITE}/schemas/{schema}"}
            if capability.extends:
                entry["extends"] = capability.extends[0]
            declared.append(entry)
        return {
            "ucp": {
                "version": self.version,
                "services": {
                    SHOPPING_SERVICE: {
                        "version": self.version,
                        "spec": f"{_SITE}/specification/overview",
                        "rest": {"schema": f"{_SITE}/services/shopping/openapi.json", "endpoint": endpoint},
                    }
                },
                "capabilities": declared,
            },
            "payment": {"handlers": self.payment_handlers(handlers, base_url)},
            "signing_keys": list(signing_keys),
        }

    @staticmethod
    def payment_handlers(handlers: Sequence[PaymentHandler], base_url: str) -> list[JsonObject]:
        return [
            {
                "id": handler.id,
                "name": handler.name,
                "version": handler.version,
                "spec": handler.spec,
                "config_schema": handler.config_schema,
                "instrument_schemas": list(handler.instrument_schemas),
                "config": handler.config(base_url),
            }
            for handler in handlers
        ]

    # --- requests ------------------------------------------------------------------------------

    def checkout_request(self, body: Any, operation: str, session_id: str | None = None) -> CheckoutRequest:
        parsed = parse_body(CheckoutIn, body)
        # checkout.json (2026-01-11): line_items, currency and payment are required in create and
        # update requests, and an update names the session it replaces.
        missing = [name for name in ("line_items", "currency", "payment") if getattr(parsed, name) is None]
        if operation == "update" and parsed.id is None:
            missing.append("id")
        if missing:
            raise TransportError(400, "invalid_request", f"{', '.join(missing)} required (checkout.json)")
        if operation == "update" and parsed.id != session_id:
            raise TransportError(
                400, "invalid_request", f"the body's id {parsed.id} is not checkout {session_id}"
            )
        assert parsed.line_items is not None
        return CheckoutRequest(
            lines=line_requests(parsed.line_items),
            buyer=parsed.buyer,
            currency=parsed.currency,
            currency_required=True,
            methods=None if parsed.fulfillment is None else method_requests(parsed.fulfillment),
        )

    def payment_request(self, body: Any) -> PaymentRequest | None:
        parsed = parse_body(PaymentDataIn, body)
        return None if parsed.payment_data is None else payment_request(parsed.payment_data)

    # --- responses -----------------------------------------------------------------------------

    def meta(self, active: Mapping[str, str], root: str) -> JsonObject:
        return {
            "version": self.version,
            "capabilities": [{"name": name, "version": v} for name, v in self.relevant(active, root).items()],
        }

    def severity(self, message: Message) -> str:
        return "requires_buyer_input" if message.severity == "unrecoverable" else super().severity(message)

    def checkout(self, view: CheckoutView, ctx: RenderContext) -> JsonObject:
        payment: JsonObject = {"handlers": self.payment_handlers(ctx.handlers, ctx.base_url)}
        paid = view.session.paid_with
        if paid is not None:
            payment["selected_instrument_id"] = paid.id
            payment["instruments"] = [
                {
                    "id": paid.id,
                    "handler_id": paid.handler_id,
                    "type": "card",
                    "brand": paid.brand,
                    "last_digits": paid.last_digits,
                }
            ]
        return {"ucp": self.meta(ctx.active, CHECKOUT), **self.checkout_common(view, ctx), "payment": payment}

    def order(self, order: OrderRecord, refunds: Sequence[Refund], ctx: RenderContext) -> JsonObject:
        canceled = order.status == "canceled"
        body: JsonObject = {
            "ucp": self.meta(ctx.active, ORDER),
            "id": order.id,
            "checkout_id": order.checkout_id,
            "permalink_url": f"{ctx.endpoint}/orders/{order.id}",
            "line_items": [
                {
                    "id": line.id,
                    "item": {
                        "id": line.item_id,
                        "title": line.title,
                        "price": line.unit_price,
                        **({"image_url": line.image_url} if line.image_url else {}),
                    },
                    "quantity": {"total": 0 if canceled else line.quantity, "fulfilled": shipped},
                    "totals": [
                        {"type": "subtotal", "amount": line.unit_price * line.quantity},
                        {"type": "total", "amount": line.unit_price * line.quantity},
                    ],
                    # A canceled line (total 0) shipped nothing: processing, not "0 of 0 fulfilled".
                    "status": "processing" if canceled else line_status(line.quantity, shipped),
                }
                for line in order.lines
                for shipped in [0 if canceled else fulfilled_quantity(order, line.id, line.quantity)]
            ],
            "fulfillment": {
                "expectations": self.expectations(order),
                "events": [dict(event) for event in order.fulfillment_events],
            },
            "totals": self.totals(order.subtotal, order.shipping),
        }
        if canceled and order.canceled_at is not None:
            body["adjustments"] = [
                {
                    "id": "adj_cancel",
                    "type": "cancellation",
                    "occurred_at": iso(order.canceled_at),
                    "status": "completed",
                    "line_items": [{"id": line.id, "quantity": line.quantity} for line in order.lines],
                    "description": "Order canceled at the buyer's request",
                },
                *(
                    {
                        "id": refund.id,
                        "type": "refund",
                        "occurred_at": iso(refund.created_at),
                        "status": "completed",
                        "amount": refund.amount,
                        "description": "Refund of the order's charge",
                    }
                    for refund in refunds
                ),
            ]
        elif order.filed_return is not None:
            body["adjustments"] = return_adjustments(order, refunds, signed=False)
        return body

    def _error_structure(self, messages: list[Message], continue_url: str | None = None) -> JsonObject:
        rendered = [self.message(m) for m in messages]
        for entry in rendered:
            if entry["code"] in _NEGOTIATION:
                entry["message"] = entry["content"]
        body: JsonObject = {"status": "requires_escalation", "messages": rendered}
        if continue_url is not None:
            body["continue_url"] = continue_url
        return body

    def no_resource(self, refusal: BusinessRefusal, ctx: RenderContext) -> tuple[int, JsonObject]:
        status = 404 if refusal.not_found else 400
        return status, self._error_structure(refusal.messages, f"{ctx.endpoint}/")

    def capabilities_incompatible(self, content: str, ctx: RenderContext) -> tuple[int, JsonObject]:
        message = Message.error("capabilities_incompatible", content, severity="requires_buyer_input")
        return 200, self._error_structure([message], f"{ctx.endpoint}/")

    def transport_error(self, error: TransportError) -> tuple[int, JsonObject]:
        severity = "requires_buyer_input" if error.code in _NEGOTIATION else "recoverable"
        message = Message.error(error.code, error.content, severity=severity)
        return error.status, self._error_structure([message], error.continue_url)
