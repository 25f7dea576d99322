"""The local stand-in for API Gateway: HTTP in, a REST proxy event to the api Lambda, HTTP out.

The api function is invoked through boto3's ``lambda:Invoke`` (served in-process by
the local runtime), with the same event shape API Gateway's proxy integration sends. Where
API Gateway would check a SigV4 signature and pass on the signer, the caller names itself with
the ``X-Local-Principal`` header (absent: ``assistant``).
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable
from typing import Any

import boto3
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cartpilot.brands.access import LOCAL_ACCOUNT, local_principal_arn

_TEXT_TYPES = ("application/json", "application/x-www-form-urlencoded", "text/")
# The routes API Gateway serves without IAM authorization (infra/api.py): no caller is passed on.
PUBLIC_PATHS = ("/approvals/", "/.well-known/", "/shoppers/", "/webhooks/")
PRINCIPAL_HEADER = "x-local-principal"
DEFAULT_PRINCIPAL = "assistant"
# IAM user names: letters, digits and +=,.@_- (up to 64 characters).
PRINCIPAL_NAME = re.compile(r"[A-Za-z0-9+=,.@_\-]{1,64}")


def caller_identity(path: str, principal: str | None) -> dict[str, Any]:
    """``requestContext.identity`` as API Gateway fills it: on an IAM-authorized route, the principal
    that signed the request; on a public route (approval links, the UCP profile), no caller at all."""
    identity: dict[str, Any] = {"sourceIp": "127.0.0.1"}
    if principal is None or path.startswith(PUBLIC_PATHS):
        return identity
    arn = local_principal_arn(principal)
    return {
        **identity,
        "userArn": arn,
        "user": f"AIDALOCAL{principal}",
        "caller": f"AIDALOCAL{principal}",
        "accountId": LOCAL_ACCOUNT,
        "accessKey": "ASIALOCAL",
    }


def proxy_event(
    method: str,
    path: str,
    headers: dict[str, str],
    query: dict[str, list[str]],
    body: bytes,
    principal: str | None = DEFAULT_PRINCIPAL,
) -> dict[str, Any]:
    content_type = headers.get("content-type", "")
    # A "text" body that is not UTF-8 travels base64-encoded, as bytes; the api function refuses it
    # with its own 400 (the gateway is no place for the API's error bodies).
    is_text = not body or (any(content_type.startswith(kind) for kind in _TEXT_TYPES) and _is_utf8(body))
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": {name: values[-1] for name, values in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": f"/local{path}",
            "stage": "local",
            "requestId": str(uuid.uuid4()),
            "accountId": "123456789012",
            "apiId": "local",
            "identity": caller_identity(path, principal),
        },
        "body": (body.decode() if is_text else base64.b64encode(body).decode()) if body else None,
        "isBase64Encoded": not is_text,
    }


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _http_response(result: dict[str, Any]) -> Response:
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    headers = dict(result.get("headers") or {})
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[name] = values[-1]
    headers.pop("Content-Length", None)
    headers.pop("content-length", None)
    return Response(content=raw, status_code=int(result.get("statusCode", 502)), headers=headers)


def create_gateway(
    api_function: str,
    outbox: Callable[[], list[dict[str, Any]]],
    advance_clock: Callable[[float], str] | None = None,
    local_routes: list[Route] | None = None,
) -> Starlette:
    """``advance_clock`` moves the schedules' clock forward (``POST /_local/clock``), for tests;
    ``local_routes`` are more local-only routes (``/_local/rollout``)."""
    lambda_client = boto3.client("lambda")

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        response = lambda_client.invoke(FunctionName=api_function, Payload=json.dumps(event).encode())
        payload = json.loads(response["Payload"].read() or b"{}")
        if response.get("FunctionError"):
            # API Gateway answers a crashed integration with 502 and no details.
            return {
                "statusCode": 502,
                "body": json.dumps({"error": {"code": "INTERNAL", "message": "internal error"}}),
            }
        result: dict[str, Any] = payload
        return result

    async def forward(request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        # Stands in for SigV4: the caller names itself; the header never reaches the function.
        principal = headers.pop(PRINCIPAL_HEADER, DEFAULT_PRINCIPAL)
        if not PRINCIPAL_NAME.fullmatch(principal):
            return JSONResponse(
                {"error": {"code": "INVALID_PRINCIPAL", "message": "X-Local-Principal is an IAM user name"}},
                status_code=403,
            )
        query: dict[str, list[str]] = {}
        for name, value in request.query_params.multi_items():
            query.setdefault(name, []).append(value)
        event = proxy_event(
            request.method,
            request.url.path,
            headers,
            query,
            await request.body(),
            principal,
        )
        return _http_response(await run_in_threadpool(invoke, event))

    async def list_outbox(request: Request) -> Response:
        return JSONResponse({"messages": await run_in_threadpool(outbox)})

    async def move_clock(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            seconds = body["advanceSeconds"] if isinstance(body, dict) else None
            if advance_clock is None or not isinstance(seconds, int | float) or isinstance(seconds, bool):
                raise ValueError('send {"advanceSeconds": N}')
            now = advance_clock(float(seconds))
        except (ValueError, KeyError) as exc:
            return JSONResponse({"error": {"code": "INVALID_REQUEST", "message": str(exc)}}, status_code=400)
        return JSONResponse({"now": now})

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
    return Starlette(
        routes=[
            Route("/_local/outbox", list_outbox, methods=["GET"]),
            Route("/_local/clock", move_clock, methods=["POST"]),
            *(local_routes or []),
            Route("/{path:path}", forward, methods=methods),
        ]
    )
