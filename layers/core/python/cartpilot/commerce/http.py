"""The one HTTP client every merchant adapter uses: timeouts, retries, UCP headers, signatures, error mapping.

What every request carries (overview.md, checkout-rest.md):

- ``UCP-Agent: profile="<url>"``, the profile CartPilot publishes for the negotiated version;
- ``Request-Id``, and for a mutation an ``Idempotency-Key``: the caller's key, as a UUID
  (the OpenAPI declares ``format: uuid``) derived from it, so a retry sends the same one;
- the brand's credentials for this merchant, in the header the brand configures;
- when the version signs requests, the signer's ``Content-Digest``/``Signature-Input``/``Signature``
  fields over the exact bytes sent (signatures.md), made afresh for every attempt.

Retry rules, in one place:

- A connection that never opened (connect error or timeout, pool exhausted) is retried for any call:
  the merchant never saw the request.
- A request that was sent but got no answer (read timeout, dropped connection) is retried too, and for
  a mutating call with the same Idempotency-Key, so the merchant replays instead of repeating. If the
  attempts run out, the outcome is unknown: `MerchantOutcomeUnknown`.
- 429 and 5xx are retried, waiting at least as long as `Retry-After` asks.
- 409 is the key reused with a different request (overview.md, "Protocol Errors"): a definite
  refusal, `IdempotencyKeyReused`, never retried.
- Any other 4xx is final: `MerchantRejected` with the status and the code and words of whichever
  UCP error envelope the merchant used (``unknown_error`` when it used none CartPilot can read).

Bodies carry names, phones, addresses and payment tokens, so nothing here logs them: a log line has
the method, the route template, the status and the attempt.
"""

from __future__ import annotations

import json
import logging
import random as _random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Final, Literal, Protocol
from urllib.parse import quote

import httpx
import pybreaker

from cartpilot import __version__
from cartpilot.commerce.breaker import BreakerPolicy, EndpointBreakers, RetryBudget, TransientFailure
from cartpilot.commerce.codecs.wire import UNKNOWN_ERROR, read_refusal
from cartpilot.commerce.errors import (
    ConnectorError,
    IdempotencyKeyReused,
    MerchantCircuitOpen,
    MerchantOutcomeUnknown,
    MerchantUnavailable,
)
from cartpilot.commerce.platform_profile import ucp_agent_header
from cartpilot.kernel.observability import metrics

JsonObject = dict[str, Any]
MutatingMethod = Literal["POST", "PUT", "PATCH", "DELETE"]

log = logging.getLogger("cartpilot.commerce.http")

# Idempotency keys become UUIDs under this namespace: the same caller key, the same UUID.
IDEMPOTENCY_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://cartpilot.com/ucp/idempotency-key")


def wire_idempotency_key(key: str) -> str:
    """The ``Idempotency-Key`` sent for the caller's key: the key itself when it is a UUID, else a
    UUID derived from it (the OpenAPI declares the header ``format: uuid``)."""
    try:
        return str(uuid.UUID(key))
    except ValueError:
        return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, key))


class RequestSigner(Protocol):
    """Signs one request: returns the header fields to add (e.g. ``commerce.signatures.sign_request``
    with CartPilot's current key bound)."""

    def __call__(
        self, *, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class MerchantAuth:
    """The brand's credential for a merchant: the header it goes in, its scheme (``Bearer``; none for
    an ``X-API-Key``), and how to read the secret (each request, so a replaced secret takes effect
    once the reader's own cache expires)."""

    header: str
    scheme: str | None
    secret: Callable[[], str] = field(repr=False)

    @staticmethod
    def scheme_for(header: str) -> str | None:
        """``Authorization`` carries a credential as a Bearer token; any other header carries it alone."""
        return "Bearer" if header.lower() == "authorization" else None

    def value(self) -> str:
        secret = self.secret().strip()
        return f"{self.scheme} {secret}" if self.scheme else secret


# Raised before any byte reached the merchant: always safe to retry.
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.ProxyError,
)


@dataclass(frozen=True)
class Timeouts:
    """Seconds; every call has all four."""

    connect: float = 2.0
    read: float = 5.0
    write: float = 5.0
    pool: float = 2.0

    def for_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    base_delay: float = 0.2
    max_delay: float = 2.0
    # A merchant asking us to wait longer than this is better left to the state machine's own retry.
    max_retry_after: float = 10.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("at least one attempt")


