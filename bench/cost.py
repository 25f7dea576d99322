"""The cost of a goal on AWS, measured on the local stack and priced from a dated price table.

Runs goals of each path on the local stack (the one the end-to-end tests use) one at a time:

- ``auto``: a low-risk goal, auto-approved, completed; its undo window then closes.
- ``approved``: a goal that needs approval, approved through its signed link.
- ``compensated``: the merchant declines the payment (checkout completion answers 400) and the
  executed steps are compensated.
- ``undone``: a low-risk goal completed, then undone by the shopper.
- ``delivered``: the ``auto`` goal's whole life: completed, then its order shipped and delivered
  through the sandbox merchant's test routes (the order webhooks through API Gateway and the api
  function), metered until the tracking sweep has sent the delivered notice and nothing is due
  (``bench/lifecycle.py``).

A goal's executions are its own (named ``<goalId>``) and those named after it on any of the stack's
state machines (the step loop's ``<goalId>-steps-<uuid>``, the undo flow's ``<goalId>-undo``).
Per goal it counts the Standard executions' state transitions (and task retries, billed as
transitions), the Express executions' requests and billed duration (64 MB chunks, 100 ms), Lambda invocations
with each function's configured memory and measured duration, DynamoDB read and write request units
from item sizes, notifications, API requests, KMS/S3/Secrets Manager calls, state-machine log bytes
(the execution's history as Step Functions logs it at the configured level) and the functions' log
bytes; it prices them with ``bench/prices.yaml``. The planner's tokens come from the recorded corpus
(``bench/corpus_tokens.py``): the local stack plans with the rules planner.

    .venv/bin/python bench/cost.py [--goals 3] [--paths auto,approved,compensated,undone,delivered] [--json]
    .venv/bin/python bench/cost.py --capacity

Figures are medians over ``--goals`` goals per path. Durations are in-process on loopback (no
network, no cold starts), so Lambda GB-seconds are a floor; the capacity table assumes a merchant
call takes at least ``assumptions.merchant_call_ms``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

sys.path.append(str(Path(__file__).resolve().parents[1]))  # after PYTHONPATH: a checkout under test wins

from bench.cost_units import (
    PLATFORM_LOG_BYTES_PER_INVOCATION,
    Bound,
    DynamoUnits,
    ExpressRun,
    GoalUsage,
    LambdaRun,
    PriceTable,
    binding,
    concurrency_bound,
    express_billed_memory_mb,
    express_gb_seconds,
    goal_api_call,
    goal_dynamo_request,
    goals_per_second,
    load_prices,
    logging_settings,
    median,
    model_cost,
    module_constants,
    open_executions_bound,
    per_thousand,
    price_goal,
    request_units,
    state_machine_log_bytes,
)
from bench.lifecycle import SHIPMENT_STEPS, GoalsTable

PATHS = ("auto", "approved", "compensated", "undone", "delivered")
LOW_RISK_GOAL = "Buy me a pair of running socks and ship them to my home address"
APPROVAL_GOAL = "Buy me 2 pairs of running shoes, size 42, and gift-wrap them"
# A sandbox shopper (goals are taken only for the brand's known users).
SHOPPER = "user-1"
PAYMENT_STEP = "POST /checkout-sessions/{id}/complete"
WAIT_SECONDS = 120.0
# What the wait for a completed goal's undo window finds when the flow ends at the receipt instead.
ENDED_AT_RECEIPT = "ended at the receipt"


def _poll(what: str, check: Callable[[], Any], timeout: float = WAIT_SECONDS) -> Any:
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


@dataclass
class Measured:
    path: str
    goal_id: str
    status: str
    usage: GoalUsage
    usd: dict[str, float]
    # How long the goal kept a Standard execution open, and whether it stayed open for the undo window.
    open_seconds: float = 0.0
    undo_window_open: bool = False


@dataclass(frozen=True)
class GoalExecution:
    """One execution of the goal: its own flow (named ``<goalId>``) or one it started (``<goalId>-...``)."""

    arn: str
    name: str
    express: bool
    definition_bytes: int


def goal_execution_names(goal_id: str, names: Iterable[str]) -> list[str]:
    """The goal's own execution and those named after it: the step loop's ``<goalId>-steps-<uuid>``,
    the undo flow's ``<goalId>-undo``."""
    return [name for name in names if name == goal_id or name.startswith(f"{goal_id}-")]


def execution_seconds(history: Iterable[dict[str, Any]]) -> float:
    """From an execution's first history event to its last."""
    times = [event["timestamp"] for event in history if event.get("timestamp") is not None]
    return (max(times) - min(times)).total_seconds() if times else 0.0


def task_retries(history: Iterable[dict[str, Any]]) -> int:
    """Task attempts beyond the first of each entered Task state (billed as transitions)."""
    events = list(history)
    entered = sum(1 for event in events if event["type"] == "TaskStateEntered")
    scheduled = sum(1 for event in events if event["type"] in ("TaskScheduled", "LambdaFunctionScheduled"))
    return max(0, scheduled - entered)


_DATA_FIELDS = ("input", "output")


def largest_payload_bytes(history: Iterable[dict[str, Any]]) -> int:
    """The largest input or output an execution's states carried (its execution data size)."""
    largest = 0
    for event in history:
        for name, details in event.items():
            if name.endswith("EventDetails") and isinstance(details, dict):
                for field_name in _DATA_FIELDS:
                    value = details.get(field_name)
                    if isinstance(value, str):
                        largest = max(largest, len(value.encode()))
    return largest


