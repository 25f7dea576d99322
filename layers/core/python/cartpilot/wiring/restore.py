"""What a SnapStart environment must not keep from the snapshot it resumed from.

Every environment Lambda resumes from one snapshot starts with the same memory: the same state of
the ``random`` module (retry jitter would fall in step across environments), the same sockets of
cached boto3 clients and merchant connections (long closed by the time of a restore), and the same
cached secrets, which may have rotated since the version was published. The after-restore hooks here
reseed, drop and forget those; everything is rebuilt on first use as in a cold start. What is read
from the deployment's files and environment (brand, policies, users, settings) stays: it is the same
in every environment of a version, and keeping it is what the snapshot is for.

``secrets`` and ``uuid4`` read the operating system's generator on every call and need nothing.
Handlers of SnapStart functions call ``register_restore_hooks()`` at import.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from typing import Any

from cartpilot.kernel.snapstart import after_restore

# Read once from the environment, the same in every environment of a version.
KEPT_CACHES = frozenset({"cartpilot.wiring.settings.settings"})
_WIRING = "cartpilot.wiring"


def reseed_random() -> None:
    """A fresh seed for the ``random`` module from the operating system."""
    random.seed()


def drop_connections() -> None:
    """Forget every cached AWS client and close merchant and model connections; all are reopened
    on first use."""
    from cartpilot.adapters.aws import clients

    clients.reset_clients()
    if "cartpilot.wiring.merchants" in sys.modules:
        from cartpilot.wiring.merchants import reset_merchant_cache

        reset_merchant_cache()
    if "cartpilot.planning.setup" in sys.modules:
        # The model providers hold HTTP connections and the provider's API key.
        from cartpilot.planning.setup import reset_providers

        reset_providers()


def clear_secret_caches() -> None:
    """Forget cached secrets (the approval- and view-link key rings, the request-signing ring, a
    model API key) with Powertools' parameter providers, and every adapter the composition root
    built from them or from a dropped client (plan-signing keys, tables, topics, the workflow)."""
    if "aws_lambda_powertools.utilities.parameters" in sys.modules:
        from aws_lambda_powertools.utilities import parameters

        parameters.clear_caches()  # type: ignore[no-untyped-call]  # Powertools leaves it unannotated
    for name, factory in wiring_caches():
        if name not in KEPT_CACHES:
            factory.cache_clear()


def wiring_caches() -> Iterator[tuple[str, Any]]:
    """``(qualified name, cached factory)`` for every ``functools.cache`` factory of the composition
    root's loaded modules (a module not loaded has built nothing)."""
    for module_name, module in list(sys.modules.items()):
        if module is None or not (module_name == _WIRING or module_name.startswith(_WIRING + ".")):
            continue
        for attribute, value in vars(module).items():
            if (
                callable(value)
                and hasattr(value, "cache_clear")
                and hasattr(value, "cache_info")
                and getattr(value, "__module__", None) == module_name
            ):
                yield f"{module_name}.{attribute}", value


_HOOKS = (reseed_random, drop_connections, clear_secret_caches)


def register_restore_hooks() -> None:
    """Registers the hooks with the Lambda runtime (a no-op elsewhere); twice registers once."""
    for hook in _HOOKS:
        after_restore(hook)
