"""The sandbox merchant's HTTP face: UCP REST routes, our shipping-quote extension, and test admin routes."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from datetime import datetime
from html import escape

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from cartpilot_local.merchant.faults import IMMEDIATE_ERRORS, Fault, FaultMode, FaultOrder, normalise_route
from cartpilot_local.merchant.idempotency import ClaimKind, StoredResponse, request_fingerprint, valid_key
from cartpilot_local.merchant.payloads import (
    CheckoutCompleteIn,
    CheckoutCreateIn,
    CheckoutUpdateIn,
    LookupIn,
    QuoteIn,
    SearchIn,
)
from cartpilot_local.merchant.protocol import (
    IDEMPOTENCY_CONFLICT,
    IDEMPOTENCY_IN_FLIGHT,
    UCP_VERSION,
    JsonObject,
    MerchantError,
    error_body,
)
from cartpilot_local.merchant.state import MerchantState

ADMIN_PREFIX = "/_sandbox"


def _error(status: int, code: str, content: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, content), status_code=status, headers=headers)


def _route_key(request: Request) -> str:
    route = request.scope.get("route")
    template = route.path_format if isinstance(route, APIRoute) else request.url.path
    return f"{request.method} {template}"


def _base_url(request: Request) -> str:
    return str(request.base_url)


def _fault_response(fault: Fault) -> JSONResponse:
    status = IMMEDIATE_ERRORS[fault.mode]
    headers = (
        {"Retry-After": str(math.ceil(fault.retry_after))} if fault.mode is FaultMode.ERROR_429 else None
    )
    code = {500: "internal_error", 429: "rate_limited", 400: "invalid_request"}[status]
    return _error(status, code, f"sandbox fault {fault.mode.value} on {fault.route}", headers)


def create_app(state: MerchantState | None = None, clock: Callable[[], datetime] | None = None) -> FastAPI:
    """The sandbox merchant; pass `state` to share or inspect it, `clock` to fix delivery dates."""
    if state is None:
        state = MerchantState(clock=clock)
    elif clock is not None:
        state.clock = clock
    merchant = state

    app = FastAPI(
        title="CartPilot sandbox merchant",
        description="A UCP 2026-04-08 REST subset for local runs and tests.",
        version=UCP_VERSION,
    )
    app.state.merchant = merchant

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Say where and what, never echo the input: bodies carry addresses and phone numbers.
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        return _error(400, "invalid_request", f"{where or 'request'}: {first.get('msg', 'invalid')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else "invalid_request"
        return _error(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(MerchantError)
    async def _merchant_error(request: Request, exc: MerchantError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers or None)

    async def run(
        request: Request, work: Callable[[], JsonObject], *, status: int = 200, mutating: bool = False
    ) -> Response:
        """Applies faults and idempotency around one operation, in the order a real stack would."""
        route = _route_key(request)
        fault = merchant.faults.take(route)
        if fault is not None and fault.mode in IMMEDIATE_ERRORS:
            return _fault_response(fault)
        stall_first = fault is not None and fault.mode is FaultMode.TIMEOUT and not fault.hold_idempotency_key
        if fault is not None and stall_first:
            await asyncio.sleep(fault.delay_seconds)

        key: str | None = None
        stored: StoredResponse | None = None
        replayed = False
        if mutating:
            key = request.headers.get("Idempotency-Key")
            if key is None or not valid_key(key):
                return _error(400, "idempotency_key_required", "this request needs an Idempotency-Key header")
            fingerprint = request_fingerprint(request.url.path, await request.body())
            claim = merchant.idempotency.claim(route, key, fingerprint)
            if claim.kind is ClaimKind.CONFLICT:
                return _error(
                    422, IDEMPOTENCY_CONFLICT, "this Idempotency-Key was used with a different request"
                )
            if claim.kind is ClaimKind.IN_FLIGHT:
                return _error(
                    409, IDEMPOTENCY_IN_FLIGHT, "a request with this Idempotency-Key is in progress"
                )
            if claim.kind is ClaimKind.REPLAY:
                stored, replayed = claim.stored, True

        if stored is None:
            try:
                if fault is not None and fault.mode is FaultMode.TIMEOUT and not stall_first:
                    await asyncio.sleep(fault.delay_seconds)
                try:
                    stored = StoredResponse(status, work())
                except MerchantError as refusal:
                    # A refusal is an answer too: replaying the key gives the same refusal.
                    stored = StoredResponse(refusal.status, refusal.body())
            except BaseException:
                if key is not None:
                    merchant.idempotency.release(route, key)
                raise
            if key is not None:
                merchant.idempotency.finish(route, key, stored)

        if fault is not None and fault.mode is FaultMode.DROP_RESPONSE_AFTER_COMMIT:
            # Committed (or replayed); the answer is held until the caller has given up on it.
            await asyncio.sleep(fault.delay_seconds)
        headers = {"Idempotent-Replayed": "true"} if replayed else None
        return JSONResponse(stored.body, status_code=stored.status, headers=headers)

    # --- discovery and catalog ---------------------------------------------------------------

    @app.get("/.well-known/ucp")
    async def profile(request: Request) -> Response:
        return await run(request, lambda: merchant.profile(_base_url(request)))

    @app.post("/catalog/search")
    async def search_catalog(request: Request, body: SearchIn) -> Response:
        return await run(request, lambda: merchant.search(body, _base_url(request)))

    @app.post("/catalog/lookup")
    async def lookup_catalog(request: Request, body: LookupIn) -> Response:
        return await run(request, lambda: merchant.lookup(body, _base_url(request)))

    @app.post("/shipping/quote")
    async def quote_shipping(request: Request, body: QuoteIn) -> Response:
        return await run(request, lambda: merchant.quote(body, _base_url(request)))

    # --- checkout ----------------------------------------------------------------------------

    @app.post("/checkout-sessions", status_code=201)
    async def create_checkout(request: Request, body: CheckoutCreateIn) -> Response:
        return await run(
            request, lambda: merchant.create_checkout(body, _base_url(request)), status=201, mutating=True
        )

    @app.get("/checkout-sessions/{id}")
    async def get_checkout(request: Request, id: str) -> Response:
        return await run(request, lambda: merchant.get_checkout(id, _base_url(request)))

    @app.put("/checkout-sessions/{id}")
    async def update_checkout(request: Request, id: str, body: CheckoutUpdateIn) -> Response:
        return await run(
            request, lambda: merchant.update_checkout(id, body, _base_url(request)), mutating=True
        )

    @app.post("/checkout-sessions/{id}/complete")
    async def complete_checkout(request: Request, id: str, body: CheckoutCompleteIn) -> Response:
        return await run(
            request, lambda: merchant.complete_checkout(id, body, _base_url(request)), mutating=True
        )

    @app.post("/checkout-sessions/{id}/cancel")
    async def cancel_checkout(request: Request, id: str) -> Response:
        return await run(request, lambda: merchant.cancel_checkout(id, _base_url(request)), mutating=True)

    # --- orders ------------------------------------------------------------------------------

    @app.get("/orders/{id}")
    async def get_order(request: Request, id: str) -> Response:
        return await run(request, lambda: merchant.get_order(id, _base_url(request)))

    @app.post("/orders/{id}/cancel")
    async def cancel_order(request: Request, id: str) -> Response:
        """Sandbox addition (UCP has no order cancel): cancels the order and refunds its charge once."""
        return await run(request, lambda: merchant.cancel_order(id, _base_url(request)), mutating=True)

    # --- placeholders the responses link to --------------------------------------------------

    @app.get("/media/{name}")
    async def media(name: str) -> Response:
        label = escape(name.removesuffix(".svg"))[:40]
        svg = (
            '<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400">'
            '<rect width="100%" height="100%" fill="#e8ecef"/>'
            '<text x="50%" y="50%" text-anchor="middle" font-family="sans-serif" font-size="16">'
            f"{label}</text></svg>"
        )
        return Response(svg, media_type="image/svg+xml")

    @app.get("/policies/{name}")
    async def policy(name: str) -> HTMLResponse:
        title = escape(name.replace("-", " ").title())
        return HTMLResponse(f"<h1>{title}</h1><p>Sandbox Outfitters policy placeholder.</p>")

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
            return _error(400, "invalid_request", f"unknown route {order.route!r}; known routes: {routes}")
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
            return _error(404, "not_found", f"no item {order.item_id!r}")
        return JSONResponse({"item_id": order.item_id, "currency": order.currency, "amount": order.amount})

    @app.post(f"{ADMIN_PREFIX}/reset")
    async def sandbox_reset() -> JsonObject:
        merchant.reset()
        return {"reset": True}

    return app


class RepriceOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(min_length=1, max_length=80)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    amount: int = Field(ge=0, description="minor units")
