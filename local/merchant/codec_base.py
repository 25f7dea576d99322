"""What both versions' wire codecs share: the parts of a checkout and an order that look the same.

A codec turns the merchant's answers (views of sessions, orders, refusals) into one UCP version's
JSON, and that version's request bodies into version-free inputs. Each version subclasses
`WireCodec` (``codec_2026_04_08``, ``codec_2026_01_11``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from cartpilot_local.merchant.agent import BusinessCapability
from cartpilot_local.merchant.handlers import PaymentHandler
from cartpilot_local.merchant.ledger import OrderRecord, Refund, iso
from cartpilot_local.merchant.payloads import CheckoutRequest, PaymentRequest
from cartpilot_local.merchant.protocol import (
    CHECKOUT,
    FULFILLMENT,
    ORDER,
    ORDER_CANCEL,
    ORDER_RETURN,
    BusinessRefusal,
    JsonObject,
    Message,
    TransportError,
)
from cartpilot_local.merchant.sessions import GROUP_ID, METHOD_ID, CheckoutView
from cartpilot_local.merchant.shipping import ShippingQuote

_Model = TypeVar("_Model", bound=BaseModel)

# The fulfilment event that hands goods to the carrier: its line quantities are what was fulfilled
# (later events of the same shipment, in_transit or delivered, list the same goods again).
_FULFILLING_EVENT = "shipped"


def fulfilled_quantity(order: OrderRecord, line_id: str, total: int) -> int:
    """How much of line ``line_id`` has shipped: the sum of its quantities in the order's shipment
    events (order_line_item.json: "sum from fulfillment events"), never above the line's total."""
    shipped = sum(
        int(entry.get("quantity", 0))
        for event in order.fulfillment_events
        if event.get("type") == _FULFILLING_EVENT
        for entry in event.get("line_items", [])
        if entry.get("id") == line_id
    )
    return min(shipped, total)


def line_status(total: int, fulfilled: int) -> str:
    """order.md "Status Derivation" for a line that is still part of the order (total > 0)."""
    if fulfilled >= total:
        return "fulfilled"
    return "partial" if fulfilled > 0 else "processing"


@dataclass(frozen=True)
class RenderContext:
    """The request a response answers: how the merchant was reached and what was negotiated."""

    base_url: str
    active: Mapping[str, str]  # capability name -> negotiated version
    handlers: tuple[PaymentHandler, ...]

    @property
    def endpoint(self) -> str:
        return self.base_url.rstrip("/")


