"""The arithmetic of a goal's cost and of a brand stack's capacity, apart from running anything.

DynamoDB request units follow DynamoDB's rules (reads per 4 KB, writes per 1 KB, rounded up per
item; eventually consistent reads half, transactions double), state-machine log bytes are the
CloudWatch records Step Functions writes for an execution's history at a log level, and prices come
from the dated table in ``bench/prices.yaml``. ``bench/cost.py`` measures; this module counts.
"""

from __future__ import annotations

import ast
import json
import math
import statistics
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml

PRICES_FILE = Path(__file__).with_name("prices.yaml")

READ_UNIT_BYTES = 4096
WRITE_UNIT_BYTES = 1024
# Lambda writes START, END and REPORT lines (and an XRAY line with active tracing) per invocation.
PLATFORM_LOG_BYTES_PER_INVOCATION = 330


# --- DynamoDB -----------------------------------------------------------------------------------


def read_units(size_bytes: int, *, consistent: bool, transactional: bool = False) -> float:
    """Read request units of one item (or one Query/Scan page) of ``size_bytes``.

    A read of nothing still costs one unit's worth; an eventually consistent read costs half, a
    transactional read twice a strongly consistent one."""
    units = math.ceil(max(size_bytes, 1) / READ_UNIT_BYTES)
    if transactional:
        return 2.0 * units
    return float(units) if consistent else units / 2


def write_units(size_bytes: int, *, transactional: bool = False) -> int:
    """Write request units of writing an item whose larger version (before or after) is ``size_bytes``."""
    units = math.ceil(max(size_bytes, 1) / WRITE_UNIT_BYTES)
    return 2 * units if transactional else units


@dataclass(frozen=True)
class DynamoUnits:
    requests: int = 0
    read_units: float = 0.0
    write_units: int = 0

    def __add__(self, other: DynamoUnits) -> DynamoUnits:
        return DynamoUnits(
            self.requests + other.requests,
            self.read_units + other.read_units,
            self.write_units + other.write_units,
        )


def request_units(request: Any) -> DynamoUnits:
    """Units of one metered request (``cartpilot_local.metering.DynamoRequest``)."""
    reads = sum(
        read_units(size, consistent=request.consistent, transactional=request.transactional)
        for size in request.read_sizes
    )
    writes = sum(write_units(size, transactional=request.transactional) for size in request.write_sizes)
    return DynamoUnits(1, reads, writes)


# --- what of a sweep's work is the goal's ------------------------------------------------------

# Calls by which a sweep tells someone, or anchors an audit record it wrote, for the goal it serves.
SWEEP_SENDS = frozenset(
    {
        ("sns", "Publish"),
        ("sns", "PublishBatch"),
        ("sesv2", "SendEmail"),
        ("ses", "SendEmail"),
        ("s3", "PutObject"),
    }
)


def goal_dynamo_request(request: Any, per_goal: Collection[str], sweeps: Collection[str]) -> bool:
    """Whether a metered DynamoDB request in a goal's window is the goal's: every request of a
    function the goal invokes; of a sweep on a timer, only its writes (its notices, tracking, claims
    and audit records for the goal). A sweep's reads and its runs are a cost per minute, not per goal."""
    return request.function in per_goal or (request.function in sweeps and bool(request.write_sizes))


def goal_api_call(call: Any, per_goal: Collection[str], sweeps: Collection[str]) -> bool:
    """Whether a metered AWS call in a goal's window is the goal's: every call of a function the goal
    invokes; of a sweep, its sends and audit anchors (``SWEEP_SENDS``)."""
    return call.function in per_goal or (
        call.function in sweeps and (call.service, call.operation) in SWEEP_SENDS
    )


# --- Step Functions logs ------------------------------------------------------------------------

# Execution data (inputs, outputs, parameters, results) is left out of the log records without
# includeExecutionData; names, types, times, errors and causes stay.
EXECUTION_DATA_FIELDS = frozenset(
    {"input", "output", "parameters", "result", "inputDetails", "outputDetails"}
)
FATAL_TYPES = frozenset({"ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"})


def is_logged(event_type: str, level: str) -> bool:
    """Whether Step Functions logs an event of this type at the state machine's log level."""
    if level == "ALL":
        return True
    if level == "ERROR":
        return event_type.endswith(("Failed", "TimedOut", "Aborted"))
    if level == "FATAL":
        return event_type in FATAL_TYPES
    return False


def log_record(event: Mapping[str, Any], execution_arn: str, *, include_data: bool) -> dict[str, Any]:
    """The CloudWatch Logs record Step Functions writes for one history event."""
    details: dict[str, Any] = {}
    for name, value in event.items():
        if name.endswith("EventDetails") and isinstance(value, Mapping):
            details = {
                key: item for key, item in value.items() if include_data or key not in EXECUTION_DATA_FIELDS
            }
    timestamp = event.get("timestamp")
    millis = int(timestamp.timestamp() * 1000) if isinstance(timestamp, datetime) else 0
    return {
        "id": str(event.get("id", "")),
        "type": event["type"],
        "details": details,
        "previous_event_id": str(event.get("previousEventId", 0)),
        "event_timestamp": str(millis),
        "execution_arn": execution_arn,
        "redrive_count": "0",
    }


