"""Meters what the local stack's functions use on AWS, for pricing a goal (``bench/cost.py``).

Three seams, each at the lowest layer that sees every call, attributed to the function whose
role made it (``cartpilot_local.iam.calling_function``):

- DynamoDB: every request reaches moto's ``DynamoHandler``, where the item sizes DynamoDB bills
  by are known: the items a read returned, and for a write the item before and after it.
- AWS API calls (SNS publishes, SES sends, KMS signs, S3 puts, ...): ``BaseClient._make_api_call``.
- Log lines: the bytes the functions' loggers write, instead of printing them.

Lambda durations are on ``InProcessLambdaRuntime.invocations``. Nothing in a Lambda bundle imports
this module.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from botocore.client import BaseClient

from cartpilot_local.iam import calling_function

ACCOUNT = "123456789012"

# DynamoDB's item size rules: attribute names and values count; a list or map costs 3 bytes plus
# 1 byte per element; a number about 1 byte per two significant digits plus 1; null and booleans 1.
_CONTAINER_OVERHEAD = 3
_ELEMENT_OVERHEAD = 1


def number_size(text: str) -> int:
    """Bytes of a DynamoDB number: one per two significant digits, plus one."""
    digits = text.lstrip("+-").replace(".", "").split("e")[0].split("E")[0].strip("0")
    return max(1, math.ceil(len(digits) / 2)) + 1


def binary_size(value: bytes | str) -> int:
    """Bytes of a binary value: raw bytes, or base64 text as the wire carries it."""
    if isinstance(value, bytes):
        return len(value)
    return len(base64.b64decode(value))


def value_size(value: Mapping[str, Any]) -> int:
    """Bytes of one typed attribute value (``{"S": "x"}``, ``{"M": {...}}``, ...)."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        return number_size(str(inner))
    if kind == "B":
        return binary_size(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(element).encode()) for element in inner)
    if kind == "NS":
        return sum(number_size(str(element)) for element in inner)
    if kind == "BS":
        return sum(binary_size(element) for element in inner)
    if kind == "L":
        return _CONTAINER_OVERHEAD + sum(_ELEMENT_OVERHEAD + value_size(element) for element in inner)
    if kind == "M":
        return _CONTAINER_OVERHEAD + sum(
            _ELEMENT_OVERHEAD + len(name.encode()) + value_size(element) for name, element in inner.items()
        )
    raise ValueError(f"unknown DynamoDB type {kind}")


def item_size(item: Mapping[str, Mapping[str, Any]] | None) -> int:
    """Bytes of a typed DynamoDB item as billing counts them (0 for no item)."""
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


@dataclass(frozen=True)
class DynamoRequest:
    """One DynamoDB request: the item sizes it read or wrote, as DynamoDB bills them."""

    function: str | None
    operation: str
    table: str
    # Reads: the size of each item read (one entry per GetItem/Batch item; Query/Scan: the total).
    read_sizes: tuple[int, ...] = ()
    # Writes: max(before, after) size of each item written.
    write_sizes: tuple[int, ...] = ()
    consistent: bool = False
    transactional: bool = False


@dataclass(frozen=True)
class ApiCall:
    function: str | None
    service: str
    operation: str


@dataclass
class Meter:
    """What the stack's functions used since it was installed; ``mark()`` and ``since()`` slice it."""

    dynamodb: list[DynamoRequest] = field(default_factory=list)
    calls: list[ApiCall] = field(default_factory=list)
    log_bytes: Counter[str | None] = field(default_factory=Counter)
    log_lines: Counter[str | None] = field(default_factory=Counter)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def record_dynamodb(self, request: DynamoRequest) -> None:
        with self._lock:
            self.dynamodb.append(request)

    def record_call(self, call: ApiCall) -> None:
        with self._lock:
            self.calls.append(call)

    def record_log(self, text: str) -> None:
        function = calling_function.get()
        with self._lock:
            self.log_bytes[function] += len(text.encode())
            self.log_lines[function] += text.count("\n")

    def snapshot(self) -> MeterMark:
        with self._lock:
            return MeterMark(
                len(self.dynamodb), len(self.calls), Counter(self.log_bytes), Counter(self.log_lines)
            )


@dataclass(frozen=True)
class MeterMark:
    dynamodb: int
    calls: int
    log_bytes: Counter[str | None]
    log_lines: Counter[str | None]


# --- DynamoDB -----------------------------------------------------------------------------------

_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}


def _key_of(table: Any, item: Mapping[str, Any]) -> dict[str, Any]:
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    return {name: item[name] for name in names if name in item}


def _stored_size(backend: Any, table_name: str, key: Mapping[str, Any]) -> int:
    """The size of the item under ``key`` in the emulator now (0 if there is none)."""
    try:
        item = backend.get_item(table_name, dict(key))
    except Exception:  # an unknown table or a malformed key: the request itself fails too
        return 0
    if item is None:
        return 0
    return item_size({name: value.to_regular_json() for name, value in item.attrs.items()})