def parse_body(model: type[_Model], body: Any) -> _Model:
    """Reads a body with ``model``; says where and what is wrong, never echoing the input."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        raise TransportError(
            400, "invalid_request", f"{where or 'body'}: {first.get('msg', 'invalid')}"
        ) from None


class WireCodec:
    version: str
    decline_code: str = "payment_failed"

    # --- discovery -----------------------------------------------------------------------------

    def business_capabilities(self, *, catalog: bool) -> dict[str, BusinessCapability]:
        raise NotImplementedError

    def discovery(
        self, base_url: str, capabilities: Mapping[str, BusinessCapability], handlers: Sequence[PaymentHandler],
        signing_keys: Sequence[JsonObject],
    ) -> JsonObject:  # fmt: skip
        raise NotImplementedError

    # --- requests ------------------------------------------------------------------------------

    def checkout_request(self, body: Any, operation: str, session_id: str | None = None) -> CheckoutRequest:
        raise NotImplementedError

    def payment_request(self, body: Any) -> PaymentRequest | None:
        raise NotImplementedError

    # --- responses -----------------------------------------------------------------------------

    def checkout(self, view: CheckoutView, ctx: RenderContext) -> JsonObject:
        raise NotImplementedError

    def order(self, order: OrderRecord, refunds: Sequence[Refund], ctx: RenderContext) -> JsonObject:
        raise NotImplementedError

    def no_resource(self, refusal: BusinessRefusal, ctx: RenderContext) -> tuple[int, JsonObject]:
        raise NotImplementedError

    def transport_error(self, error: TransportError) -> tuple[int, JsonObject]:
        raise NotImplementedError

    def capabilities_incompatible(self, content: str, ctx: RenderContext) -> tuple[int, JsonObject]:
        raise NotImplementedError

    # --- shared parts --------------------------------------------------------------------------

    @staticmethod
    def relevant(active: Mapping[str, str], root: str) -> dict[str, str]:
        """overview.md "Response Capability Selection": the root and the extensions of it."""
        extensions = {CHECKOUT: (FULFILLMENT,), ORDER: (ORDER_CANCEL, ORDER_RETURN)}.get(root, ())
        return {name: version for name, version in active.items() if name == root or name in extensions}

    def message(self, message: Message) -> JsonObject:
        rendered: JsonObject = {"type": message.type, "code": message.code, "content": message.content}
        if message.path is not None:
            rendered["path"] = message.path
        if message.type == "error":
            rendered["severity"] = self.severity(message)
        return rendered

    def severity(self, message: Message) -> str:
        return message.severity or "recoverable"

    @staticmethod
    def totals(subtotal: int, shipping: int | None) -> list[JsonObject]:
        entries: list[JsonObject] = [{"type": "subtotal", "display_text": "Subtotal", "amount": subtotal}]
        if shipping is not None:
            entries.append({"type": "fulfillment", "display_text": "Shipping", "amount": shipping})
        entries.append({"type": "total", "display_text": "Total", "amount": subtotal + (shipping or 0)})
        return entries

    @staticmethod
    def links(endpoint: str) -> list[JsonObject]:
        return [
            {"type": "terms_of_service", "url": f"{endpoint}/policies/terms"},
            {"type": "privacy_policy", "url": f"{endpoint}/policies/privacy"},
            {"type": "refund_policy", "url": f"{endpoint}/policies/refunds"},
            {"type": "shipping_policy", "url": f"{endpoint}/policies/shipping"},
        ]

    @staticmethod
    def option(quote: ShippingQuote) -> JsonObject:
        option: JsonObject = {
            "id": quote.id,
            "title": quote.rate.title,
            "description": quote.description,
            "carrier": quote.rate.carrier,
            "totals": [{"type": "total", "display_text": quote.rate.title, "amount": quote.amount}],
        }
        if quote.earliest_time is not None and quote.latest_time is not None:
            option["earliest_fulfillment_time"] = quote.earliest_time
            option["latest_fulfillment_time"] = quote.latest_time
        return option

    def line_items(self, view: CheckoutView) -> list[JsonObject]:
        return [
            {
                "id": line.id,
                "item": {
                    "id": line.item_id,
                    "title": line.title,
                    "price": line.unit_price,
                    **({"image_url": line.image_url} if line.image_url else {}),
                },
                "quantity": line.quantity,
                "totals": [
                    {"type": "subtotal", "amount": line.subtotal},
                    {"type": "total", "amount": line.subtotal},
                ],
            }
            for line in view.session.lines
        ]

    def fulfillment(self, view: CheckoutView) -> JsonObject:
        """fulfillment.md: methods the platform asked for; groups and options once there is a destination."""
        session = view.session
        line_ids = view.line_ids
        rendered: JsonObject = {
            "available_methods": [{"type": "shipping", "line_item_ids": line_ids, "fulfillable_on": "now"}]
        }
        if session.method_id is None:
            return rendered
        method: JsonObject = {
            "id": METHOD_ID,
            "type": "shipping",
            "line_item_ids": line_ids,
            "destinations": [{"id": d.id, **d.postal} for d in session.destinations],
            "selected_destination_id": session.selected_destination_id,
        }
        if view.options:
            method["groups"] = [
                {
                    "id": GROUP_ID,
                    "line_item_ids": line_ids,
                    "options": [self.option(quote) for quote in view.options],
                    "selected_option_id": view.chosen.id if view.chosen else None,
                }
            ]
        rendered["methods"] = [method]
        return rendered

    def checkout_common(self, view: CheckoutView, ctx: RenderContext) -> JsonObject:
        session = view.session
        body: JsonObject = {
            "id": session.id,
            "status": view.status,
            "currency": session.currency,
            "line_items": self.line_items(view),
            "totals": self.totals(session.subtotal, view.shipping),
            "messages": [self.message(m) for m in view.messages],
            "links": self.links(ctx.endpoint),
            "expires_at": iso(session.expires_at),
        }
        if view.continue_url is not None:
            body["continue_url"] = view.continue_url
        if session.buyer:
            body["buyer"] = session.buyer
        if FULFILLMENT in ctx.active:
            body["fulfillment"] = self.fulfillment(view)
        if view.order is not None:
            body["order"] = self.order_confirmation(view.order, ctx)
        return body

    def order_confirmation(self, order: OrderRecord, ctx: RenderContext) -> JsonObject:
        return {"id": order.id, "permalink_url": f"{ctx.endpoint}/orders/{order.id}"}

    @staticmethod
    def expectations(order: OrderRecord) -> list[JsonObject]:
        return [
            {
                "id": "exp_1",
                "line_items": [{"id": line.id, "quantity": line.quantity} for line in order.lines],
                "method_type": "shipping",
                "destination": {k: v for k, v in order.destination.items() if k != "id"},
                "description": order.shipping_quote.description,
                "fulfillable_on": "now",
            }
        ]
