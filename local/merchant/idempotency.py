"""Idempotency-Key handling, as UCP's REST binding asks: duplicates must not happen during retries.

A key is scoped to its route (method and path template). The first request with a key claims it;
once answered, the same key with the same request gets the stored status and body, and nothing is
done again. The same key with a different request is refused (the spec names no status for this,
so 422), and a duplicate that arrives while the first is still being processed gets 409.
"""

from __future__ import annotations

import enum
import hashlib
import json
import threading
from dataclasses import dataclass

from cartpilot_local.merchant.protocol import JsonObject

MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: JsonObject


class ClaimKind(enum.Enum):
    NEW = "new"
    REPLAY = "replay"
    CONFLICT = "conflict"
    IN_FLIGHT = "in_flight"


@dataclass(frozen=True)
class Claim:
    kind: ClaimKind
    stored: StoredResponse | None = None


@dataclass
class _Record:
    fingerprint: str
    response: StoredResponse | None = None  # None while the first request is being processed


def request_fingerprint(path: str, body: bytes) -> str:
    """What makes two requests "the same": the concrete path (ids included) and the JSON body.

    The body is compared as canonical JSON, so key order and whitespace do not count.
    """
    if body.strip():
        try:
            canonical = json.dumps(
                json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
            )
        except ValueError:
            canonical = body.decode("utf-8", errors="replace")
    else:
        canonical = ""
    return hashlib.sha256(f"{path}\n{canonical}".encode()).hexdigest()


def valid_key(key: str | None) -> bool:
    return bool(key) and len(key or "") <= MAX_KEY_LENGTH and (key or "").isprintable()


class IdempotencyStore:
    def __init__(self) -> None:
        self._records: dict[tuple[str, str], _Record] = {}
        self._changed = threading.Condition()

    def claim(self, scope: str, key: str, fingerprint: str) -> Claim:
        with self._changed:
            record = self._records.get((scope, key))
            if record is None:
                self._records[(scope, key)] = _Record(fingerprint)
                self._changed.notify_all()
                return Claim(ClaimKind.NEW)
            if record.fingerprint != fingerprint:
                return Claim(ClaimKind.CONFLICT)
            if record.response is None:
                return Claim(ClaimKind.IN_FLIGHT)
            return Claim(ClaimKind.REPLAY, record.response)

    def finish(self, scope: str, key: str, response: StoredResponse) -> None:
        with self._changed:
            record = self._records.get((scope, key))
            if record is not None:
                record.response = response
            self._changed.notify_all()

    def release(self, scope: str, key: str) -> None:
        """Forgets a claim whose request changed nothing, so a retry is processed afresh."""
        with self._changed:
            record = self._records.get((scope, key))
            if record is not None and record.response is None:
                del self._records[(scope, key)]
            self._changed.notify_all()

    def clear(self) -> None:
        with self._changed:
            self._records.clear()
            self._changed.notify_all()

    def wait_until_in_flight(self, scope: str, key: str, timeout: float) -> bool:
        """For tests: blocks until a request holding this key is being processed."""

        def in_flight() -> bool:
            record = self._records.get((scope, key))
            return record is not None and record.response is None

        with self._changed:
            return self._changed.wait_for(in_flight, timeout=timeout)

    def wait_until_answered(self, scope: str, key: str, timeout: float) -> bool:
        """For tests: blocks until the request holding this key has its answer stored."""

        def answered() -> bool:
            record = self._records.get((scope, key))
            return record is not None and record.response is not None

        with self._changed:
            return self._changed.wait_for(answered, timeout=timeout)
