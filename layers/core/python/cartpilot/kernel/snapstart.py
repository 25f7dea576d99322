"""SnapStart runtime hooks: code that runs before Lambda snapshots an initialised environment, and
after it resumes one from that snapshot.

A SnapStart function is initialised once, when a version is published, and every new execution
environment resumes from the same memory image. Whatever init left in memory is therefore shared
by all of them: the state of pseudo-random generators, open connections, and cached secrets that
may have rotated since. The hooks that refresh those are registered here.

On Lambda the runtime's ``snapshot_restore_py`` library runs them (after-restore hooks in the order
of registration, before-snapshot hooks in reverse). Everywhere else (tests, the local stack, a
function without SnapStart) they are only kept in this module's registry, which tests run with
``run_after_restore`` / ``run_before_snapshot``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Hook = Callable[[], Any]

_after_restore: list[Hook] = []
_before_snapshot: list[Hook] = []


def _runtime_registrars() -> tuple[Callable[[Hook], Any], Callable[[Hook], Any]] | None:
    """The Lambda runtime's registration functions, where the runtime ships them."""
    try:
        from snapshot_restore_py import (  # the Lambda runtime ships it
            register_after_restore,
            register_before_snapshot,
        )
    except ImportError:
        return None
    return register_before_snapshot, register_after_restore


def after_restore(hook: Hook) -> Hook:
    """Runs ``hook`` each time an environment resumes from the snapshot (usable as a decorator).
    Registering the same hook twice keeps one registration: handler modules may share a hook."""
    if hook not in _after_restore:
        _after_restore.append(hook)
        registrars = _runtime_registrars()
        if registrars is not None:
            registrars[1](hook)
    return hook


def before_snapshot(hook: Hook) -> Hook:
    """Runs ``hook`` once, just before Lambda snapshots the initialised environment."""
    if hook not in _before_snapshot:
        _before_snapshot.append(hook)
        registrars = _runtime_registrars()
        if registrars is not None:
            registrars[0](hook)
    return hook


def restore_hooks() -> tuple[Hook, ...]:
    return tuple(_after_restore)


def snapshot_hooks() -> tuple[Hook, ...]:
    return tuple(_before_snapshot)


def run_after_restore() -> None:
    """What the runtime does on resume: every after-restore hook, in the order registered."""
    for hook in list(_after_restore):
        hook()


def run_before_snapshot() -> None:
    """What the runtime does before the snapshot: every before-snapshot hook, latest first."""
    for hook in reversed(_before_snapshot):
        hook()


def forget_hooks() -> None:
    """Empties the registry (tests); hooks the Lambda runtime already holds stay with it."""
    _after_restore.clear()
    _before_snapshot.clear()
