"""UCP 2026-04-08 on the wire: registries keyed by name, ``ucp.status``, ``error_response``.

- Discovery (overview.md "Business Profile"): ``services`` and ``capabilities`` are objects of
  arrays, ``payment_handlers`` sits inside ``ucp``, ``signing_keys`` beside it.
- Business outcomes are HTTP 200: the checkout with messages, or ``error_response`` when no resource
  exists (checkout-rest.md "Business Outcomes", order-rest.md "Not Found").
- Transport errors are ``{"code", "content"}`` with the status of overview.md "Error Codes".
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
    CompletionIn,
    PaymentRequest,
    line_requests,
    method_requests,
    payment_request,
)
from cartpilot_local.merchant.protocol import (
    CATALOG_LOOKUP,
    CATALOG_SEARCH,
    CHECKOUT,
    FULFILLMENT,
    ORDER,
    ORDER_CANCEL,
    ORDER_EXTENSIONS,
    ORDER_RETURN,
    SHOPPING_SERVICE,
    V2026_04_08,
    VENDOR_ORIGIN,
    BusinessRefusal,
    JsonObject,
    Message,
    TransportError,
)
from cartpilot_local.merchant.returns import return_adjustments
from cartpilot_local.merchant.sessions import CheckoutView
from cartpilot_local.merchant.storefront import CatalogAnswer

_SITE = f"https://ucp.dev/{V2026_04_08}"
_SPECS = {
    CHECKOUT: ("checkout", "shopping/checkout.json"),
    FULFILLMENT: ("fulfillment", "shopping/fulfillment.json"),
    ORDER: ("order", "shopping/order.json"),
    CATALOG_SEARCH: ("catalog/search", "shopping/catalog_search.json"),
    CATALOG_LOOKUP: ("catalog/lookup", "shopping/catalog_lookup.json"),
}
_FULFILLMENT_CONFIG = {
    "allows_multi_destination": {"shipping": False},
    "allows_method_combinations": [["shipping"]],
}


class Codec20260408(WireCodec):
    version = V2026_04_08
    decline_code = "payment_failed"  # checkout.md "Standard Errors"

    def business_capabilities(self, *, catalog: bool) -> dict[str, BusinessCapability]:
        names = [CHECKOUT, FULFILLMENT, ORDER, ORDER_CANCEL, ORDER_RETURN] + (
            [CATALOG_SEARCH, CATALOG_LOOKUP] if catalog else []
        )
        extends = {FULFILLMENT: (CHECKOUT,), ORDER_CANCEL: (ORDER,), ORDER_RETURN: (ORDER,)}
        return {name: BusinessCapability(name, self.version, extends.get(name, ())) for name in names}

    def discovery(
        self, base_url: str, capabilities: Mapping[str, BusinessCapability], handlers: Sequence[PaymentHandler],
        signing_keys: Sequence[JsonObject],
    ) -> JsonObject:  # fmt: skip
        endpoint = base_url.rstrip("/")
        declared: JsonObject = {}
        for name, capability in capabilities.items():
            entry: JsonObject = {"version": capability.version}
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
            if name == FULFILLMENT:
                entry["config"] = _FULFILLMENT_CONFIG
            declared[name] = [entry]
        return {
            "ucp": {
                "version": self.version,
                "services": {
                    SHOPPING_SERVICE: [
                        {
                            "version": self.version,
                            "spec": f"{_SITE}/specification/overview",
                            "transport": "rest",
                            "endpoint": endpoint,
                            "schema": f"{_SITE}/services/shopping/rest.openapi.json",
                        }
                    ]
                },
                "capabilities": declared,
                "payment_handlers": self.payment_handlers(handlers, base_url, discovery=True),
            },
            "signing_keys": list(signing_keys),
        }

    def payment_handlers(
        self, handlers: Sequence[PaymentHandler], base_url: str, *, discovery: bool = False
    ) -> JsonObject:
        rendered: JsonObject = {}
        for handler in handlers:
            entry: JsonObject = {"id": handler.id, "version": handler.version}
            if discovery:
                entry |= {"spec": handler.spec, "schema": handler.schema}
            entry |= {"available_instruments": list(handler.instruments), "config": handler.config(base_url)}
            rendered.setdefault(handler.name, []).append(entry)
        return rendered

    # --- requests ------------------------------------------------------------------------------

    def checkout_request(self, body: Any, operation: str, session_id: str | None = None) -> CheckoutRequest:
        parsed = parse_body(CheckoutIn, body)
        if parsed.line_items is None:
            # checkout.json: line_items is required on create and update.
            raise TransportError(400, "invalid_request", "line_items is required")
        return CheckoutRequest(
            lines=line_requests(parsed.line_items),
            buyer=parsed.buyer,
            currency=parsed.context.currency if parsed.context else None,
            currency_required=False,
            methods=None if parsed.fulfillment is None else method_requests(parsed.fulfillment),
        )

    def payment_request(self, body: Any) -> PaymentRequest | None:
        parsed = parse_body(CompletionIn, body)
        instruments = parsed.payment.instruments if parsed.payment else []
        if not instruments:
            return None
        return payment_request(next((i for i in instruments if i.selected), instruments[0]))

    # --- responses -----------------------------------------------------------------------------

    def meta(self, active: Mapping[str, str], root: str, *, status: str = "success") -> JsonObject:
        return {
            "version": self.version,
            "status": status,
            "capabilities": {name: [{"version": v}] for name, v in self.relevant(active, root).items()},
        }

    def checkout(self, view: CheckoutView, ctx: RenderContext) -> JsonObject:
        meta = self.meta(ctx.active, CHECKOUT)
        meta["payment_handlers"] = self.payment_handlers(ctx.handlers, ctx.base_url)
        body = {"ucp": meta, **self.checkout_common(view, ctx)}
        paid = view.session.paid_with
        if paid is not None:
            body["payment"] = {
                "instruments": [
                    {
                        "id": paid.id,
                        "handler_id": paid.handler_id,
                        "type": "card",
                        "selected": True,
                        "display": {"brand": paid.brand, "last_digits": paid.last_digits},
                    }
                ]
            }
        return body

    def order_confirmation(self, order: OrderRecord, ctx: RenderContext) -> JsonObject:
        return {**super().order_confirmation(order, ctx), "label": order.label}

    def order(self, order: OrderRecord, refunds: Sequence[Refund], ctx: RenderContext) -> JsonObject:
        canceled = order.status == "canceled"
        body: JsonObject = {
            "ucp": self.meta(ctx.active, ORDER),
            "id": order.id,
            "label": order.label,
            "checkout_id": order.checkout_id,
            "permalink_url": f"{ctx.endpoint}/orders/{order.id}",
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
                        "fulfilled": shipped,
                    },
                    "totals": [
                        {"type": "subtotal", "amount": line.unit_price * line.quantity},
                        {"type": "total", "amount": line.unit_price * line.quantity},
                    ],
                    # order.md "Status Derivation": total == 0 is "removed".
                    "status": "removed" if canceled else line_status(line.quantity, shipped),
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
            # order.md "Adjustments": signed, negative for reductions.
            body["adjustments"] = [
                {
                    "id": "adj_cancel",
                    "type": "cancellation",
                    "occurred_at": iso(order.canceled_at),
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
                    for refund in refunds
                ),
            ]
        elif order.filed_return is not None:
            body["adjustments"] = return_adjustments(order, refunds, signed=True)
        return body

    def catalog(self, answer: CatalogAnswer, ctx: RenderContext, capability: str) -> JsonObject:
        body: JsonObject = {"ucp": self.meta(ctx.active, capability), "products": answer.products}
        if answer.pagination is not None:
            body["pagination"] = answer.pagination
        if answer.messages:
            body["messages"] = [self.message(m) for m in answer.messages]
        return body

    def product(self, product: JsonObject, ctx: RenderContext) -> JsonObject:
        return {"ucp": self.meta(ctx.active, CATALOG_LOOKUP), "product": product}

    def no_resource(self, refusal: BusinessRefusal, ctx: RenderContext) -> tuple[int, JsonObject]:
        # checkout.md "Error Handling": ucp.status "error", messages, no resource; HTTP 200.
        body = {
            "ucp": {"version": self.version, "status": "error"},
            "messages": [self.message(m) for m in refusal.messages],
            "continue_url": f"{ctx.endpoint}/",
        }
        return 200, body

    def capabilities_incompatible(self, content: str, ctx: RenderContext) -> tuple[int, JsonObject]:
        message = Message.error("capabilities_incompatible", content, severity="unrecoverable")
        body = {
            "ucp": {"version": self.version, "status": "error", "capabilities": {}},
            "messages": [self.message(message)],
            "continue_url": f"{ctx.endpoint}/",
        }
        return 200, body

    def transport_error(self, error: TransportError) -> tuple[int, JsonObject]:
        body: JsonObject = {"code": error.code, "content": error.content}
        if error.continue_url is not None:
            body["continue_url"] = error.continue_url
        return error.status, body
