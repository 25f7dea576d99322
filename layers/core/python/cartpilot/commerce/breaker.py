"""Per-endpoint circuit breakers and a shared retry budget for one merchant.

Breakers are pybreaker's. The budget is the token bucket of the AWS SDKs' standard
retry mode (the Python SDK's ``RetryQuota``: capacity 500, a retry costs 5, one after a
timeout 10, a success refunds 1), written out here in a dozen lines because the
commerce package talks to merchants, not to AWS, and must not depend on the AWS SDK.
A breaker opens after consecutive transient failures of one endpoint and then
fails fast, instead of adding load to a merchant that is already down; after
its reset timeout one trial call goes through (half-open). The budget caps
retries across all calls so a brown-out cannot multiply our traffic.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pybreaker


class TransientFailure(Exception):
    """Raised inside a breaker's guard so the failure counts; carries what the caller should see."""

    def __init__(self, outcome: object) -> None:
        super().__init__("transient merchant failure")
        self.outcome = outcome


@dataclass(frozen=True)
class BreakerPolicy:
    """Ten failures in a row open an endpoint; five seconds later one trial call may close it.

    The reset is short on purpose: the state machine retries a step that met an open circuit
    (``MerchantCircuitOpen``) after 6, 12 and 24 seconds, always past the reset, and other
    transient failures four times with full jitter; a brief brown-out heals inside those
    retries, while a merchant that stays down still fails fast and gets compensated.
    """

    fail_max: int = 10
    reset_timeout: float = 5.0


class EndpointBreakers:
    """One pybreaker per (method, route template), created on first use."""

    def __init__(self, policy: BreakerPolicy | None = None) -> None:
        self.policy = policy or BreakerPolicy()
        self._breakers: dict[tuple[str, str], pybreaker.CircuitBreaker] = {}
        self._last_failures: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def remember_failure(self, method: str, route: str, failure: str) -> None:
        """What the endpoint last answered when it failed: an open circuit says why it opened."""
        with self._lock:
            self._last_failures[(method, route)] = failure

    def last_failure(self, method: str, route: str) -> str | None:
        with self._lock:
            return self._last_failures.get((method, route))

    def for_endpoint(self, method: str, route: str) -> pybreaker.CircuitBreaker:
        key = (method, route)
        with self._lock:
            breaker = self._breakers.get(key)
            if breaker is None:
                breaker = self._breakers[key] = pybreaker.CircuitBreaker(
                    fail_max=self.policy.fail_max,
                    reset_timeout=self.policy.reset_timeout,
                    # Only transient failures say the endpoint is unhealthy; a 4xx is the caller's problem.
                    exclude=[lambda error: not isinstance(error, TransientFailure)],
                    name=f"{method} {route}",
                    throw_new_error_on_trip=False,
                )
            return breaker

    def state(self, method: str, route: str) -> str:
        return str(self.for_endpoint(method, route).current_state)


class RetryBudget:
    """Retries spend tokens (timeouts cost more); successes earn them back, up to the capacity."""

    INITIAL_CAPACITY = 500
    RETRY_COST = 5
    TIMEOUT_RETRY_COST = 10
    SUCCESS_REFUND = 1

    def __init__(self, capacity: int = INITIAL_CAPACITY) -> None:
        self._capacity = capacity
        self._available = capacity
        self._lock = threading.Lock()

    def spend(self, *, after_timeout: bool) -> bool:
        cost = self.TIMEOUT_RETRY_COST if after_timeout else self.RETRY_COST
        with self._lock:
            if cost > self._available:
                return False
            self._available -= cost
            return True

    def refund(self) -> None:
        with self._lock:
            self._available = min(self._capacity, self._available + self.SUCCESS_REFUND)

    @property
    def available(self) -> int:
        return self._available
