"""One Logger, Metrics and Tracer per function, configured from the Powertools environment.

The Tracer is created on the first traced call rather than at import: building it
loads the X-Ray SDK (about 100 ms), which a handler module's import should not pay
for (see bench/cold_start.py). Everything else about it is Powertools' own Tracer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics()

F = TypeVar("F", bound=Callable[..., Any])


@functools.cache
def _tracer() -> Any:
    from aws_lambda_powertools import Tracer

    return Tracer()


class _DeferredTracer:
    """Exposes the decorators a handler uses; the real Tracer is built on the first call."""

    def capture_lambda_handler(self, handler: F) -> F:
        traced: list[Callable[..., Any]] = []

        @functools.wraps(handler)
        def wrapper(event: Any, context: Any) -> Any:
            if not traced:
                traced.append(_tracer().capture_lambda_handler(handler))
            return traced[0](event, context)

        return wrapper  # type: ignore[return-value]

    def capture_method(self, method: F) -> F:
        traced: list[Callable[..., Any]] = []

        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not traced:
                traced.append(_tracer().capture_method(method))
            return traced[0](*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    def __getattr__(self, name: str) -> Any:
        return getattr(_tracer(), name)


tracer = _DeferredTracer()
