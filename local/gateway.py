"""The local stand-in for API Gateway: HTTP in, a REST proxy event to the api Lambda, HTTP out.

The api function is invoked through boto3's ``lambda:Invoke`` (served in-process by
the local runtime), with the same event shape API Gateway's proxy integration sends.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from typing import Any

import boto3
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

_TEXT_TYPES = ("application/json", "application/x-www-form-urlencoded", "text/")


def proxy_event(
    method: str, path: str, headers: dict[str, str], query: dict[str, list[str]], body: bytes
) -> dict[str, Any]:
    content_type = headers.get("content-type", "")
    is_text = not body or any(content_type.startswith(kind) for kind in _TEXT_TYPES)
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
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": (body.decode() if is_text else base64.b64encode(body).decode()) if body else None,
        "isBase64Encoded": not is_text,
    }


def _http_response(result: dict[str, Any]) -> Response:
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    headers = dict(result.get("headers") or {})
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[name] = values[-1]
    headers.pop("Content-Length", None)
    headers.pop("content-length", None)
    return Response(content=raw, status_code=int(result.get("statusCode", 502)), headers=headers)


def create_gateway(api_function: str, outbox: Callable[[], list[dict[str, Any]]]) -> Starlette:
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
        query: dict[str, list[str]] = {}
        for name, value in request.query_params.multi_items():
            query.setdefault(name, []).append(value)
        event = proxy_event(
            request.method,
            request.url.path,
            {k.lower(): v for k, v in request.headers.items()},
            query,
            await request.body(),
        )
        return _http_response(await run_in_threadpool(invoke, event))

    async def list_outbox(request: Request) -> Response:
        return JSONResponse({"messages": await run_in_threadpool(outbox)})

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
    return Starlette(
        routes=[
            Route("/_local/outbox", list_outbox, methods=["GET"]),
            Route("/{path:path}", forward, methods=methods),
        ]
    )
