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
import itertools
import json
import queue
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from moto.awslambda.models import LambdaBackend

from cartpilot.wiring.merchants import container_scope
from cartpilot_local.iam import acting_as

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
    # Wall time of the handler call (not the container's first load), for pricing GB-seconds.
    duration_ms: float = 0.0


_module_numbers = itertools.count(1)


def _discard_unpublished_metrics() -> None:
    """With POWERTOOLS_METRICS_DISABLED, Powertools skips the flush but keeps the metrics, and
    prints them anyway once a hundred pile up; on Lambda a container would publish them. The
    local stack publishes nowhere, so what an invocation recorded ends with it."""
    import os

    if os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() == "true":
        from cartpilot.kernel.observability import metrics

        metrics.clear_metrics()


def load_handler(path: Path, attribute: str = "handler") -> Handler:
    """Imports ``functions/<name>/app.py`` as a fresh module (every handler file is ``app.py``,
    and every container gets its own copy)."""
    name = f"cartpilot_fn_{path.parent.name}_{next(_module_numbers)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler: Handler = getattr(module, attribute)
    return handler


class _Containers:
    """A function's warm execution environments; each serves one invocation at a time, as on Lambda.

    Each container loads its own copy of the handler module, so per-invocation state kept
    in module globals (Powertools' resolver holds the current event) is never shared.
    """

    def __init__(self, load: Callable[[], Handler], size: int) -> None:
        self._load = load
        self._idle: queue.LifoQueue[Handler] = queue.LifoQueue()
        self._created = 0
        self._size = size
        self._lock = threading.Lock()

    @contextmanager
    def acquire(self) -> Iterator[Handler]:
        handler = self._take()
        try:
            yield handler
        finally:
            self._idle.put(handler)

    def _take(self) -> Handler:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._created < self._size:
                self._created += 1
                return self._load()
        return self._idle.get()  # every container is busy: wait for one, as a throttled function would


class InProcessLambdaRuntime:
    def __init__(self, containers_per_function: int = 4) -> None:
        self._functions: dict[str, _Containers] = {}
        self._containers_per_function = containers_per_function
        self._lock = threading.Lock()
        self.invocations: list[Invocation] = []
        # Test hook: function name -> number of extra deliveries of its next invocations.
        self._duplicates: dict[str, int] = {}

    def register(self, function_name: str, load: Callable[[], Handler]) -> None:
        """``load`` builds one container's handler; it is called at most containers_per_function times."""
        self._functions[function_name] = _Containers(load, self._containers_per_function)

    def deliver_twice(self, function_name: str, times: int = 1) -> None:
        """Makes the next ``times`` invocations of a function run twice, as Lambda's at-least-once delivery may."""
        with self._lock:
            self._duplicates[function_name] = self._duplicates.get(function_name, 0) + times

    def invoke(
        self, function_name: str, payload: bytes | str | None, response_headers: dict[str, Any]
    ) -> bytes:
        name = function_name.split(":function:")[-1].split(":")[0]
        containers = self._functions.get(name)
        if containers is None:
            raise KeyError(f"no in-process handler registered for {name}")
        event = json.loads(payload) if payload else {}
        with self._lock:
            extra = 1 if self._duplicates.get(name, 0) > 0 else 0
            if extra:
                self._duplicates[name] -= 1
        with containers.acquire() as handler:
            result, error_type = self._run_in_container(name, handler, event)
        if extra:
            with containers.acquire() as handler:
                result, error_type = self._run_in_container(name, handler, event)
        if error_type is not None:
            response_headers["x-amz-function-error"] = "Unhandled"
        body = json.dumps(result, default=str).encode()
        response_headers["Content-Length"] = str(len(body))
        return body

    def _run_in_container(self, name: str, handler: Handler, event: Any) -> tuple[Any, str | None]:
        """Runs with the container's own connector clients, as a separate Lambda container would, and
        with the function's role: its AWS calls are checked against its policy (``cartpilot_local.iam``)."""
        token = container_scope.set(f"{name}:{id(handler)}")
        try:
            with acting_as(name):
                return self._run(name, handler, event)
        finally:
            container_scope.reset(token)

    def _run(self, name: str, handler: Handler, event: Any) -> tuple[Any, str | None]:
        context = LambdaContext(
            function_name=name, invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        )
        started = time.perf_counter()
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
        finally:
            duration_ms = (time.perf_counter() - started) * 1000
            _discard_unpublished_metrics()
        with self._lock:
            self.invocations.append(
                Invocation(function_name=name, event=event, error_type=error_type, duration_ms=duration_ms)
            )
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

        with (
            mock.patch.object(LambdaBackend, "invoke", invoke),
            mock.patch.object(ApiGatewayResolver, "resolve", _resolve_with_its_own_event),
        ):
            yield self


_resolve = ApiGatewayResolver.resolve


def _resolve_with_its_own_event(self: ApiGatewayResolver, event: dict[str, Any], context: Any) -> Any:
    """Powertools keeps the event being resolved in a class attribute (``BaseRouter.current_event``):
    one per process, which is one invocation at a time on Lambda. Here containers share the process
    and run side by side, so each resolver keeps its own event on the instance (each container loads
    its own resolver), where ``app.current_event`` reads it first."""
    self.current_event = self._to_proxy_event(event)
    self.lambda_context = context
    return _resolve(self, event, context)
