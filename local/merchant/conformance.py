"""Records whether the messages a sandbox sees and sends match its version's published schemas.

Each UCP route maps to the schemas its OpenAPI operation names (request body, and response body per
status). Checkout messages are validated against the checkout composed with the fulfillment
extension when that extension is active (overview.md "Schema Composition"): for requests, when it
was negotiated; for responses, when the response's own ``ucp.capabilities`` names it. Violations are
recorded, never enforced: the tests assert there are none.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cartpilot_local.merchant.protocol import FULFILLMENT, V2026_01_11, JsonObject
from cartpilot_local.merchant.specs import Direction, SpecLibrary

MAX_VIOLATIONS = 500  # enough to see what is wrong; a runaway client cannot grow it without bound

_SCHEMAS = "https://ucp.dev/schemas/"
_CHECKOUT_BASE = "checkout"  # placeholder resolved per version and active extensions


@dataclass(frozen=True)
class OperationSchemas:
    request: JsonObject | str | None = None
    request_operation: str = "read"
    responses: Mapping[int, JsonObject | str] = field(default_factory=dict)


def _ref(uri: str) -> JsonObject:
    return {"$ref": uri}


def _operations_2026_04_08() -> dict[str, OperationSchemas]:
    openapi = "https://ucp.dev/services/shopping/rest.openapi.json#/components/schemas/"
    checkout_response = {200: "checkout_response", 201: "checkout_response"}
    order = {200: _ref(openapi + "order_response")}
    return {
        "GET /.well-known/ucp": OperationSchemas(
            responses={200: _ref("https://ucp.dev/discovery/profile_schema.json#/$defs/business_profile")}
        ),
        "POST /catalog/search": OperationSchemas(
            _ref(openapi + "catalog_search_request"),
            responses={200: _ref(openapi + "catalog_search_response")},
        ),
        "POST /catalog/lookup": OperationSchemas(
            _ref(openapi + "catalog_lookup_request"),
            responses={200: _ref(openapi + "catalog_lookup_response")},
        ),
        "POST /catalog/product": OperationSchemas(
            _ref(openapi + "catalog_get_product_request"),
            responses={200: _ref(openapi + "catalog_get_product_response")},
        ),
        "POST /checkout-sessions": OperationSchemas(_CHECKOUT_BASE, "create", checkout_response),
        "GET /checkout-sessions/{id}": OperationSchemas(responses=checkout_response),
        "PUT /checkout-sessions/{id}": OperationSchemas(_CHECKOUT_BASE, "update", checkout_response),
        "POST /checkout-sessions/{id}/complete": OperationSchemas(
            _CHECKOUT_BASE, "complete", checkout_response
        ),
        "POST /checkout-sessions/{id}/cancel": OperationSchemas(responses=checkout_response),
        "GET /orders/{id}": OperationSchemas(responses=order),
        # Our extension answers with the order, so it is held to the order's schema.
        "POST /orders/{id}/cancel": OperationSchemas(responses=order),
    }


def _operations_2026_01_11() -> dict[str, OperationSchemas]:
    complete = (
        "https://ucp.dev/services/shopping/openapi.json#/paths/~1checkout-sessions~1{id}~1complete"
        "/post/requestBody/content/application~1json/schema"
    )
    checkout = {200: _CHECKOUT_BASE, 201: _CHECKOUT_BASE}
    # 2026-01-11 has no order read route; the sandbox serves one (and cancel) in that version's shape.
    order = {200: _ref(_SCHEMAS + "shopping/order.json")}
    return {
        "GET /.well-known/ucp": OperationSchemas(
            responses={200: _ref("https://ucp.dev/discovery/profile_schema.json")}
        ),
        "POST /checkout-sessions": OperationSchemas(_CHECKOUT_BASE, "create", checkout),
        "GET /checkout-sessions/{id}": OperationSchemas(responses=checkout),
        "PUT /checkout-sessions/{id}": OperationSchemas(_CHECKOUT_BASE, "update", checkout),
        "POST /checkout-sessions/{id}/complete": OperationSchemas(_ref(complete), "complete", checkout),
        "POST /checkout-sessions/{id}/cancel": OperationSchemas(responses=checkout),
        "GET /orders/{id}": OperationSchemas(responses=order),
        "POST /orders/{id}/cancel": OperationSchemas(responses=order),
    }


class ConformanceRecorder:
    """Counts validated messages of one version and keeps the violations found."""

    def __init__(self, spec: SpecLibrary) -> None:
        self.spec = spec
        self.version = spec.version
        self._operations = (
            _operations_2026_01_11() if spec.version == V2026_01_11 else _operations_2026_04_08()
        )
        self._lock = threading.Lock()
        self._requests = 0
        self._responses = 0
        self._violations: list[JsonObject] = []

    def expects_body(self, route: str) -> bool:
        operation = self._operations.get(route)
        return operation is not None and operation.request is not None

    def check_request(self, route: str, body: Any, extensions: Iterable[str]) -> None:
        operation = self._operations.get(route)
        if operation is None or operation.request is None:
            return
        schema = self._schema(operation.request, set(extensions))
        problems = (
            [("$", "the request has no JSON body")]
            if body is NO_BODY
            else self.spec.problems(body, schema, "request", operation.request_operation)
        )
        self._record("request", route, None, problems)

    def check_response(self, route: str, status: int, body: Any) -> None:
        operation = self._operations.get(route)
        if operation is None or status not in operation.responses:
            return  # transport errors have no schema in the OpenAPI
        schema = self._schema(operation.responses[status], _active_extensions(body))
        self._record("response", route, status, self.spec.problems(body, schema, "response", "read"))

    def _schema(self, declared: JsonObject | str, extensions: set[str]) -> JsonObject:
        if isinstance(declared, dict):
            return declared
        if self.version == V2026_01_11:
            with_fulfillment = FULFILLMENT in extensions
            return _ref(
                _SCHEMAS
                + (
                    "shopping/fulfillment.json#/$defs/checkout"
                    if with_fulfillment
                    else "shopping/checkout.json"
                )
            )
        composed = (
            _SCHEMAS + "shopping/fulfillment.json#/$defs/dev.ucp.shopping.checkout"
            if FULFILLMENT in extensions
            else _SCHEMAS + "shopping/checkout.json"
        )
        if declared == "checkout_response":
            return {"oneOf": [_ref(composed), _ref(_SCHEMAS + "shopping/types/error_response.json")]}
        return _ref(composed)

    def _record(
        self, direction: Direction, route: str, status: int | None, problems: list[tuple[str, str]]
    ) -> None:
        with self._lock:
            if direction == "request":
                self._requests += 1
            else:
                self._responses += 1
            for where, what in problems:
                if len(self._violations) >= MAX_VIOLATIONS:
                    break
                entry: JsonObject = {"direction": direction, "route": route, "path": where, "message": what}
                if status is not None:
                    entry["status"] = status
                self._violations.append(entry)

    def report(self) -> JsonObject:
        with self._lock:
            return {
                "version": self.version,
                "validated": {"requests": self._requests, "responses": self._responses},
                "violations": list(self._violations),
            }

    def reset(self) -> None:
        with self._lock:
            self._requests = self._responses = 0
            self._violations.clear()


class _NoBody:
    """Stands for a request that should have had a JSON body and had none."""

    def __repr__(self) -> str:
        return "<no body>"


NO_BODY: Any = _NoBody()


def _active_extensions(body: Any) -> set[str]:
    """The capabilities a response declares (04-08: an object keyed by name; 01-11: a list)."""
    meta = body.get("ucp") if isinstance(body, dict) else None
    capabilities = meta.get("capabilities") if isinstance(meta, dict) else None
    if isinstance(capabilities, dict):
        return set(capabilities)
    if isinstance(capabilities, list):
        return {
            entry["name"]
            for entry in capabilities
            if isinstance(entry, dict) and isinstance(entry.get("name"), str)
        }
    return set()