def _write_targets(
    operation: str, body: Mapping[str, Any], backend: Any
) -> list[tuple[str, dict[str, Any], int]]:
    """(table, key, size of the request's own item) for each item a write request touches."""
    targets: list[tuple[str, dict[str, Any], int]] = []
    if operation in _WRITES:
        name = body["TableName"]
        if operation == "PutItem":
            table = backend.get_table(name)
            targets.append((name, _key_of(table, body["Item"]), item_size(body["Item"])))
        else:
            targets.append((name, dict(body["Key"]), 0))
    elif operation == "TransactWriteItems":
        for entry in body.get("TransactItems", []):
            ((kind, detail),) = entry.items()
            name = detail["TableName"]
            if kind == "Put":
                table = backend.get_table(name)
                targets.append((name, _key_of(table, detail["Item"]), item_size(detail["Item"])))
            else:  # Update, Delete and ConditionCheck are billed by the item they address
                targets.append((name, dict(detail["Key"]), 0))
    elif operation == "BatchWriteItem":
        for name, requests in body.get("RequestItems", {}).items():
            table = backend.get_table(name)
            for request in requests:
                if "PutRequest" in request:
                    item = request["PutRequest"]["Item"]
                    targets.append((name, _key_of(table, item), item_size(item)))
                else:
                    targets.append((name, dict(request["DeleteRequest"]["Key"]), 0))
    return targets


def _read_sizes(
    operation: str, body: Mapping[str, Any], response: Mapping[str, Any], backend: Any
) -> tuple[str, list[int]]:
    if operation == "GetItem":
        # GetItem reads the whole item whatever it projects.
        return body["TableName"], [_stored_size(backend, body["TableName"], body["Key"])]
    if operation in ("Query", "Scan"):
        # One read of the items' total size (items returned; projections make this a lower bound).
        return body["TableName"], [sum(item_size(item) for item in response.get("Items", []))]
    if operation == "BatchGetItem":
        sizes = [item_size(item) for items in response.get("Responses", {}).values() for item in items]
        return ",".join(body.get("RequestItems", {})), sizes
    if operation == "TransactGetItems":
        sizes = [item_size(entry.get("Item")) for entry in response.get("Responses", [])]
        names = {entry["Get"]["TableName"] for entry in body.get("TransactItems", [])}
        return ",".join(sorted(names)), sizes
    return "", []


@contextmanager
def metering_dynamodb(meter: Meter) -> Iterator[None]:
    import json

    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.call_action
    # Old size, write, new size: one request at a time, as atomic_dynamodb already serialises them.
    lock = threading.RLock()

    def call_action(handler: DynamoHandler) -> Any:
        operation = str(handler.headers.get("X-Amz-Target", "")).split(".")[-1]
        body: Mapping[str, Any] = getattr(handler, "params", None) or json.loads(handler.body or "{}")
        backend = dynamodb_backends[ACCOUNT][handler.region]
        function = calling_function.get()
        with lock:
            try:
                targets = _write_targets(operation, body, backend)
            except Exception:
                targets = []
            before = [_stored_size(backend, name, key) for name, key, _ in targets]
            result = original(handler)
            status, _headers, payload = result
            if targets:
                after = [_stored_size(backend, name, key) for name, key, _ in targets]
                # A failed condition still bills the item it checked (the put's own item at least).
                sizes = tuple(
                    max(old, new, own if status >= 400 else 0)
                    for (_, _, own), old, new in zip(targets, before, after, strict=True)
                )
                tables = ",".join(sorted({name for name, _, _ in targets}))
                meter.record_dynamodb(
                    DynamoRequest(
                        function,
                        operation,
                        tables,
                        write_sizes=sizes,
                        transactional=operation == "TransactWriteItems",
                    )
                )
            elif status < 400 or operation in ("GetItem", "Query", "Scan"):
                response = json.loads(payload) if status < 400 and payload else {}
                table, read = _read_sizes(operation, body, response, backend)
                if table:
                    meter.record_dynamodb(
                        DynamoRequest(
                            function,
                            operation,
                            table,
                            read_sizes=tuple(read),
                            consistent=bool(body.get("ConsistentRead")),
                            transactional=operation == "TransactGetItems",
                        )
                    )
        return result

    with mock.patch.object(DynamoHandler, "call_action", call_action):
        yield


# --- other AWS calls ----------------------------------------------------------------------------


@contextmanager
def metering_api_calls(meter: Meter) -> Iterator[None]:
    original = BaseClient._make_api_call  # type: ignore[attr-defined]

    def make_api_call(client: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
        service = client.meta.service_model.service_name
        meter.record_call(ApiCall(calling_function.get(), service, operation_name))
        return original(client, operation_name, api_params)

    with mock.patch.object(BaseClient, "_make_api_call", make_api_call):
        yield


# --- log lines ----------------------------------------------------------------------------------


class _CountingStream(io.TextIOBase):
    """Where the functions' log handlers write while metered: counted, not printed."""

    def __init__(self, meter: Meter) -> None:
        self._meter = meter

    def write(self, text: str) -> int:
        self._meter.record_log(text)
        return len(text)

    def flush(self) -> None:
        return None


@contextmanager
def metering_logs(meter: Meter) -> Iterator[None]:
    """Counts the bytes the product's loggers (Powertools' and ``cartpilot.*``) write, per function."""
    from cartpilot.kernel.observability import logger

    stream = _CountingStream(meter)
    handlers = [
        handler
        for source in (logger._logger, logging.getLogger("cartpilot"))  # Powertools' own logging.Logger
        for handler in source.handlers
        if isinstance(handler, logging.StreamHandler)
    ]
    previous = [handler.setStream(stream) for handler in handlers]
    try:
        yield
    finally:
        for handler, old in zip(handlers, previous, strict=True):
            if old is not None:
                handler.setStream(old)


@contextmanager
def metered(meter: Meter) -> Iterator[Meter]:
    """Installs every seam on a running local stack."""
    with ExitStack() as stack:
        stack.enter_context(metering_dynamodb(meter))
        stack.enter_context(metering_api_calls(meter))
        stack.enter_context(metering_logs(meter))
        yield meter