def state_machine_log_bytes(
    history: Iterable[Mapping[str, Any]], execution_arn: str, *, level: str, include_data: bool
) -> int:
    return sum(
        len(json.dumps(log_record(event, execution_arn, include_data=include_data), default=str).encode()) + 1
        for event in history
        if is_logged(str(event["type"]), level)
    )


def logging_settings(orchestration_file: Path) -> tuple[str, bool]:
    """EXECUTION_LOG_LEVEL and INCLUDE_EXECUTION_DATA as infra/orchestration.py sets them, read
    without importing the CDK (``sfn.LogLevel.ALL`` -> ``"ALL"``)."""
    level, include = "ALL", False
    for node in ast.parse(orchestration_file.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name == "EXECUTION_LOG_LEVEL" and isinstance(node.value, ast.Attribute):
                level = node.value.attr
            elif name == "INCLUDE_EXECUTION_DATA" and isinstance(node.value, ast.Constant):
                include = bool(node.value.value)
    return level, include


def module_constants(path: Path, names: Iterable[str]) -> dict[str, Any]:
    """Literal module-level constants of a file (e.g. infra/api.py's throttles), without importing it."""
    wanted = set(names)
    found: dict[str, Any] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id in wanted
        ):
            try:
                found[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return found


# --- prices -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceTable:
    date: str
    region: str
    prices: Mapping[str, Any]
    quotas: Mapping[str, Any]
    assumptions: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> float:
        return float(self.prices[name])


def load_prices(path: Path = PRICES_FILE) -> PriceTable:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return PriceTable(
        str(document["date"]),
        document["region"],
        document["prices"],
        document["quotas"],
        document.get("assumptions") or {},
    )


@dataclass(frozen=True)
class LambdaRun:
    function: str
    memory_mb: int
    duration_ms: float


@dataclass(frozen=True)
class ExpressRun:
    """One Express execution a goal started (its step loop): billed per request and by duration."""

    duration_ms: float
    memory_mb: int = 64
    # Not billed (Express bills requests and duration); reported to compare with Standard's.
    transitions: int = 0


# Express memory: 50 MB plus the definition and the execution data (times each Map or Parallel
# step), billed in 64 MB chunks; duration from start to end, rounded up to 100 ms.
EXPRESS_BASE_MEMORY_BYTES = 50 * 1024 * 1024
EXPRESS_MEMORY_CHUNK_MB = 64
EXPRESS_DURATION_GRANULARITY_MS = 100


def express_billed_memory_mb(definition_bytes: int, data_bytes: int, map_or_parallel_steps: int = 0) -> int:
    """Billed memory of an Express execution, as the pricing page estimates it. Execution data counts
    once even with no Map or Parallel step (an upper bound: the page counts it per such step)."""
    used = EXPRESS_BASE_MEMORY_BYTES + definition_bytes + data_bytes * max(1, map_or_parallel_steps)
    chunk = EXPRESS_MEMORY_CHUNK_MB * 1024 * 1024
    return math.ceil(used / chunk) * EXPRESS_MEMORY_CHUNK_MB


def express_gb_seconds(run: ExpressRun) -> float:
    billed_ms = math.ceil(run.duration_ms / EXPRESS_DURATION_GRANULARITY_MS) * EXPRESS_DURATION_GRANULARITY_MS
    return run.memory_mb / 1024 * max(billed_ms, EXPRESS_DURATION_GRANULARITY_MS) / 1000


@dataclass
class GoalUsage:
    """What one goal used, as measured."""

    # Standard executions' transitions (the goal's flow, its undo flow): the billed ones.
    transitions: int = 0
    retries: int = 0
    # Its Express executions (the step loop), billed per request and GB-second.
    express_runs: list[ExpressRun] = field(default_factory=list)
    invocations: list[LambdaRun] = field(default_factory=list)
    dynamo: DynamoUnits = DynamoUnits()
    # DynamoDB units by table name, for the hot-key bounds.
    dynamo_by_table: dict[str, DynamoUnits] = field(default_factory=dict)
    api_requests: int = 0
    api_routes: list[str] = field(default_factory=list)
    sns_publishes: int = 0
    sms: int = 0
    emails: int = 0
    kms_asymmetric: int = 0
    kms_symmetric: int = 0
    s3_puts: int = 0
    s3_gets: int = 0
    secrets_calls: int = 0
    state_machine_log_bytes: int = 0
    lambda_log_bytes: int = 0

    @property
    def express_requests(self) -> int:
        return len(self.express_runs)

    @property
    def express_transitions(self) -> int:
        return sum(run.transitions for run in self.express_runs)

    @property
    def notifications(self) -> int:
        return self.sns_publishes + self.sms + self.emails

    @property
    def log_bytes(self) -> int:
        return self.state_machine_log_bytes + self.lambda_log_bytes


def billed_gb_seconds(run: LambdaRun, granularity_ms: float = 1) -> float:
    billed_ms = math.ceil(run.duration_ms / granularity_ms) * granularity_ms
    return run.memory_mb / 1024 * billed_ms / 1000


def express_cost(runs: Sequence[ExpressRun], table: PriceTable) -> float:
    """USD of Express executions: requests plus GB-seconds at the first duration tier's price (the
    highest; later tiers apply past 1,000 GB-hours a month)."""
    if not runs:
        return 0.0
    return (
        len(runs) * table["stepfunctions_express_per_request"]
        + sum(express_gb_seconds(run) for run in runs) * table["stepfunctions_express_per_gb_second"]
    )


def price_goal(usage: GoalUsage, table: PriceTable) -> dict[str, float]:
    """USD per goal by service."""
    granularity = table["lambda_billing_granularity_ms"]
    return {
        "stepfunctions": (usage.transitions + usage.retries) * table["stepfunctions_per_transition"]
        + express_cost(usage.express_runs, table),
        "lambda": sum(billed_gb_seconds(run, granularity) for run in usage.invocations)
        * table["lambda_per_gb_second_arm64"]
        + len(usage.invocations) * table["lambda_per_request"],
        "dynamodb": usage.dynamo.read_units * table["dynamodb_per_read_request_unit"]
        + usage.dynamo.write_units * table["dynamodb_per_write_request_unit"],
        "notifications": usage.sns_publishes * table["sns_per_publish"]
        + usage.sms * table["sns_per_sms"]
        + usage.emails * table["ses_per_email"],
        "logs": usage.log_bytes / 1024**3 * table["logs_per_gb_ingested"],
        "apigateway": usage.api_requests * (table["apigateway_rest_per_request"] + table["waf_per_request"]),
        "kms": usage.kms_asymmetric * table["kms_per_asymmetric_request"]
        + usage.kms_symmetric * table["kms_per_symmetric_request"],
        "s3": usage.s3_puts * table["s3_per_put"] + usage.s3_gets * table["s3_per_get"],
        "secretsmanager": usage.secrets_calls * table["secretsmanager_per_call"],
    }


# The price of a cache hit by cache mode (DashScope bills implicit and explicit hits differently).
CACHED_INPUT_PRICE = {
    "implicit": "model_per_million_cached_input_tokens",
    "explicit": "model_per_million_explicit_cached_input_tokens",
}


def model_cost(
    prompt_tokens: float,
    completion_tokens: float,
    table: PriceTable,
    *,
    cached_prompt_tokens: float = 0,
    cache_creation_tokens: float = 0,
    cache: Literal["implicit", "explicit"] = "implicit",
) -> float:
    """USD of one plan's model calls at the table's model price. Of ``prompt_tokens``,
    ``cached_prompt_tokens`` cost the ``cache`` mode's cached-input price and ``cache_creation_tokens``
    (the explicit cache's writes) the cache-creation price; either is the input price where the
    table has none."""
    input_price = table["model_per_million_input_tokens"]
    cached = min(cached_prompt_tokens, prompt_tokens)
    created = min(cache_creation_tokens, prompt_tokens - cached)
    cached_price = float(table.prices.get(CACHED_INPUT_PRICE[cache], input_price))
    creation_price = float(table.prices.get("model_per_million_cache_creation_input_tokens", input_price))
    return (
        (prompt_tokens - cached - created) * input_price
        + cached * cached_price
        + created * creation_price
        + completion_tokens * table["model_per_million_output_tokens"]
    ) / 1_000_000


def per_thousand(usd: float) -> float:
    return round(usd * 1000, 4)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


# --- capacity -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bound:
    """One limit of a brand stack and the goals per second it allows at the measured usage."""

    name: str
    limit: str
    per_goal: str
    goals_per_second: float
    raise_by: str


def goals_per_second(rate: float, per_goal: float) -> float:
    """Goals a second a rate allows when each goal needs ``per_goal`` of it (unbounded if none)."""
    return math.inf if per_goal <= 0 else rate / per_goal


def concurrency_bound(concurrency: int, invocations_per_goal: float, duration_seconds: float) -> float:
    """Little's law: concurrency / (invocations per goal x duration of each) goals a second."""
    return goals_per_second(concurrency, invocations_per_goal * duration_seconds)


def open_executions_bound(open_executions: int, execution_seconds: float) -> float:
    """Goals a second that keep the open executions under the quota, each open for its lifetime."""
    return goals_per_second(open_executions, execution_seconds)


def binding(bounds: Sequence[Bound]) -> Bound:
    return min(bounds, key=lambda bound: bound.goals_per_second)
