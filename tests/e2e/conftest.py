"""One local stack per test process; every test starts from an empty merchant ledger."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cartpilot.rollout.model import RolloutSettings
from cartpilot_local.client import CartPilotClient
from cartpilot_local.stack import LocalStack

LOW_RISK_GOAL = "Buy me a pair of running socks and ship them to my home address"


class Stack:
    """The running stack as a client sees it: the API, the outbox and the merchant's ledger."""

    def __init__(self, local: LocalStack) -> None:
        self.local = local
        self.api = CartPilotClient(local.api_url)
        self.merchant = httpx.Client(base_url=local.merchant_url, timeout=10)

    def ledger(self) -> dict[str, list[dict[str, Any]]]:
        ledger: dict[str, list[dict[str, Any]]] = self.merchant.get("/_sandbox/ledger").json()
        return ledger

    def inject_fault(self, route: str, mode: str, times: int = 1, **extra: Any) -> None:
        response = self.merchant.post(
            "/_sandbox/faults", json={"route": route, "mode": mode, "times": times, **extra}
        )
        response.raise_for_status()

    def reprice(self, item_id: str, amount_minor: int, currency: str = "CNY") -> None:
        body = {"item_id": item_id, "currency": currency, "amount": amount_minor}
        self.merchant.post("/_sandbox/prices", json=body).raise_for_status()

    def reset_merchant(self) -> None:
        """An empty ledger, no faults, and fresh connector clients (as if every container were new),
        so one test's open circuit breaker does not fail the next test fast."""
        from cartpilot.wiring.merchants import reset_merchant_cache

        self.merchant.post("/_sandbox/reset").raise_for_status()
        reset_merchant_cache()
        self.forget_order_counts()

    def forget_order_counts(self) -> None:
        """Every test starts with no orders in the last 24 h, or the sandbox's daily order limit
        (a velocity policy) would deny the goals of whichever tests run after the fifth order."""
        import boto3

        table = boto3.resource("dynamodb").Table(f"cartpilot-{self.local.brand}-counters")
        for item in table.scan()["Items"]:
            table.delete_item(Key={"pk": item["pk"]})

    def rollout(self, *, reason: str = "test", **change: Any) -> dict[str, Any]:
        """Changes the brand's rollout as ``cartpilot rollout set`` does (audited)."""
        assert self.local.rollout is not None
        return self.local.rollout.change(actor="operator:test", reason=reason, **change)

    def events(self, goal_id: str) -> list[str]:
        return [record["event"] for record in self.api.audit(goal_id)["records"]]

    def executions_named(self, name: str) -> list[dict[str, Any]]:
        import boto3

        sfn = boto3.client("stepfunctions")
        executions: list[dict[str, Any]] = sfn.list_executions(stateMachineArn=self.local.state_machine_arn)[
            "executions"
        ]
        return [execution for execution in executions if execution["name"] == name]

    def wait_until_flow_ended(self, goal_id: str, timeout: float = 30.0) -> str:
        """Waits until the goal's order flow has ended (after the receipt, nothing the flow runs writes
        to the goal) and returns its status."""
        import boto3

        sfn = boto3.client("stepfunctions")
        (execution,) = self.executions_named(goal_id)
        deadline = time.monotonic() + timeout
        while (
            status := sfn.describe_execution(executionArn=execution["executionArn"])["status"]
        ) == "RUNNING":
            assert time.monotonic() < deadline, f"the order flow of {goal_id} is still running"
            time.sleep(0.05)
        return str(status)

    def step_executions(self, goal_id: str) -> list[dict[str, Any]]:
        """The goal's step loops (Express executions the order flow started), oldest first."""
        import boto3

        sfn = boto3.client("stepfunctions")
        executions: list[dict[str, Any]] = sfn.list_executions(
            stateMachineArn=self.local.steps_state_machine_arn, maxResults=1000
        )["executions"]
        mine = [execution for execution in executions if execution["name"].startswith(f"{goal_id}-steps-")]
        return sorted(mine, key=lambda execution: execution["startDate"])

    def task_errors(self, goal_id: str) -> list[str]:
        """The errors the goal's Lambda tasks failed with, in order, retried ones included, across the
        order flow and its step loops (a step loop's own failure, as the order flow sees it, is left
        out: its cause is one of these)."""
        import boto3

        sfn = boto3.client("stepfunctions")
        (execution,) = self.executions_named(goal_id)
        failed = []
        for arn in [execution["executionArn"], *(e["executionArn"] for e in self.step_executions(goal_id))]:
            history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
            failed += [
                (event["timestamp"], event["id"], event["taskFailedEventDetails"])
                for event in history
                if event["type"] == "TaskFailed"
            ]
        return [
            details["error"]
            for _when, _id, details in sorted(failed, key=lambda item: (item[0], item[1]))
            if details.get("resourceType") != "states"
        ]


# Short merchant timeouts keep the timeout cases of the fault matrix quick; every
# merchant call on loopback answers in milliseconds when no fault is injected.
MERCHANT_READ_TIMEOUT = 1.0


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    with LocalStack(merchant_read_timeout=MERCHANT_READ_TIMEOUT) as local:
        yield local


@pytest.fixture
def stack(local_stack: LocalStack) -> Iterator[Stack]:
    running = Stack(local_stack)
    running.reset_merchant()
    refusals = local_stack.iam.refusals if local_stack.iam is not None else []
    before = len(refusals)
    yield running
    if local_stack.rollout is not None:
        # A test that changed the rollout leaves the next one at stage all.
        local_stack.rollout.initialise(RolloutSettings())
    running.api.close()
    running.merchant.close()
    # A call outside a function's deployed policy fails on AWS: no flow may pass here with one.
    assert refusals[before:] == [], "a function called AWS outside its policy (infra/permissions.py)"
