"""Scheduled functions of the local stack: what EventBridge Scheduler invokes on AWS.

Each runs on a timer thread, invoked through the local Lambda runtime like any other function, so
its AWS calls are checked against its own policy. The period is shorter than on AWS (a second, not a
minute) so a drill that needs a sweep sees one in seconds.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import boto3

LOCAL_PERIOD_SECONDS = 1.0


def scheduled_event(function_name: str) -> dict[str, object]:
    """The event EventBridge Scheduler's Lambda target sends (its default input)."""
    return {
        "source": "cartpilot.local.scheduler",
        "detail-type": "Scheduled Event",
        "function": function_name,
    }


@contextmanager
def running_on_schedule(function_names: list[str], region: str) -> Iterator[None]:
    """Invokes each function every ``LOCAL_PERIOD_SECONDS`` until the context closes."""
    stop = threading.Event()
    lambda_client = boto3.client("lambda", region_name=region)

    def tick() -> None:
        # Event.wait is the timer: it returns early, and the loop ends, when the stack stops.
        while not stop.wait(LOCAL_PERIOD_SECONDS):
            for name in function_names:
                # A failed run is the function's error, recorded by the runtime; the next tick retries.
                try:
                    lambda_client.invoke(
                        FunctionName=name, Payload=json.dumps(scheduled_event(name)).encode()
                    )
                except Exception:  # the timer outlives any one run, as the scheduler does
                    logging.getLogger(__name__).warning("scheduled invocation failed", exc_info=True)

    thread = threading.Thread(target=tick, name="local-scheduler", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
