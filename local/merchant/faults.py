"""Faults a test can order from the sandbox merchant, applied to the next N matching requests.

- ``error_500`` / ``error_429`` / ``error_400``: answer with that status before doing anything
  (429 carries ``Retry-After``).
- ``timeout``: stall for ``delay_seconds`` before doing anything, then carry on normally: the
  client gives up, yet the work may still happen later, as with a slow real merchant. With
  ``hold_idempotency_key`` the stall happens after the request's key is claimed, so a duplicate
  arriving meanwhile sees 409 (in flight).
- ``drop_response_after_commit``: do the work and commit it (or serve the stored replay), then
  stall past the client's timeout so the caller never sees the reply.

Faults take effect in front of idempotency, as a network or a proxy would: a replayed request
meets them too.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import asdict, dataclass

from pydantic import BaseModel, ConfigDict, Field

from cartpilot_local.merchant.protocol import JsonObject


class FaultMode(enum.StrEnum):
    ERROR_500 = "error_500"
    ERROR_429 = "error_429"
    ERROR_400 = "error_400"
    TIMEOUT = "timeout"
    DROP_RESPONSE_AFTER_COMMIT = "drop_response_after_commit"


IMMEDIATE_ERRORS = {FaultMode.ERROR_500: 500, FaultMode.ERROR_429: 429, FaultMode.ERROR_400: 400}


class FaultOrder(BaseModel):
    """Body of ``POST /_sandbox/faults``."""

    model_config = ConfigDict(extra="forbid")

    route: str = Field(description='Method and path template, e.g. "POST /checkout-sessions/{id}/complete"')
    mode: FaultMode
    times: int = Field(default=1, ge=1, le=10_000)
    delay_seconds: float = Field(default=10.0, ge=0, le=600)
    retry_after: float = Field(default=1.0, ge=0, le=3600)
    hold_idempotency_key: bool = False
    after: int = Field(
        default=0, ge=0, le=10_000, description="Let this many matching requests through first"
    )


@dataclass
class Fault:
    route: str
    mode: FaultMode
    remaining: int
    delay_seconds: float
    retry_after: float
    hold_idempotency_key: bool
    after: int = 0

    def to_json(self) -> JsonObject:
        data = asdict(self)
        data["mode"] = self.mode.value
        return data


def normalise_route(route: str) -> str:
    method, _, path = route.strip().partition(" ")
    return f"{method.upper()} {path.strip()}"


class FaultPlan:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, order: FaultOrder) -> Fault:
        fault = Fault(
            route=normalise_route(order.route),
            mode=order.mode,
            remaining=order.times,
            delay_seconds=order.delay_seconds,
            retry_after=order.retry_after,
            hold_idempotency_key=order.hold_idempotency_key,
            after=order.after,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, route: str) -> Fault | None:
        """The fault to apply to this request, if any; faults for a route apply in the order given."""
        with self._lock:
            for fault in self._faults:
                if fault.route == route:
                    if fault.after > 0:
                        fault.after -= 1
                        return None
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def pending(self) -> list[JsonObject]:
        with self._lock:
            return [fault.to_json() for fault in self._faults]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
