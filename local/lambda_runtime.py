"""Runs Lambda functions in this process, behind moto's Lambda API.

moto's Lambda backend runs code in Docker; the local stack has none. This module
replaces exactly one seam, ``LambdaBackend.invoke``, so everything above it stays
real: Step Functions (moto's ASL engine) and the HTTP gateway call
``lambda:Invoke`` through boto3 as they would on AWS, and the registered handler
runs here with the same event, a Lambda-shaped context, and AWS's error contract
(``FunctionError`` plus ``errorType``/``errorMessage``), which the ASL's Retry and
Catch match on.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

from moto.awslambda.models import LambdaBackend

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LambdaContext:
    """What a handler's ``context`` offers on AWS, for the parts our code and Powertools read."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    timeout_seconds: int = 60
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_seconds * 1000


@dataclass
class Invocation:
    function_name: str
    event: Any
    error_type: str | None


def load_handler(path: Path, attribute: str = "handler", module_name: str | None = None) -> Handler:
    """Imports ``functions/<name>/app.py`` under a unique module name (every handler file is ``app.py``)."""
    name = module_name or "cartpilot_fn_" + "_".join(path.parent.relative_to(path.parents[2]).parts)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler: Handler = getattr(module, attribute)
    return handler


class InProcessLambdaRuntime:
    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()
        self.invocations: list[Invocation] = []
        # Test hook: function name -> number of extra deliveries of its next invocations.
        self._duplicates: dict[str, int] = {}

    def register(self, function_name: str, handler: Handler) -> None:
        self._handlers[function_name] = handler

    def deliver_twice(self, function_name: str, times: int = 1) -> None:
        """Makes the next ``times`` invocations of a function run twice, as Lambda's at-least-once delivery may."""
        with self._lock:
            self._duplicates[function_name] = self._duplicates.get(function_name, 0) + times

    def invoke(
        self, function_name: str, payload: bytes | str | None, response_headers: dict[str, Any]
    ) -> bytes:
        name = function_name.split(":function:")[-1].split(":")[0]
        handler = self._handlers.get(name)
        if handler is None:
            raise KeyError(f"no in-process handler registered for {name}")
        event = json.loads(payload) if payload else {}
        with self._lock:
            extra = 1 if self._duplicates.get(name, 0) > 0 else 0
            if extra:
                self._duplicates[name] -= 1
        result, error_type = self._run(name, handler, event)
        if extra:
            result, error_type = self._run(name, handler, event)
        if error_type is not None:
            response_headers["x-amz-function-error"] = "Unhandled"
        body = json.dumps(result, default=str).encode()
        response_headers["Content-Length"] = str(len(body))
        return body

    def _run(self, name: str, handler: Handler, event: Any) -> tuple[Any, str | None]:
        context = LambdaContext(
            function_name=name, invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        )
        try:
            result = handler(event, context)
            error_type = None
        except Exception as exc:
            error_type = type(exc).__name__
            result = {
                "errorType": error_type,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_exception(exc)[-3:],
            }
        with self._lock:
            self.invocations.append(Invocation(function_name=name, event=event, error_type=error_type))
        return result, error_type

    @contextmanager
    def installed(self) -> Iterator[InProcessLambdaRuntime]:
        """Routes moto's ``LambdaBackend.invoke`` to this runtime while the context is open."""
        runtime = self

        def invoke(
            backend: LambdaBackend,
            function_name: str,
            qualifier: str | None,
            body: Any,
            headers: Any,
            response_headers: Any,
        ) -> bytes:
            backend.get_function(function_name, qualifier)  # unknown functions fail as on AWS
            return runtime.invoke(function_name, body, response_headers)

        with mock.patch.object(LambdaBackend, "invoke", invoke):
            yield self
