"""Racing callers: threads released together by a barrier (no sleeping), each with its own adapter."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def race(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Runs every call on its own thread, all released at once; their results in call order."""
    barrier = threading.Barrier(len(calls))
    results: dict[int, T] = {}
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[n] = calls[n]()
        except BaseException as exc:  # re-raised on the test's thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a racing call never returned"
    if errors:
        raise errors[0]
    return [results[n] for n in range(len(calls))]