def express_run(history: list[dict[str, Any]], definition_bytes: int) -> ExpressRun:
    """An Express execution as billed: its duration (first to last history event), memory from its
    definition and data (no Map or Parallel state: the smallest 64 MB chunk), and, for comparison,
    the transitions a Standard execution would have billed."""
    return ExpressRun(
        duration_ms=execution_seconds(history) * 1000,
        memory_mb=express_billed_memory_mb(definition_bytes, largest_payload_bytes(history)),
        transitions=sum(1 for event in history if str(event["type"]).endswith("StateEntered")),
    )


class CostBench:
    """Runs goals one at a time on a running local stack and meters each."""

    def __init__(self, local: Any, meter: Any, prices: PriceTable) -> None:
        import boto3

        from cartpilot_local.client import CartPilotClient
        from cartpilot_local.stack import FUNCTIONS

        self.local = local
        self.meter = meter
        self.prices = prices
        self.client = CartPilotClient(local.api_url, timeout=60)
        self.sfn = boto3.client("stepfunctions", region_name="us-east-1")
        # Sweeps on a timer poll at a cost per minute, not per goal; what they write and send for a
        # goal (its notices, its tracking) is the goal's: goals run one at a time, so in a goal's
        # window their writes and sends are that goal's.
        self.per_goal_functions = {spec.name for spec in FUNCTIONS if not spec.scheduled}
        self.sweep_functions = {spec.name for spec in FUNCTIONS if spec.scheduled}
        self.memory = _configured_memory()
        self.log_level, self.include_data = logging_settings(_infra_dir() / "orchestration.py")
        self.goals_table = GoalsTable(local.brand)

    def close(self) -> None:
        self.client.close()

    def run(self, path: str, number: int) -> Measured:
        from cartpilot_local.client import CartPilotClient

        # A fresh connection per goal: the gateway drops connections idle between goals.
        self.client.close()
        self.client = CartPilotClient(self.local.api_url, timeout=60)
        # The window then holds the sweeps' work for this goal alone (not an earlier goal's notice).
        _poll("the sweeps to finish earlier goals' work", lambda: not self.goals_table.sweeps_busy())
        runtime = self.local.runtime
        first_invocation = len(runtime.invocations)
        mark = self.meter.snapshot()
        if path == "compensated":
            self._inject_fault(PAYMENT_STEP, "error_400")
        goal = APPROVAL_GOAL if path == "approved" else LOW_RISK_GOAL
        self._forget_order_counts()
        response = self.client.submit(SHOPPER, goal, key=f"cost-{path}-{number}-{uuid.uuid4()}")
        if response.status_code >= 400:
            raise RuntimeError(f"the {path} goal was refused: {response.text}")
        goal_id = response.json()["goalId"]
        execution_arn = _poll(f"the execution of {goal_id}", lambda: self._execution_arn(goal_id))
        if path == "approved":
            link = _poll(
                f"the approval link of {goal_id}",
                lambda: self._approval_link(goal_id) or self._ended_early(goal_id, execution_arn),
            )
            self.client.open_link(link).raise_for_status()
            self.client.decide(link, "approve").raise_for_status()
        window_open = False
        if path in ("auto", "approved", "undone", "delivered"):
            # A flow that parks in its undo window (a task token), or one that ends at the receipt
            # and starts an undo flow only when the shopper asks.
            token = _poll(
                f"the undo window or the completion of {goal_id}",
                lambda: (
                    self._undo_token(goal_id, first_invocation)
                    or self._ended_at_receipt(goal_id, execution_arn)
                ),
            )
            window_open = token != ENDED_AT_RECEIPT
            if path == "undone":
                undo = self.client.undo(goal_id)
                if undo.status_code >= 400:
                    raise RuntimeError(f"undo of {goal_id} refused: {undo.text}")
            elif window_open:
                from cartpilot_local.task_timeouts import time_out_waiting_task

                # The window's end, now: the flow takes the same path as when the timeout passes.
                time_out_waiting_task(token, "us-east-1")
        _poll(f"the end of {goal_id}'s executions", lambda: self._all_finished(goal_id))
        if path == "delivered":
            self._ship_and_deliver(goal_id)
        else:
            # The status notices the goal's moves queued (sent by the notices sweep) are its cost too.
            _poll(f"the notices of {goal_id}", lambda: not self.goals_table.sweeps_busy())
            self._await_sweep_runs()
        executions = self._goal_executions(goal_id)
        usage = self._usage(executions, first_invocation, mark)
        view = self.client.goal(goal_id)  # after metering: the bench's own read is no cost
        status = view["status"]
        if path == "delivered":
            status = f"{status} ({(view.get('tracking') or {}).get('status')})"
        return Measured(
            path,
            goal_id,
            status,
            usage,
            price_goal(usage, self.prices),
            open_seconds=sum(
                self._open_seconds(execution) for execution in executions if not execution.express
            ),
            undo_window_open=window_open,
        )

    def _ship_and_deliver(self, goal_id: str) -> None:
        """The completed goal's order ships, then is delivered, each through the sandbox merchant's
        test route (its order webhook goes through API Gateway and the api function); each waits until
        the tracking sweep has sent the shopper's notice. The last waits too until the goal has nothing
        due (the completed goal's status notices) and the sweeps that did the work have returned."""
        import httpx

        order_id = _poll(f"the order of {goal_id}", lambda: self.goals_table.order_id(goal_id))
        kinds: tuple[str, ...] = ()
        for number, (step, kind) in enumerate(SHIPMENT_STEPS, start=1):
            response = httpx.post(f"{self.local.merchant_url}/_sandbox/orders/{order_id}/{step}", timeout=30)
            response.raise_for_status()
            webhook = response.json().get("webhook") or {}
            if not 200 <= int(webhook.get("status") or 0) < 300:
                raise RuntimeError(f"the {step} webhook of {goal_id} was not taken: {webhook}")
            kinds += (kind,)
            final = number == len(SHIPMENT_STEPS)
            self._await_settled(goal_id, kinds, final=final)

        self._await_sweep_runs()

    def _await_sweep_runs(self) -> None:
        """The sweeps' invocations are recorded when they return: waits for one more run of each."""

        def sweep_runs() -> Counter[str]:
            return Counter(
                invocation.function_name
                for invocation in self.local.runtime.invocations
                if invocation.function_name in self.sweep_functions
            )

        before = sweep_runs()
        _poll(
            "the sweeps' runs to return",
            lambda: all(sweep_runs()[name] > before[name] for name in self.sweep_functions),
        )

    def _await_settled(self, goal_id: str, kinds: tuple[str, ...], *, final: bool) -> None:
        waiting: list[str] = []

        def settled() -> bool:
            waiting[:] = self.goals_table.awaited(goal_id, kinds, final=final)
            return not waiting

        try:
            _poll(f"the {kinds[-1]} notice of {goal_id}", settled)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; still waiting for {', '.join(waiting)}") from exc

    # --- what the stack did -----------------------------------------------------------------

    def _forget_order_counts(self) -> None:
        """Each goal starts with no orders in the shopper's last 24 h, as the first of the day does,
        so the sandbox's daily order limit never denies a later one (not metered: no function's call)."""
        import boto3

        table = boto3.resource("dynamodb", region_name="us-east-1").Table(
            f"cartpilot-{self.local.brand}-counters"
        )
        for item in table.scan()["Items"]:
            table.delete_item(Key={"pk": item["pk"]})

    def _inject_fault(self, route: str, mode: str) -> None:
        import httpx

        body = {"route": route, "mode": mode, "times": 1}
        httpx.post(f"{self.local.merchant_url}/_sandbox/faults", json=body, timeout=10).raise_for_status()

    def _execution_arn(self, goal_id: str) -> str | None:
        executions = self.sfn.list_executions(stateMachineArn=self.local.state_machine_arn)["executions"]
        for execution in executions:
            if execution["name"] == goal_id:
                return str(execution["executionArn"])
        return None

    def _finished(self, execution_arn: str) -> bool:
        return self.sfn.describe_execution(executionArn=execution_arn)["status"] != "RUNNING"

    def _goal_executions(self, goal_id: str) -> list[GoalExecution]:
        """The goal's executions across the stack's state machines (the order flow, its step loop,
        the undo flow), found by name."""
        found: list[GoalExecution] = []
        for machine in (
            self.sfn.get_paginator("list_state_machines").paginate().build_full_result()["stateMachines"]
        ):
            arn = machine["stateMachineArn"]
            executions = (
                self.sfn.get_paginator("list_executions").paginate(stateMachineArn=arn).build_full_result()
            )["executions"]
            names = set(goal_execution_names(goal_id, (execution["name"] for execution in executions)))
            if not names:
                continue
            described = self.sfn.describe_state_machine(stateMachineArn=arn)
            for execution in executions:
                if execution["name"] in names:
                    found.append(
                        GoalExecution(
                            arn=str(execution["executionArn"]),
                            name=str(execution["name"]),
                            express=described.get("type") == "EXPRESS",
                            definition_bytes=len(str(described.get("definition", "")).encode()),
                        )
                    )
        return found

    def _all_finished(self, goal_id: str) -> bool:
        executions = self._goal_executions(goal_id)
        return bool(executions) and all(self._finished(execution.arn) for execution in executions)

    def _open_seconds(self, execution: GoalExecution) -> float:
        description = self.sfn.describe_execution(executionArn=execution.arn)
        stop = description.get("stopDate")
        return (stop - description["startDate"]).total_seconds() if stop else 0.0

    def _ended_at_receipt(self, goal_id: str, execution_arn: str) -> str | bool:
        """``ENDED_AT_RECEIPT`` when the flow succeeded with no undo window open (the undo flow starts
        on request); fails the run when it ended otherwise (else False). Reads the execution, not the
        goal: a read through the API would be metered as the goal's."""
        status = self.sfn.describe_execution(executionArn=execution_arn)["status"]
        if status == "SUCCEEDED":
            return ENDED_AT_RECEIPT
        return self._ended_early(goal_id, execution_arn)

    def _ended_early(self, goal_id: str, execution_arn: str) -> bool:
        """Fails the run when the flow ended before the step the path waits for (else False)."""
        if self._finished(execution_arn):
            goal = self.client.goal(goal_id)
            raise RuntimeError(
                f"{goal_id} ended {goal['status']} before the path's next step: {goal.get('failure')}"
            )
        return False

    def _approval_link(self, goal_id: str) -> Any:
        from cartpilot_local.client import ApprovalLink

        for message in reversed(self.local.outbox()):
            if message.get("goalId") == goal_id and message.get("kind") == "approval_request":
                return ApprovalLink.parse(message["link"])
        return None

    def _undo_token(self, goal_id: str, since: int) -> str | None:
        """The task token the flow parked when it opened the undo window (once that call returned)."""
        for invocation in self.local.runtime.invocations[since:]:
            event = invocation.event if isinstance(invocation.event, dict) else {}
            if (
                event.get("goalId") == goal_id
                and event.get("kind") == "undo_window"
                and event.get("taskToken")
            ):
                return str(event["taskToken"])
        return None

    def _history(self, execution_arn: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        arguments: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
        while True:
            page = self.sfn.get_execution_history(**arguments)
            events.extend(dict(event) for event in page["events"])
            if not page.get("nextToken"):
                return events
            arguments["nextToken"] = page["nextToken"]

    def _usage(self, executions: list[GoalExecution], first_invocation: int, mark: Any) -> GoalUsage:
        usage = GoalUsage()
        for execution in executions:
            # Express histories are not an AWS API (CloudWatch Logs has them); moto's serves them here.
            history = self._history(execution.arn)
            # The step loop's log group logs at the order flow's level.
            usage.state_machine_log_bytes += state_machine_log_bytes(
                history, execution.arn, level=self.log_level, include_data=self.include_data
            )
            if execution.express:
                usage.express_runs.append(express_run(history, execution.definition_bytes))
                continue
            usage.transitions += _transitions(self.sfn, execution.arn, history)
            usage.retries += task_retries(history)
        ours = self.per_goal_functions
        for invocation in self.local.runtime.invocations[first_invocation:]:
            if invocation.function_name in ours:
                usage.invocations.append(
                    LambdaRun(
                        invocation.function_name,
                        self.memory.get(invocation.function_name, 512),
                        getattr(invocation, "duration_ms", 0.0),
                    )
                )
        usage.api_requests = sum(1 for run in usage.invocations if run.function == "api")
        usage.api_routes = [
            f"{invocation.event.get('httpMethod', '')} {invocation.event.get('path', '')}"
            for invocation in self.local.runtime.invocations[first_invocation:]
            if invocation.function_name == "api" and isinstance(invocation.event, dict)
        ]
        by_table: dict[str, DynamoUnits] = {}
        for request in self.meter.dynamodb[mark.dynamodb :]:
            if goal_dynamo_request(request, ours, self.sweep_functions):
                units = request_units(request)
                usage.dynamo = usage.dynamo + units
                for table in request.table.split(","):
                    by_table[table] = by_table.get(table, DynamoUnits()) + units
        usage.dynamo_by_table = by_table
        # A sweep's sends and the audit anchors of the records it writes for the goal.
        calls = Counter(
            (call.service, call.operation)
            for call in self.meter.calls[mark.calls :]
            if goal_api_call(call, ours, self.sweep_functions)
        )
        usage.sns_publishes = calls[("sns", "Publish")] + calls[("sns", "PublishBatch")]
        usage.emails = sum(count for (service, _op), count in calls.items() if service in ("ses", "sesv2"))
        usage.kms_asymmetric = (
            calls[("kms", "Sign")] + calls[("kms", "Verify")] + calls[("kms", "GetPublicKey")]
        )
        usage.kms_symmetric = sum(
            count
            for (service, op), count in calls.items()
            if service == "kms" and op in ("Encrypt", "Decrypt")
        )
        usage.s3_puts = (
            calls[("s3", "PutObject")] + calls[("s3", "CopyObject")] + calls[("s3", "ListObjectsV2")]
        )
        usage.s3_gets = calls[("s3", "GetObject")] + calls[("s3", "HeadObject")]
        usage.secrets_calls = sum(
            count for (service, _op), count in calls.items() if service == "secretsmanager"
        )
        usage.sms = 0  # the low-risk and approval paths send no one-time codes
        emitted = sum(
            count - mark.log_bytes.get(function, 0)
            for function, count in self.meter.log_bytes.items()
            if function in ours
        )
        usage.lambda_log_bytes = emitted + PLATFORM_LOG_BYTES_PER_INVOCATION * len(usage.invocations)
        return usage


def _transitions(sfn: Any, execution_arn: str, history: Iterable[dict[str, Any]]) -> int:
    try:
        from cartpilot_local.execution_history import state_transitions
    except ImportError:  # a checkout without it: count the same events here
        return sum(1 for event in history if str(event["type"]).endswith("StateEntered"))
    return len(state_transitions(sfn, execution_arn))


def _infra_dir() -> Path:
    import infra

    return Path(infra.__file__).resolve().parent


def _configured_memory() -> dict[str, int]:
    from infra.function_specs import FUNCTIONS

    return {spec.name: spec.memory_mb for spec in FUNCTIONS}


# --- summaries ----------------------------------------------------------------------------------


def summarise(runs: list[Measured]) -> dict[str, Any]:
    """Medians over one path's goals, in the shape ``--json`` prints."""

    def med(values: Iterable[float]) -> float:
        return median(list(values))

    usages = [run.usage for run in runs]
    services = runs[0].usd.keys()
    breakdown = {name: per_thousand(med(run.usd[name] for run in runs)) for name in services}
    functions = Counter(run.function for run in usages[0].invocations)
    return {
        "transitions": med(u.transitions for u in usages),
        "retries": med(u.retries for u in usages),
        # The step loop's Express executions: requests and duration billed, transitions not.
        "express_requests": med(u.express_requests for u in usages),
        "express_transitions": med(u.express_transitions for u in usages),
        "express_gb_seconds": round(
            med(sum(express_gb_seconds(r) for r in u.express_runs) for u in usages), 4
        ),
        # How long a goal keeps a Standard execution open (its flow, its undo flow), and whether
        # it stays open through the undo window.
        "standard_open_seconds": round(med(run.open_seconds for run in runs), 3),
        "undo_window_open": any(run.undo_window_open for run in runs),
        "invocations": med(len(u.invocations) for u in usages),
        "ddb_requests": med(u.dynamo.requests for u in usages),
        "ddb_read_units": med(u.dynamo.read_units for u in usages),
        "ddb_write_units": med(u.dynamo.write_units for u in usages),
        "notifications": med(u.notifications for u in usages),
        "api_requests": med(u.api_requests for u in usages),
        "log_bytes": med(u.log_bytes for u in usages),
        "state_machine_log_bytes": med(u.state_machine_log_bytes for u in usages),
        "lambda_log_bytes": med(u.lambda_log_bytes for u in usages),
        "lambda_gb_seconds": round(
            med(sum(r.memory_mb / 1024 * r.duration_ms / 1000 for r in u.invocations) for u in usages), 4
        ),
        "usd_per_1000_goals": per_thousand(med(sum(run.usd.values()) for run in runs)),
        "breakdown": breakdown,
        "functions": {
            name: {
                "invocations": count,
                "memory_mb": next(r.memory_mb for r in usages[0].invocations if r.function == name),
                "median_ms": round(
                    med(r.duration_ms for u in usages for r in u.invocations if r.function == name), 1
                ),
            }
            for name, count in sorted(functions.items())
        },
        "ddb_by_table": {
            table: {
                "read_units": med(u.dynamo_by_table.get(table, DynamoUnits()).read_units for u in usages),
                "write_units": med(u.dynamo_by_table.get(table, DynamoUnits()).write_units for u in usages),
            }
            for table in sorted({t for u in usages for t in u.dynamo_by_table})
        },
        "api_routes": usages[0].api_routes,
        "statuses": sorted({run.status for run in runs}),
        "goals": len(runs),
    }


CACHE_RULE = "explicit cache, cold between plans"
CACHE_ASSUMPTION = (
    "DashScope explicit cache (cache_control on the system and the last user message), cold between "
    "plans: each plan's first call writes its prompt up to the goal at 125% of the input price, later "
    "calls read the longest prefix ending at an earlier call's marker at 10% and write up to their own "
    "last marker at 125%; the tool calls and results after the last user message are plain input"
)


def planner_figures(prices: PriceTable, cases: list[Any] | None = None) -> dict[str, Any]:
    """Tokens per plan over the recorded corpus, with the planner as shipped, and their price.

    Token counts are medians per plan, as the target is set; the price is the mean per plan (what
    1,000 plans cost, since a plan the rules planner serves costs nothing and a long one a lot).
    The headline prices the explicit cache the sandbox brand ships with (``contextCache: explicit``)
    by its documented rule, cold between plans (``bench/corpus_tokens.py`` simulates it); beside it:
    the same with the system prompt and tools warm between plans, no cache at all, the implicit
    cache's hits as the provider reported them when the answers were recorded, and the implicit
    cache's documented rule simulated (hits it may give, not hits it promises)."""
    from bench.corpus_tokens import corpus_usage

    cases = corpus_usage() if cases is None else cases
    with_model = [case for case in cases if case.model_calls]

    def per_thousand_plans(
        cached: Callable[[Any], int],
        created: Callable[[Any], int] = lambda case: 0,
        cache: Literal["implicit", "explicit"] = "implicit",
        over: list[Any] = cases,
    ) -> float:
        return per_thousand(
            statistics.fmean(
                model_cost(
                    c.prompt_tokens,
                    c.completion_tokens,
                    prices,
                    cached_prompt_tokens=cached(c),
                    cache_creation_tokens=created(c),
                    cache=cache,
                )
                for c in over
            )
            if over
            else 0.0
        )

    return {
        "prompt_tokens_median": statistics.median(case.prompt_tokens for case in cases),
        "completion_tokens_median": statistics.median(case.completion_tokens for case in cases),
        "cache_assumption": CACHE_ASSUMPTION,
        "cache_rule": CACHE_RULE,
        "cached_prompt_tokens_mean": round(
            statistics.fmean(case.explicit_cached_prompt_tokens_cold for case in cases), 1
        ),
        "cache_creation_tokens_mean": round(
            statistics.fmean(case.explicit_cache_creation_tokens_cold for case in cases), 1
        ),
        "usd_per_1000_plans": per_thousand_plans(
            lambda case: case.explicit_cached_prompt_tokens_cold,
            lambda case: case.explicit_cache_creation_tokens_cold,
            "explicit",
        ),
        # The headline rule over the plans the rules planner does not serve first: what a plan that
        # reaches the model costs (the corpus mean above counts the rules planner's plans at zero).
        "usd_per_1000_model_plans": per_thousand_plans(
            lambda case: case.explicit_cached_prompt_tokens_cold,
            lambda case: case.explicit_cache_creation_tokens_cold,
            "explicit",
            with_model,
        ),
        "usd_per_1000_plans_explicit_warm": per_thousand_plans(
            lambda case: case.explicit_cached_prompt_tokens_warm,
            lambda case: case.explicit_cache_creation_tokens_warm,
            "explicit",
        ),
        "usd_per_1000_plans_uncached": per_thousand_plans(lambda case: 0),
        "usd_per_1000_plans_as_recorded": per_thousand_plans(lambda case: case.recorded_cached_prompt_tokens),
        "usd_per_1000_plans_implicit_warm": per_thousand_plans(lambda case: case.cached_prompt_tokens),
        "usd_per_1000_plans_implicit_cold": per_thousand_plans(lambda case: case.cached_prompt_tokens_cold),
        "prompt_tokens_mean": round(statistics.fmean(case.prompt_tokens for case in cases), 1),
        "completion_tokens_mean": round(statistics.fmean(case.completion_tokens for case in cases), 1),
        "model_calls_mean": round(statistics.fmean(case.model_calls for case in cases), 2),
        "prompt_tokens_median_when_the_model_plans": statistics.median(c.prompt_tokens for c in with_model)
        if with_model
        else 0,
        "cases": len(cases),
        "cases_the_model_planned": len(with_model),
        "model": prices.prices.get("model_name", ""),
    }


# --- capacity -----------------------------------------------------------------------------------


def capacity(
    auto: dict[str, Any], approved: dict[str, Any] | None, planner: dict[str, Any] | None, prices: PriceTable
) -> list[tuple[Bound, str]]:
    """Each bound of one brand stack, with its scope: ``stack`` bounds all goals together; the
    others bound a single shopper, goal, approver's address or the approvals alone."""
    from cartpilot.brands.config import load_brand
    from infra.function_specs import FUNCTIONS
    from infra.settings import DEFAULT_MUTATING_CONCURRENCY

    quotas = prices.quotas
    api = module_constants(
        _infra_dir() / "api.py",
        ("STAGE_RATE_LIMIT", "STAGE_BURST_LIMIT", "APPROVAL_RATE_LIMIT", "APPROVAL_BURST_LIMIT"),
    )
    merchant_floor_ms = float(prices.assumptions.get("merchant_call_ms", 500))
    functions = auto["functions"]
    bounds: list[tuple[Bound, str]] = []

    def add(name: str, limit: str, per_goal: str, rate: float, raise_by: str, scope: str = "stack") -> None:
        bounds.append((Bound(name, limit, per_goal, rate, raise_by), scope))

    transitions = auto["transitions"] + auto["retries"]
    starts = quotas["stepfunctions_start_execution_refill_per_second"]
    add(
        "Step Functions StartExecution",
        f"{starts}/s, bucket {quotas['stepfunctions_start_execution_bucket']}",
        "1 start",
        goals_per_second(starts, 1),
        "quota increase (StartExecution throttle)",
    )
    refill = quotas["stepfunctions_state_transition_refill_per_second"]
    add(
        "Step Functions state transitions",
        f"{refill}/s, bucket {quotas['stepfunctions_state_transition_bucket']}",
        f"{transitions:g} transitions",
        goals_per_second(refill, transitions),
        "fewer transitions per goal; quota increase (StateTransition)",
    )
    express_starts = auto.get("express_requests", 0)
    if express_starts:
        express_refill = quotas["stepfunctions_express_start_execution_refill_per_second"]
        add(
            "Step Functions StartExecution (Express)",
            f"{express_refill}/s, bucket {quotas['stepfunctions_express_start_execution_bucket']}",
            f"{express_starts:g} start(s)",
            goals_per_second(express_refill, express_starts),
            "quota increase (StartExecution for Express)",
        )
    open_executions = quotas["stepfunctions_open_executions"]
    if auto.get("undo_window_open", True):
        # A completed goal's execution stays open through the undo window, waiting for an undo.
        lifetime: float = load_brand("sandbox").undoWindowSeconds + 60
        add(
            "Step Functions open executions",
            f"{open_executions:,} open",
            f"open {lifetime / 3600:.0f} h (undo window)",
            open_executions_bound(open_executions, lifetime),
            "end the execution at completion and start undo on request, or a shorter undo window",
        )
    else:
        # The execution ends at the receipt: only goals in flight hold one (Express ones do not count).
        lifetime = float(auto["standard_open_seconds"])
        add(
            "Step Functions open executions",
            f"{open_executions:,} open",
            f"open {lifetime:.2f} s (measured)",
            open_executions_bound(open_executions, lifetime),
            "quota increase (open executions)",
        )

    busy = sum(info["invocations"] * info["median_ms"] / 1000 for info in functions.values())
    mutating = [spec.name for spec in FUNCTIONS if spec.mutates_merchant and spec.name in functions]
    reserved = DEFAULT_MUTATING_CONCURRENCY * len(mutating)
    add(
        "Lambda account concurrency",
        f"{quotas['lambda_account_concurrency']} ({reserved} reserved)",
        f"{busy:.2f} s busy",
        concurrency_bound(quotas["lambda_account_concurrency"] - reserved, 1, busy),
        "quota increase (Lambda concurrent executions)",
    )
    for name in mutating:
        info = functions[name]
        seconds = max(info["median_ms"], merchant_floor_ms) / 1000
        add(
            f"Lambda {name} reserved concurrency",
            str(DEFAULT_MUTATING_CONCURRENCY),
            f"{info['invocations']} x {seconds:.2f} s",
            concurrency_bound(DEFAULT_MUTATING_CONCURRENCY, info["invocations"], seconds),
            "-c mutatingConcurrency=N, as far as the merchant's own limits allow",
        )

    def table_units(suffix: str) -> dict[str, float]:
        for table, units in auto["ddb_by_table"].items():
            if table.endswith(suffix):
                return dict(units)
        return {"read_units": 0.0, "write_units": 0.0}

    partition = quotas["dynamodb_partition_write_units_per_second"]
    counters = table_units("-counters")["write_units"]
    add(
        "DynamoDB hot key: a shopper's counters",
        f"{partition} WCU/s per partition",
        f"{counters:g} WU",
        goals_per_second(partition, counters),
        "nothing: the daily order limit stops a shopper long before",
        "one shopper",
    )
    # A goal's own items are no hot key: it writes a few dozen units over its whole life, spread over
    # its head item and its parts, far below a partition's 1,000 WCU/s; the goals table's rate is the bound.
    goal_writes = table_units("-goals")["write_units"]
    per_table = quotas["dynamodb_table_write_units_per_second"]
    add(
        "DynamoDB goals table (on-demand)",
        f"{per_table:,} WRU/s per table",
        f"{goal_writes:g} WU",
        goals_per_second(per_table, goal_writes),
        "quota increase (table throughput); smaller goal writes",
    )

    stage = api.get("STAGE_RATE_LIMIT", 0)
    add(
        "API Gateway stage throttle",
        f"{stage}/s, burst {api.get('STAGE_BURST_LIMIT', 0)}",
        f"{auto['api_requests']:g} requests",
        goals_per_second(stage, auto["api_requests"]),
        f"STAGE_RATE_LIMIT in infra/api.py (account {quotas['apigateway_account_requests_per_second']:,}/s)",
    )
    if approved is not None:
        per_approval = max(0.0, approved["api_requests"] - auto["api_requests"])
        add(
            "API Gateway approval routes",
            f"{api.get('APPROVAL_RATE_LIMIT', 0)}/s",
            f"{per_approval:g} requests",
            goals_per_second(api.get("APPROVAL_RATE_LIMIT", 0), per_approval),
            "APPROVAL_RATE_LIMIT in infra/api.py",
            "approvals",
        )
        add(
            "WAF per address on /approvals/",
            "100 / 300 s per IP",
            f"{per_approval:g} requests",
            goals_per_second(100 / 300, per_approval),
            "APPROVAL_LINKS_PER_ADDRESS in infra/api.py",
            "one address",
        )
    if planner is not None:
        # Rate limits meet the average plan, not the median one.
        calls = planner["model_calls_mean"]
        tokens = planner["prompt_tokens_mean"] + planner["completion_tokens_mean"]
        add(
            "Model requests per minute",
            f"{quotas['model_requests_per_minute']:,} RPM",
            f"{calls:g} calls",
            goals_per_second(quotas["model_requests_per_minute"] / 60, calls),
            "provider quota increase; the rules planner first where it is confident",
        )
        add(
            "Model tokens per minute",
            f"{quotas['model_tokens_per_minute']:,} TPM",
            f"{tokens:,.0f} tokens",
            goals_per_second(quotas["model_tokens_per_minute"] / 60, tokens),
            "provider quota increase; fewer prompt tokens per plan",
        )
    return bounds


def capacity_json(bounds: list[tuple[Bound, str]]) -> dict[str, Any]:
    stack_bounds = [bound for bound, scope in bounds if scope == "stack"]
    first = binding(stack_bounds)
    return {
        "bounds": [
            {
                "bound": b.name,
                "limit": b.limit,
                "per_goal": b.per_goal,
                "scope": scope,
                "goals_per_second": None if math.isinf(b.goals_per_second) else round(b.goals_per_second, 2),
                "raise": b.raise_by,
            }
            for b, scope in bounds
        ],
        "binds_first": first.name,
        "goals_per_second": round(first.goals_per_second, 2),
    }


# --- output -------------------------------------------------------------------------------------


def print_table(result: dict[str, Any]) -> None:
    paths = result["paths"]
    rows = [
        ("status", lambda p: ",".join(p["statuses"])),
        ("state transitions", lambda p: f"{p['transitions']:g} (+{p['retries']:g} retries)"),
        ("Express requests", lambda p: f"{p.get('express_requests', 0):g}"),
        ("Express transitions", lambda p: f"{p.get('express_transitions', 0):g}"),
        ("Lambda invocations", lambda p: f"{p['invocations']:g}"),
        ("Lambda GB-s", lambda p: f"{p['lambda_gb_seconds']:.3f}"),
        ("DynamoDB requests", lambda p: f"{p['ddb_requests']:g}"),
        ("DynamoDB read units", lambda p: f"{p['ddb_read_units']:g}"),
        ("DynamoDB write units", lambda p: f"{p['ddb_write_units']:g}"),
        ("notifications", lambda p: f"{p['notifications']:g}"),
        ("API requests", lambda p: f"{p['api_requests']:g}"),
        ("state-machine log KB", lambda p: f"{p['state_machine_log_bytes'] / 1024:.1f}"),
        ("Lambda log KB", lambda p: f"{p['lambda_log_bytes'] / 1024:.1f}"),
        ("USD / 1,000 goals", lambda p: f"{p['usd_per_1000_goals']:.4f}"),
    ]
    names = list(paths)
    print(
        f"prices of {result['prices']['date']} ({result['prices']['region']}); medians of "
        f"{max(p['goals'] for p in paths.values())} goal(s) per path"
    )
    width = max(18, 2 + max(len(cell(paths[name])) for _label, cell in rows for name in names))
    print(f"{'':24}" + "".join(f"{name:>{width}}" for name in names))
    for label, cell in rows:
        print(f"{label:24}" + "".join(f"{cell(paths[name]):>{width}}" for name in names))
    print()
    for name in names:
        parts = ", ".join(f"{service} {usd:.4f}" for service, usd in paths[name]["breakdown"].items() if usd)
        print(f"{name:12} USD/1,000 by service: {parts}")
    planner = result.get("planner")
    if planner:
        print()
        print(
            f"planner ({planner['model']}, {planner['cases']} corpus cases, "
            f"{planner['cases_the_model_planned']} planned by the model): median "
            f"{planner['prompt_tokens_median']:,.0f} prompt + {planner['completion_tokens_median']:,.0f} "
            f"completion tokens per plan (mean {planner['prompt_tokens_mean']:,.0f} + "
            f"{planner['completion_tokens_mean']:,.0f}, {planner['model_calls_mean']:g} calls): "
            f"USD {planner['usd_per_1000_plans']:.4f} per 1,000 plans (corpus mean), USD "
            f"{planner['usd_per_1000_model_plans']:.4f} per 1,000 plans that reach the model"
        )
        print(
            f"  cache: {planner['cache_assumption']}; mean {planner['cached_prompt_tokens_mean']:,.0f} prompt "
            f"tokens read from the cache and {planner['cache_creation_tokens_mean']:,.0f} written per plan"
        )
        print(
            f"  beside it: explicit, system prompt and tools warm between plans USD "
            f"{planner['usd_per_1000_plans_explicit_warm']:.4f}; no cache USD "
            f"{planner['usd_per_1000_plans_uncached']:.4f}; implicit with the hits the provider reported "
            f"when recorded USD {planner['usd_per_1000_plans_as_recorded']:.4f}; implicit by its documented "
            f"rule (hits not guaranteed) warm USD {planner['usd_per_1000_plans_implicit_warm']:.4f}, cold USD "
            f"{planner['usd_per_1000_plans_implicit_cold']:.4f}"
        )
    if "auto" in paths and "usd_per_1000_goals_with_planner" in result:
        print(
            f"auto path with the model planner: USD {result['usd_per_1000_goals_with_planner']:.4f} per 1,000 goals "
            f"(planner: {planner['cache_rule'] if planner else 'no cache'})"
        )


def print_capacity(table: dict[str, Any]) -> None:
    print(f"{'bound':44}{'limit':34}{'per goal':30}{'goals/s':>10}  scope        raise")
    for row in table["bounds"]:
        rate = "unbounded" if row["goals_per_second"] is None else f"{row['goals_per_second']:,.2f}"
        print(
            f"{row['bound']:44}{row['limit']:34}{row['per_goal']:30}{rate:>10}  {row['scope']:12} {row['raise']}"
        )
    print()
    print(f"binds first: {table['binds_first']} at {table['goals_per_second']:,.2f} goals/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goals", type=int, default=3, help="goals per path (medians are reported)")
    parser.add_argument("--paths", default=",".join(PATHS), help="comma-separated: " + ",".join(PATHS))
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--capacity", action="store_true", help="print the capacity table of one brand stack")
    parser.add_argument("--prices", type=Path, default=None, help="price table (default bench/prices.yaml)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured goals first (warm containers)")
    parser.add_argument("--no-planner", action="store_true", help="skip replaying the planner corpus")
    args = parser.parse_args()
    paths = [name.strip() for name in args.paths.split(",") if name.strip()]
    unknown = sorted(set(paths) - set(PATHS))
    if unknown or args.goals < 1:
        parser.error(f"unknown paths {unknown}" if unknown else "--goals must be at least 1")
    if args.capacity and "auto" not in paths:
        parser.error("--capacity needs the auto path")
    prices = load_prices(args.prices) if args.prices else load_prices()
    logging.getLogger("moto").setLevel(logging.CRITICAL)

    from cartpilot_local.metering import Meter, metered
    from cartpilot_local.stack import LocalStack

    runs: dict[str, list[Measured]] = {}
    with LocalStack(log_level=_production_log_level()) as local:
        meter = Meter()
        with metered(meter):
            bench = CostBench(local, meter, prices)
            try:
                for number in range(args.warmup):
                    # Unmeasured: each function's first call in a container loads what later calls reuse.
                    bench.run("auto", -number)
                for path in paths:
                    runs[path] = [bench.run(path, number) for number in range(1, args.goals + 1)]
            finally:
                bench.close()

    result: dict[str, Any] = {"paths": {path: summarise(measured) for path, measured in runs.items()}}
    planner: dict[str, Any] | None = None
    if not args.no_planner:
        try:
            planner = planner_figures(prices)
        except Exception as exc:  # e.g. a checkout without the corpus replay
            print(f"planner figures unavailable: {type(exc).__name__}: {exc}", file=sys.stderr)
    result["planner"] = planner
    if planner is not None and "auto" in result["paths"]:
        result["usd_per_1000_goals_with_planner"] = round(
            result["paths"]["auto"]["usd_per_1000_goals"] + planner["usd_per_1000_plans"], 4
        )
        result["cache_assumption"] = planner["cache_assumption"]
    result["prices"] = {"date": prices.date, "region": prices.region}
    if args.capacity:
        bounds = capacity(result["paths"]["auto"], result["paths"].get("approved"), planner, prices)
        result["capacity"] = capacity_json(bounds)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
        if args.capacity:
            print()
            print_capacity(result["capacity"])
    return 0


def _production_log_level() -> str:
    """The functions' log level on AWS (infra/functions.py LOG_LEVEL), so log bytes are as deployed."""
    return str(module_constants(_infra_dir() / "functions.py", ("LOG_LEVEL",)).get("LOG_LEVEL", "INFO"))


if __name__ == "__main__":
    sys.exit(main())