@dataclass(frozen=True)
class _Retry:
    """Why an attempt failed in a way another attempt may fix."""

    error: ConnectorError
    retry_after: float | None = None
    maybe_committed: bool = False
    fail_fast: bool = False


class MerchantClient:
    """Speaks HTTP to one merchant's UCP endpoint. Thread-safe; the connection pool opens on first use."""

    def __init__(
        self,
        base_url: str,
        *,
        agent_profile_url: str,
        signer: RequestSigner | None = None,
        auth: MerchantAuth | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random.random,
        new_request_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        breakers: BreakerPolicy | None = None,
        retry_budget: RetryBudget | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.agent_profile_url = agent_profile_url
        self._signer = signer
        self._auth = auth
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self._transport = transport
        self._sleep = sleep
        self._random = random
        self._new_request_id = new_request_id
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self.breakers = EndpointBreakers(breakers)
        self.retry_budget = retry_budget or RetryBudget()

    # --- the three kinds of call -------------------------------------------------------------

    def get(
        self, route: str, *, path: Mapping[str, str] | None = None, request_id: str | None = None
    ) -> JsonObject:
        return self._call("GET", route, path, None, idempotency_key=None, request_id=request_id)

    def query(
        self,
        route: str,
        body: JsonObject,
        *,
        path: Mapping[str, str] | None = None,
        request_id: str | None = None,
    ) -> JsonObject:
        """A read-only POST (catalog search, lookup, shipping quote): no key, safe to repeat."""
        return self._call("POST", route, path, body, idempotency_key=None, request_id=request_id)

    def mutate(
        self,
        method: MutatingMethod,
        route: str,
        body: JsonObject | None,
        *,
        idempotency_key: str,
        path: Mapping[str, str] | None = None,
        request_id: str | None = None,
    ) -> JsonObject:
        """A call that changes something; the caller's key makes every retry a replay."""
        if not idempotency_key:
            raise ValueError("a mutating call needs the caller's Idempotency-Key")
        return self._call(method, route, path, body, idempotency_key=idempotency_key, request_id=request_id)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> MerchantClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- machinery ---------------------------------------------------------------------------

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    base_url=self.base_url,
                    timeout=self.timeouts.for_httpx(),
                    transport=self._transport,
                    follow_redirects=False,
                    headers={"User-Agent": f"cartpilot/{__version__}", "Accept": "application/json"},
                )
            return self._client

    def _call(
        self,
        method: str,
        route: str,
        path: Mapping[str, str] | None,
        body: JsonObject | None,
        *,
        idempotency_key: str | None,
        request_id: str | None,
    ) -> JsonObject:
        url = _expand(route, path or {})
        # Serialised once, so every retry sends the very same bytes under the same key.
        content = (
            None if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        )
        headers = {
            "UCP-Agent": ucp_agent_header(self.agent_profile_url),
            "Request-Id": request_id or self._new_request_id(),
        }
        if content is not None:
            headers["Content-Type"] = "application/json"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = wire_idempotency_key(idempotency_key)
        if self._auth is not None:
            headers[self._auth.header] = self._auth.value()
        mutating = idempotency_key is not None

        maybe_committed = False
        last: _Retry | None = None
        for attempt in range(1, self.retry.attempts + 1):
            outcome = self._attempt(method, route, url, content, headers, attempt, mutating)
            if not isinstance(outcome, _Retry):
                return outcome
            last = outcome
            maybe_committed = maybe_committed or outcome.maybe_committed
            if outcome.fail_fast:
                break
            if outcome.retry_after is not None and outcome.retry_after > self.retry.max_retry_after:
                break
            if attempt < self.retry.attempts:
                if not self.retry_budget.spend(after_timeout=outcome.maybe_committed):
                    log.warning("merchant %s %s: retry budget exhausted, not retrying", method, route)
                    break
                self._sleep(self._backoff(attempt, outcome.retry_after))

        assert last is not None
        if maybe_committed:
            # Some attempt may have been committed; only replaying the same key can tell.
            raise MerchantOutcomeUnknown(
                f"{method} {route}: no definite answer after {self.retry.attempts} attempts; "
                "replay the same Idempotency-Key to learn the outcome"
            ) from last.error
        raise last.error

    def _attempt(
        self,
        method: str,
        route: str,
        url: str,
        content: bytes | None,
        headers: dict[str, str],
        attempt: int,
        mutating: bool,
    ) -> JsonObject | _Retry:
        """One try through the endpoint's circuit breaker. Returns the body, a `_Retry`, or raises a final error."""
        breaker = self.breakers.for_endpoint(method, route)
        try:
            with breaker.calling():
                outcome = self._send(method, route, url, content, headers, attempt, mutating)
                if isinstance(outcome, _Retry):
                    raise TransientFailure(outcome)
        except TransientFailure as failure:
            retry: _Retry = failure.outcome  # type: ignore[assignment]
            self.breakers.remember_failure(method, route, str(retry.error))
            return retry
        except pybreaker.CircuitBreakerError:
            self._log(method, route, "circuit open", attempt, time.monotonic())
            last = self.breakers.last_failure(method, route)
            return _Retry(
                MerchantCircuitOpen(
                    f"{method} {route}: circuit open after repeated failures; failing fast"
                    + (f" (last: {last})" if last else "")
                ),
                fail_fast=True,
            )
        if not isinstance(outcome, _Retry):
            self.retry_budget.refund()
        return outcome

    def _send(
        self,
        method: str,
        route: str,
        url: str,
        content: bytes | None,
        headers: dict[str, str],
        attempt: int,
        mutating: bool,
    ) -> JsonObject | _Retry:
        started = time.monotonic()
        try:
            client = self._http()
            request = client.build_request(method, url, content=content, headers=headers)
            if self._signer is not None:
                # Signed per attempt over the request as it goes out: its URL and these very bytes.
                request.headers.update(
                    self._signer(
                        method=method, url=str(request.url), headers=dict(request.headers), body=content
                    )
                )
            response = client.send(request)
        except _NOT_SENT as exc:
            self._log(method, route, f"not sent ({type(exc).__name__})", attempt, started)
            return _Retry(
                MerchantUnavailable(f"{method} {route}: merchant unreachable ({type(exc).__name__})")
            )
        except httpx.TransportError as exc:
            self._log(method, route, f"no answer ({type(exc).__name__})", attempt, started)
            return _Retry(
                MerchantUnavailable(f"{method} {route}: no answer from merchant ({type(exc).__name__})"),
                maybe_committed=mutating,
            )

        status = response.status_code
        self._log(method, route, status, attempt, started)
        if 200 <= status < 300:
            return self._json(response, method, route, mutating)
        if status == 429 or status >= 500:
            if status >= 500:
                metrics.add_metric(name="MerchantServerErrors", unit="Count", value=1)
            return _Retry(
                MerchantUnavailable(f"{method} {route}: merchant answered {status}"),
                retry_after=_retry_after(response),
            )
        refusal = read_refusal(status, _json_or_none(response))
        if status == 409 and mutating:
            # overview.md, "Protocol Errors": 409 is the key reused with a different payload.
            known = refusal.code != UNKNOWN_ERROR
            raise IdempotencyKeyReused(
                f"{method} {route}: "
                + (
                    refusal.message
                    if known
                    else "this Idempotency-Key was used with a different request (409)"
                ),
                status_code=status,
                code=refusal.code if known else "idempotency_key_reused",
            )
        raise refusal.rejected(f"{method} {route}: merchant refused ({status})", status)

    def _json(self, response: httpx.Response, method: str, route: str, mutating: bool) -> JsonObject:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            return body
        message = f"{method} {route}: merchant answered {response.status_code} without a JSON object"
        if mutating:
            raise MerchantOutcomeUnknown(message)
        raise MerchantUnavailable(message)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with full jitter, never shorter than the merchant's Retry-After."""
        ceiling = min(self.retry.max_delay, self.retry.base_delay * 2.0 ** (attempt - 1))
        delay = self._random() * ceiling
        return max(delay, retry_after) if retry_after is not None else delay

    @staticmethod
    def _log(method: str, route: str, status: int | str, attempt: int, started: float) -> None:
        log.info(
            "merchant %s %s -> %s (attempt %d, %.0f ms)",
            method,
            route,
            status,
            attempt,
            (time.monotonic() - started) * 1000,
        )


def _expand(route: str, path: Mapping[str, str]) -> str:
    try:
        return route.format_map({name: quote(str(value), safe="") for name, value in path.items()})
    except KeyError as missing:
        raise ValueError(f"route {route} needs path parameter {missing}") from None


def _json_or_none(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
