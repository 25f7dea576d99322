"""What a merchant settles before anything is bought, and what it may ask for during checkout.

Each case ends with a clear goal status and nothing charged: a merchant with no UCP version in
common and one whose payment handlers the brand cannot fund are refused at planning, before any
session opens; a checkout that needs the shopper hands its continue URL over (HANDED_OFF).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cartpilot_local.client import CartPilotClient
from cartpilot_local.servers import serve_in_thread
from tests.e2e.conftest import LOW_RISK_GOAL, Stack
from tests.e2e.stack_process import running_merchant_process, running_stack_process


class FutureMerchant:
    """A UCP merchant that speaks only a version CartPilot does not; it records every request."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/{path:path}", self.answer, methods=["GET", "POST", "PUT"])])
        self.url = ""

    async def answer(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(f"{request.method} {request.url.path}")
        if request.url.path != "/.well-known/ucp":
            return JSONResponse(
                {"code": "version_unsupported", "content": "only 2027-01-01"}, status_code=422
            )
        endpoint = f"{self.url}/ucp"
        document: dict[str, Any] = {
            "ucp": {
                "version": "2027-01-01",
                "services": {
                    "dev.ucp.shopping": [
                        {"version": "2027-01-01", "transport": "rest", "endpoint": endpoint,
                         "spec": "https://ucp.dev/2027-01-01/specification/overview",
                         "schema": "https://ucp.dev/2027-01-01/services/shopping/rest.openapi.json"}
                    ]
                },
                "capabilities": {},
                "payment_handlers": {},
            }
        }  # fmt: skip
        return JSONResponse(document)


@pytest.fixture
def future_merchant() -> Iterator[FutureMerchant]:
    merchant = FutureMerchant()
    server = serve_in_thread(merchant.app)
    merchant.url = server.url
    try:
        yield merchant
    finally:
        server.stop()


def _failure_detail(api: CartPilotClient, goal_id: str) -> str:
    (failed,) = [r for r in api.audit(goal_id)["records"] if r["event"] == "goal.failed"]
    reason: str = failed["detail"]["reason"]
    return reason


def test_a_merchant_with_no_version_in_common_is_refused_at_planning(
    future_merchant: FutureMerchant, tmp_path: Path
) -> None:
    with running_stack_process(tmp_path / "stack.log", merchant_url=future_merchant.url) as stack:
        api = CartPilotClient(stack.api_url)
        goal = api.wait_for(api.submit("user-1", LOW_RISK_GOAL).json()["goalId"])
        why = _failure_detail(api, goal["goalId"])
    assert goal["status"] == "FAILED" and goal["reason"]["code"] == "PLAN_NOT_POSSIBLE"
    # The versions on each side are for whoever reads the audit; the shopper reads the reason.
    assert "2027-01-01" in why and "2026-04-08" in why
    # Discovery only: nothing was created at the merchant.
    assert set(future_merchant.requests) == {"GET /.well-known/ucp"}


def test_a_merchant_whose_payment_handlers_the_brand_cannot_fund_is_refused_before_approval(
    tmp_path: Path,
) -> None:
    with (
        running_merchant_process(
            tmp_path / "merchant.log", ucp_version="2026-04-08", payment_handlers=["com.google.pay"]
        ) as merchant,
        running_stack_process(tmp_path / "stack.log", merchant_url=merchant.url) as stack,
    ):
        api = CartPilotClient(stack.api_url)
        goal = api.wait_for(api.submit("user-1", LOW_RISK_GOAL).json()["goalId"])
        ledger = merchant.ledger()
        outbox = api.outbox()
        why = _failure_detail(api, goal["goalId"])
    assert goal["status"] == "FAILED" and goal["reason"]["code"] == "PLAN_NOT_POSSIBLE"
    assert "com.google.pay" in why
    assert goal["approval"] is None and not [m for m in outbox if m.get("kind") == "approval"]
    assert ledger["orders"] == [] and ledger["charges"] == []


def _notices(stack: Stack, goal_id: str, kind: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        told = [m for m in stack.api.outbox() if m.get("goalId") == goal_id and m.get("kind") == kind]
        if told or time.monotonic() > deadline:
            return told
        time.sleep(0.05)


def test_a_checkout_that_needs_the_shopper_is_handed_off_with_its_continue_url(stack: Stack) -> None:
    stack.merchant.post("/_sandbox/escalate", json={"times": 1}).raise_for_status()
    goal_id = stack.api.submit("user-1", LOW_RISK_GOAL).json()["goalId"]
    goal = stack.api.wait_for(goal_id, timeout=90)

    assert goal["status"] == "HANDED_OFF", goal.get("failure")
    assert goal["continueUrl"].startswith(stack.local.merchant_url + "/checkout/")
    assert stack.merchant.get(goal["continueUrl"]).status_code == 200
    # The goal shows HANDED_OFF as soon as it is recorded; the notice follows in the flow's next state.
    told = _notices(stack, goal_id, "handed_off")
    assert told and told[-1]["continueUrl"] == goal["continueUrl"]
    ledger = stack.ledger()
    assert ledger["orders"] == [] and ledger["charges"] == []
    # The shopper finishes in the merchant's session: CartPilot does not cancel it behind them.
    assert "compensation.completed" not in stack.events(goal_id)
