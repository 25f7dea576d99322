"""The in-process Lambda runtime runs containers side by side in one process; each resolver must
still see only its own request (on Lambda, one process serves one invocation at a time)."""

from __future__ import annotations

import threading
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from cartpilot_local.gateway import proxy_event
from cartpilot_local.lambda_runtime import InProcessLambdaRuntime
from tests.contract.racing import race


def _container(barrier: threading.Barrier) -> APIGatewayRestResolver:
    """One container's copy of an api handler module: its own resolver."""
    app = APIGatewayRestResolver()

    @app.get("/approvals/<approval_id>")
    def show(approval_id: str) -> dict[str, Any]:
        barrier.wait(timeout=10)  # both requests are inside their handlers before either reads
        return {"routed": approval_id, "event": app.current_event.path}

    return app


def test_side_by_side_containers_each_read_their_own_event():
    barrier = threading.Barrier(2)
    apps = [_container(barrier), _container(barrier)]
    events = [proxy_event("GET", f"/approvals/a-{n}", {}, {}, b"") for n in range(2)]

    with InProcessLambdaRuntime().installed():
        results = race([lambda n=n: apps[n].resolve(events[n], None) for n in range(2)])

    bodies = [result["body"] for result in results]
    assert bodies == [
        '{"routed":"a-0","event":"/approvals/a-0"}',
        '{"routed":"a-1","event":"/approvals/a-1"}',
    ]
