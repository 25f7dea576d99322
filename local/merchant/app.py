"""The sandbox merchant's HTTP face: UCP REST routes of one version, its PSP, pages and test admin.

Every UCP route goes through the same steps, in the order a real merchant's stack would take them:
injected faults (in front of everything, as a network or a proxy would be), credentials,
``UCP-Agent`` and the platform profile, the request signature (2026-04-08), the capability the
operation needs, ``Idempotency-Key`` on mutations, then the business logic. ``/.well-known/ucp``,
``/psp/*``, the HTML pages and ``/_sandbox/*`` need no ``UCP-Agent``.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from cartpilot_local.merchant.admission import Admission
from cartpilot_local.merchant.agent import AgentGate, ProfileCache, ProfileFetcher, http_profile_fetcher
from cartpilot_local.merchant.codec_2026_01_11 import Codec20260111
from cartpilot_local.merchant.codec_2026_04_08 import Codec20260408
from cartpilot_local.merchant.codec_base import RenderContext, WireCodec, parse_body
from cartpilot_local.merchant.conformance import NO_BODY, ConformanceRecorder
from cartpilot_local.merchant.faults import IMMEDIATE_ERRORS, Fault, FaultMode, FaultOrder, normalise_route
from cartpilot_local.merchant.handlers import ALL_PAYMENT_HANDLERS, advertised_handlers
from cartpilot_local.merchant.idempotency import ClaimKind, StoredResponse, request_fingerprint, valid_key
from cartpilot_local.merchant.ledger import OrderRecord
from cartpilot_local.merchant.pages import add_pages
from cartpilot_local.merchant.payloads import LookupIn, ProductIn, SearchIn, TokenRequestIn
from cartpilot_local.merchant.protocol import (
    CATALOG_LOOKUP,
    CATALOG_SEARCH,
    CHECKOUT,
    FULFILLMENT,
    ORDER,
    ORDER_CANCEL,
    ORDER_RETURN,
    UCP_VERSIONS,
    V2026_01_11,
    V2026_04_08,
    BusinessRefusal,
    JsonObject,
    Message,
    TransportError,
)
from cartpilot_local.merchant.psp import TokenKeyReused, UnknownPaymentMethod
from cartpilot_local.merchant.specs import library
from cartpilot_local.merchant.state import ESCALATION_CODE, ESCALATION_CONTENT, Caller, MerchantState
from cartpilot_local.merchant.storefront import lookup, product_detail, search
from cartpilot_local.merchant.webhooks import (
    DEFAULT_CARRIER,
    NoWebhookUrl,
    ShipmentStep,
    record_shipment,
    remember_platform,
    send_order_event,
)

ADMIN_PREFIX = "/_sandbox"
DISCOVERY_CACHE = "public, max-age=300"  # overview.md "Hosting": public, max-age of at least 60


@dataclass(frozen=True)
class Admitted:
    """A request that passed the gate: for whom to render, and the idempotency scope of its client."""

    ctx: RenderContext
    caller: Caller
    client: str


Work = Callable[[Admitted, Any], tuple[int, JsonObject]]


def codec_for(version: str) -> WireCodec:
    if version not in UCP_VERSIONS:
        raise ValueError(f"unknown UCP version {version}; the sandbox speaks {', '.join(UCP_VERSIONS)}")
    return Codec20260408() if version == V2026_04_08 else Codec20260111()


def _route_key(request: Request) -> str:
    route = request.scope.get("route")
    template = route.path_format if isinstance(route, APIRoute) else request.url.path
    return f"{request.method} {template}"


def _json(raw: bytes) -> Any:
    if not raw.strip():
        return NO_BODY
    try:
        return json.loads(raw)
    except ValueError:
        raise TransportError(400, "invalid_request", "the body is not JSON") from None


def create_app(
    state: MerchantState | None = None,
    clock: Callable[[], datetime] | None = None,
    *,
    ucp_version: str = V2026_04_08,
    catalog: bool = True,
    payment_handlers: Sequence[str] = ALL_PAYMENT_HANDLERS,
    profile_fetcher: ProfileFetcher | None = None,
    validate_schemas: bool = False,
    api_key: str | None = None,
) -> FastAPI:
    """The sandbox merchant speaking ``ucp_version``; pass ``state`` to share or inspect it, ``clock``
    to fix delivery dates, ``profile_fetcher`` to serve platform profiles without a network."""
    if state is None:
        state = MerchantState(clock=clock)
    elif clock is not None:
        state.clock = clock
    merchant = state
    codec = codec_for(ucp_version)
    spec = library(ucp_version)
    capabilities = codec.business_capabilities(catalog=catalog and ucp_version == V2026_04_08)
    handlers = advertised_handlers(payment_handlers)
    profiles = ProfileCache(profile_fetcher or http_profile_fetcher)
    admission = Admission(AgentGate(spec, capabilities, profiles), api_key=api_key)
    if validate_schemas:
        spec.require()
    recorder = ConformanceRecorder(spec) if validate_schemas else None

    app = FastAPI(
        title="CartPilot sandbox merchant",
        description=f"A UCP {ucp_version} merchant for local runs and tests.",
        version=ucp_version,
    )
    app.state.merchant = merchant
    app.state.conformance = recorder

    def respond(
        route: str, status: int, body: JsonObject, headers: dict[str, str] | None = None
    ) -> JSONResponse:
        if recorder is not None:
            recorder.check_response(route, status, body)
        return JSONResponse(body, status_code=status, headers=headers or None)

    def transport(route: str, error: TransportError) -> JSONResponse:
        status, body = codec.transport_error(error)
        return respond(route, status, body, error.headers)

    def fault_error(route: str, fault: Fault) -> JSONResponse:
        status = IMMEDIATE_ERRORS[fault.mode]
        headers = (
            {"Retry-After": str(math.ceil(fault.retry_after))} if fault.mode is FaultMode.ERROR_429 else None
        )
        code = {500: "internal_error", 429: "rate_limited", 400: "invalid_request"}[status]
        return transport(
            route,
            TransportError(
                status, code, f"sandbox fault {fault.mode.value} on {fault.route}", headers=headers
            ),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else "invalid_request"
        status, body = codec.transport_error(TransportError(exc.status_code, code, str(exc.detail)))
        return JSONResponse(body, status_code=status, headers=dict(exc.headers or {}))

    def answer(admitted: Admitted, refusal: BusinessRefusal) -> tuple[int, JsonObject]:
        if refusal.session_id is not None:
            view = merchant.view_with(refusal.session_id, admitted.caller, refusal.messages)
            return 200, codec.checkout(view, admitted.ctx)
        return codec.no_resource(refusal, admitted.ctx)

    async def serve(request: Request, capability: str, work: Work, *, mutating: bool = False) -> Response:
        """Faults, the gate, idempotency and the version's error shapes around one operation."""
        route = _route_key(request)
        raw = await request.body()
        fault = merchant.faults.take(route)
        if fault is not None and fault.mode in IMMEDIATE_ERRORS:
            return fault_error(route, fault)
        stall_first = fault is not None and fault.mode is FaultMode.TIMEOUT and not fault.hold_idempotency_key
        if fault is not None and stall_first:
            await asyncio.sleep(fault.delay_seconds)

        active: dict[str, str] = {}
        try:
            try:
                profile = await run_in_threadpool(
                    admission.admit, request.method, str(request.url), request.headers.items(), raw
                )
                active = admission.gate.negotiate(profile)
            finally:
                if recorder is not None and recorder.expects_body(route):
                    body_for_record = _json_or_raw(raw)
                    recorder.check_request(route, body_for_record, active or capabilities)
            body = _json(raw)
        except TransportError as error:
            return transport(route, error)
        ctx = RenderContext(str(request.base_url), active, handlers)
        if capability not in active:
            status, refusal = codec.capabilities_incompatible(
                f"this operation needs {capability}, which the platform profile does not offer", ctx
            )
            return respond(route, status, refusal)
        admitted = Admitted(ctx, Caller(ctx.base_url, FULFILLMENT in active, codec.decline_code), profile.url)

        key: str | None = None
        scope = f"{profile.url} {route}"  # signatures.md: keys are unique per client and operation
        stored: StoredResponse | None = None
        replayed = False
        if mutating:
            key = request.headers.get("Idempotency-Key")
            if key is None or not valid_key(key):
                return transport(
                    route,
                    TransportError(
                        400, "idempotency_key_required", "this request needs an Idempotency-Key header"
                    ),
                )
            claim = merchant.idempotency.claim(scope, key, request_fingerprint(request.url.path, raw))
            if claim.kind is ClaimKind.CONFLICT:
                # checkout-rest.md "Idempotency-Key": 409 Conflict when the key is reused with
                # different parameters.
                return transport(
                    route,
                    TransportError(
                        409, "idempotency_conflict", "this Idempotency-Key was used with a different request"
                    ),
                )
            if claim.kind is ClaimKind.IN_FLIGHT:
                return transport(
                    route,
                    TransportError(
                        503, "request_in_progress", "a request with this Idempotency-Key is still being processed",
                        headers={"Retry-After": "1"},
                    ),
                )  # fmt: skip
            if claim.kind is ClaimKind.REPLAY:
                stored, replayed = claim.stored, True

        if stored is None:
            try:
                if fault is not None and fault.mode is FaultMode.TIMEOUT and not stall_first:
                    await asyncio.sleep(fault.delay_seconds)
                try:
                    stored = StoredResponse(*work(admitted, body))
                except BusinessRefusal as refusal:
                    # A refusal is an answer too: replaying the key gives the same refusal.
                    stored = StoredResponse(*answer(admitted, refusal))
            except TransportError as error:
                if key is not None:
                    merchant.idempotency.release(scope, key)
                return transport(route, error)
            except BaseException:
                if key is not None:
                    merchant.idempotency.release(scope, key)
                raise
            if key is not None:
                merchant.idempotency.finish(scope, key, stored)

        if fault is not None and fault.mode is FaultMode.DROP_RESPONSE_AFTER_COMMIT:
            # Committed (or replayed); the answer is held until the caller has given up on it.
            await asyncio.sleep(fault.delay_seconds)
        return respond(
            route, stored.status, stored.body, {"Idempotent-Replayed": "true"} if replayed else None
        )

    # --- discovery ---------------------------------------------------------------------------

    @app.get("/.well-known/ucp")
    async def discovery(request: Request) -> Response:
        route = _route_key(request)
        fault = merchant.faults.take(route)
        if fault is not None and fault.mode in IMMEDIATE_ERRORS:
            return fault_error(route, fault)
        body = codec.discovery(
            str(request.base_url), capabilities, handlers, [merchant.signing_key.public_jwk]
        )
        return respond(route, 200, body, {"Cache-Control": DISCOVERY_CACHE})

    # --- catalog (2026-04-08 only, and not in no-catalog mode) -------------------------------

    if CATALOG_SEARCH in capabilities and isinstance(codec, Codec20260408):
        catalog_codec = codec

        @app.post("/catalog/search")
        async def search_catalog(request: Request) -> Response:
            def work(admitted: Admitted, body: Any) -> tuple[int, JsonObject]:
                found = search(merchant.catalog, parse_body(SearchIn, _object(body)), admitted.ctx.base_url)
                return 200, catalog_codec.catalog(found, admitted.ctx, CATALOG_SEARCH)

            return await serve(request, CATALOG_SEARCH, work)

        @app.post("/catalog/lookup")
        async def lookup_catalog(request: Request) -> Response:
            def work(admitted: Admitted, body: Any) -> tuple[int, JsonObject]:
                found = lookup(merchant.catalog, parse_body(LookupIn, _object(body)), admitted.ctx.base_url)
                return 200, catalog_codec.catalog(found, admitted.ctx, CATALOG_LOOKUP)

            return await serve(request, CATALOG_LOOKUP, work)

        @app.post("/catalog/product")
        async def get_product(request: Request) -> Response:
            def work(admitted: Admitted, body: Any) -> tuple[int, JsonObject]:
                detail = product_detail(
                    merchant.catalog, parse_body(ProductIn, _object(body)), admitted.ctx.base_url
                )
                return 200, catalog_codec.product(detail, admitted.ctx)

            return await serve(request, CATALOG_LOOKUP, work)

    # --- checkout ----------------------------------------------------------------------------

    @app.post("/checkout-sessions", status_code=201)
    async def create_checkout(request: Request) -> Response:
        def work(admitted: Admitted, body: Any) -> tuple[int, JsonObject]:
            order = codec.checkout_request(_object(body), "create")
            return 201, codec.checkout(merchant.create_checkout(order, admitted.caller), admitted.ctx)

        return await serve(request, CHECKOUT, work, mutating=True)

    @app.get("/checkout-sessions/{id}")
    async def get_checkout(request: Request, id: str) -> Response:
        def work(admitted: Admitted, body: Any) -> tuple[int, JsonObject]:
            return 200, codec.checkout(merchant.get_checkout(id, admitted.caller), admitted.ctx)

        return await serve(request, CHECKOUT, work)

    @app.put("/checkout-sessions/{id}")
    async def update_checkout(request: Request, id: str) -> Response:
        def work(admitted: Admitted, body: Any) -> tuple[int, JsonObject]:
            order = codec.checkout_request(_object(body), "update", id)
            return 200, codec.checkout(merchant.update_checkout(id, order, admitted.caller), admitted.ctx)

        return await serve(request, CHECKOUT, work, mutating=True)

    @app.post("/checkout-sessions/{id}/complete")
    async def complete_checkout(request: Request, id: str) -> Response:
        def work(admitted: Admitted, body: Any) -> tuple[int, JsonObject]:
            payment = codec.payment_request(_object(body))
            if payment is None:
                raise BusinessRefusal(
                    Message.error(
                        "missing", "completing a checkout needs a payment instrument", path="$.payment"
                    ),
                    id,
                )
            view = merchant.complete_checkout(id, payment, admitted.caller, handlers)
            if view.order is not None:
                # Its order events go to the webhook the placing platform's profile advertises.
                remember_platform(merchant, view.order.id, admitted.client)
            return 200, codec.checkout(view, admitted.ctx)

        return await serve(request, CHECKOUT, work, mutating=True)

    @app.post("/checkout-sessions/{id}/cancel")
    async def cancel_checkout(request: Request, id: str) -> Response:
        def work(admitted: Admitted, body: Any) -> tuple[int, JsonObject]:
            return 200, codec.checkout(merchant.cancel_checkout(id, admitted.caller), admitted.ctx)

        return await serve(request, CHECKOUT, work, mutating=True)

    # --- orders ------------------------------------------------------------------------------

    async def get_order(request: Request, id: str) -> Response:
        def work(admitted: Admitted, body: Any) -> tuple[int, JsonObject]:
            return 200, codec.order(*merchant.get_order(id), admitted.ctx)

        return await serve(request, ORDER, work)

    # 2026-01-11 defines no order route (its OpenAPI has checkout sessions only; orders reach a
    # platform by webhook), so a merchant of that version answers 404 here, as others would.
    if ucp_version != V2026_01_11:
        app.get("/orders/{id}")(get_order)

    @app.post("/orders/{id}/cancel")
    async def cancel_order(request: Request, id: str) -> Response:
        """com.cartpilot.order_cancel: cancels the order and refunds its charge, once."""

        def work(admitted: Admitted, body: Any) -> tuple[int, JsonObject]:
            return 200, codec.order(*merchant.cancel_order(id), admitted.ctx)

        return await serve(request, ORDER_CANCEL, work, mutating=True)

    @app.post("/orders/{id}/return")
    async def return_order(request: Request, id: str) -> Response:
        """com.cartpilot.order_return: files the return of a shipped order (refunded on receipt), once."""

        def work(admitted: Admitted, body: Any) -> tuple[int, JsonObject]:
            return 200, codec.order(*merchant.file_return(id), admitted.ctx)

        return await serve(request, ORDER_RETURN, work, mutating=True)

    # --- the sandbox PSP (not UCP: no UCP-Agent, as a payment processor's API) --------------

    @app.post("/psp/tokens", status_code=201)
    async def tokenize(request: Request) -> Response:
        route = _route_key(request)
        fault = merchant.faults.take(route)
        if fault is not None and fault.mode in IMMEDIATE_ERRORS:
            return fault_error(route, fault)
        try:
            order = parse_body(TokenRequestIn, _object(_json(await request.body())))
            issued = merchant.issue_token(
                order.payment_method_id,
                order.binding.checkout_id if order.binding else None,
                request.headers.get("Idempotency-Key"),
            )
        except TransportError as error:
            return JSONResponse({"code": error.code, "content": error.content}, status_code=error.status)
        except TokenKeyReused:
            return JSONResponse(
                {
                    "code": "idempotency_key_reused",
                    "content": "this Idempotency-Key issued a different token",
                },
                status_code=409,
            )
        except UnknownPaymentMethod:
            return JSONResponse(
                {"code": "unknown_payment_method", "content": "no such payment method at this processor"},
                status_code=400,
            )
        return JSONResponse(
            {
                "token": issued.token,
                "expires_at": issued.expires_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
                "card": {"brand": issued.brand, "last_digits": issued.last_digits},
            },
            status_code=201,
        )

    add_pages(app, merchant)

    # --- test-only admin ---------------------------------------------------------------------

    def known_routes() -> set[str]:
        return {
            f"{method} {route.path_format}"
            for route in app.routes
            if isinstance(route, APIRoute) and not route.path_format.startswith(ADMIN_PREFIX)
            for method in route.methods or ()
        }

    @app.get(f"{ADMIN_PREFIX}/ledger")
    async def sandbox_ledger() -> JsonObject:
        return merchant.ledger_json()

    @app.post(f"{ADMIN_PREFIX}/faults", status_code=201)
    async def sandbox_fault(order: FaultOrder) -> Response:
        if normalise_route(order.route) not in known_routes():
            routes = ", ".join(sorted(known_routes()))
            return JSONResponse(
                {
                    "code": "invalid_request",
                    "content": f"unknown route {order.route!r}; known routes: {routes}",
                },
                status_code=400,
            )
        return JSONResponse(merchant.faults.add(order).to_json(), status_code=201)

    @app.get(f"{ADMIN_PREFIX}/faults")
    async def sandbox_faults() -> JsonObject:
        return {"faults": merchant.faults.pending()}

    @app.post(f"{ADMIN_PREFIX}/prices")
    async def sandbox_reprice(order: RepriceOrder) -> Response:
        """Test-only: the merchant changes an item's shelf price (undone by reset)."""
        try:
            merchant.reprice(order.item_id, order.currency, order.amount)
        except KeyError:
            return JSONResponse(
                {"code": "not_found", "content": f"no item {order.item_id!r}"}, status_code=404
            )
        return JSONResponse({"item_id": order.item_id, "currency": order.currency, "amount": order.amount})

    @app.post(f"{ADMIN_PREFIX}/images")
    async def sandbox_images(order: ImageOrder) -> JsonObject:
        """Test-only: the products of a category publish ``url`` as their image, as given (undone by reset)."""
        return {"category": order.category, "products": merchant.publish_image(order.category, order.url)}

    @app.post(f"{ADMIN_PREFIX}/returns/{{return_id}}/receive")
    async def sandbox_receive_return(request: Request, return_id: str) -> Response:
        """Test-only: the returned goods arrive; the charge is refunded once and the platform is
        sent the order with its refund adjustment. Receiving again refunds nothing more (the
        event is sent again, as a merchant retries: the platform records it once)."""
        try:
            filed, order = merchant.receive_return(return_id)
        except KeyError:
            return JSONResponse({"code": "not_found", "content": f"no return {return_id!r}"}, status_code=404)
        try:
            delivery = await run_in_threadpool(
                send_order_event,
                order,
                state=merchant,
                codec=codec,
                merchant_url=str(request.base_url),
                fetch_profile=profiles.get,
            )
        except NoWebhookUrl as exc:
            return JSONResponse({"return": filed.to_json(), "webhook": None, "content": str(exc)})
        return JSONResponse({"return": filed.to_json(), "webhook": delivery.to_json()})

    @app.post(f"{ADMIN_PREFIX}/escalate", status_code=201)
    async def sandbox_escalate(order: EscalationOrder) -> JsonObject:
        """Test-only: the next ``times`` completions require escalation instead of charging."""
        pending = merchant.escalate(order.times, order.code, order.content)
        return {"pending": pending}

    async def shipment(request: Request, order_id: str, step: ShipmentStep) -> Response:
        """Test-only: the order ships or is delivered, and its platform is sent the order event."""
        raw = await request.body()
        try:
            order_in = ShipmentOrder.model_validate(json.loads(raw) if raw.strip() else {})
        except (ValueError, TypeError) as exc:
            return JSONResponse({"code": "invalid_request", "content": str(exc)[:300]}, status_code=400)
        try:
            order = merchant_shipment(order_id, step, order_in)
        except KeyError:
            return JSONResponse({"code": "not_found", "content": f"no order {order_id!r}"}, status_code=404)
        except ValueError as exc:
            return JSONResponse({"code": "invalid_state", "content": str(exc)}, status_code=409)
        try:
            delivery = await run_in_threadpool(
                send_order_event,
                order,
                state=merchant,
                codec=codec,
                merchant_url=str(request.base_url),
                fetch_profile=profiles.get,
            )
        except NoWebhookUrl as exc:
            return JSONResponse(
                {"order_id": order.id, "fulfillment": step, "webhook": None, "content": str(exc)},
                status_code=200,
            )
        return JSONResponse({"order_id": order.id, "fulfillment": step, "webhook": delivery.to_json()})

    def merchant_shipment(order_id: str, step: ShipmentStep, order_in: ShipmentOrder) -> OrderRecord:
        return record_shipment(
            merchant, order_id, step, carrier=order_in.carrier, tracking_number=order_in.tracking_number
        )

    @app.post(f"{ADMIN_PREFIX}/orders/{{order_id}}/ship")
    async def sandbox_ship(request: Request, order_id: str) -> Response:
        return await shipment(request, order_id, "shipped")

    @app.post(f"{ADMIN_PREFIX}/orders/{{order_id}}/deliver")
    async def sandbox_deliver(request: Request, order_id: str) -> Response:
        return await shipment(request, order_id, "delivered")

    @app.get(f"{ADMIN_PREFIX}/conformance")
    async def sandbox_conformance() -> JsonObject:
        if recorder is None:
            return {
                "version": ucp_version,
                "enabled": False,
                "validated": {"requests": 0, "responses": 0},
                "violations": [],
            }
        return {**recorder.report(), "enabled": True}

    @app.post(f"{ADMIN_PREFIX}/reset")
    async def sandbox_reset() -> JsonObject:
        merchant.reset()
        profiles.clear()
        return {"reset": True}

    return app


def _object(body: Any) -> Any:
    return {} if body is NO_BODY else body


def _json_or_raw(raw: bytes) -> Any:
    try:
        return _json(raw)
    except TransportError:
        return raw.decode("utf-8", errors="replace")


class RepriceOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(min_length=1, max_length=80)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    amount: int = Field(ge=0, description="minor units")


class ImageOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: str = Field(min_length=1, max_length=80)
    url: str = Field(max_length=2000)


class ShipmentOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    carrier: str = Field(default=DEFAULT_CARRIER, min_length=1, max_length=40)
    tracking_number: str | None = Field(
        default=None, min_length=1, max_length=40, pattern=r"^[A-Za-z0-9\-]+$"
    )


class EscalationOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    times: int = Field(default=1, ge=1, le=100)
    code: str = Field(default=ESCALATION_CODE, min_length=1, max_length=80)
    content: str = Field(default=ESCALATION_CONTENT, min_length=1, max_length=500)
