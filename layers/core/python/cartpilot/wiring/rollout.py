"""Where the brand's rollout flags are read and written: a file locally, AppConfig on AWS.

Environment:
- ``ROLLOUT_FLAGS_FILE``: the local stack's flags document (read on every check).
- ``ROLLOUT_APPCONFIG_APPLICATION`` / ``_ENVIRONMENT`` / ``_PROFILE``: the AppConfig resource ids
  the functions read; ``ROLLOUT_APPCONFIG_DEPLOYMENT_STRATEGY`` only where settings are written.
- ``ROLLOUT_APPCONFIG_FLOOR_ENVIRONMENT`` (and ``_FLOOR_DEPLOYMENT_STRATEGY`` where written): the
  unmonitored environment whose stage holds the live one down (``rollout/floor.py``).
- ``ROLLOUT_FLAGS_MAX_AGE_SECONDS``: how long a warm container keeps what it read (default 5).
A deployment with none of them runs at stage ``all``: the rollout is opt-in per stack.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from cartpilot.rollout.flags import RolloutFlags, StaticFlags, flags_document
from cartpilot.rollout.gate import RolloutGate
from cartpilot.rollout.model import RolloutSettings
from cartpilot.rollout.ports import RolloutStore

ENV_FLAGS_FILE = "ROLLOUT_FLAGS_FILE"
ENV_APPLICATION = "ROLLOUT_APPCONFIG_APPLICATION"
ENV_ENVIRONMENT = "ROLLOUT_APPCONFIG_ENVIRONMENT"
ENV_PROFILE = "ROLLOUT_APPCONFIG_PROFILE"
ENV_DEPLOYMENT_STRATEGY = "ROLLOUT_APPCONFIG_DEPLOYMENT_STRATEGY"
ENV_MAX_AGE = "ROLLOUT_FLAGS_MAX_AGE_SECONDS"
ENV_FLOOR_ENVIRONMENT = "ROLLOUT_APPCONFIG_FLOOR_ENVIRONMENT"
ENV_FLOOR_DEPLOYMENT_STRATEGY = "ROLLOUT_APPCONFIG_FLOOR_DEPLOYMENT_STRATEGY"


class _FixedRolloutStore:
    """No rollout configured: everything runs (stage ``all``), and nothing can change that."""

    def __init__(self) -> None:
        self.flags = StaticFlags(flags_document(RolloutSettings()))

    def read(self) -> RolloutSettings:
        return RolloutSettings()

    def write(self, settings: RolloutSettings, *, actor: str, reason: str) -> None:
        raise RuntimeError("this deployment has no rollout store configured")


@functools.cache
def rollout_store() -> RolloutStore:
    path = os.environ.get(ENV_FLAGS_FILE)
    if path:
        from cartpilot.rollout.file_store import FileRolloutStore

        return FileRolloutStore(Path(path))
    application = os.environ.get(ENV_APPLICATION)
    if application:
        from cartpilot.adapters.aws import clients
        from cartpilot.adapters.aws.rollout_appconfig import DEFAULT_MAX_AGE_SECONDS, AppConfigRolloutStore

        strategy = os.environ.get(ENV_DEPLOYMENT_STRATEGY) or None
        live = AppConfigRolloutStore(
            application=application,
            environment=os.environ.get(ENV_ENVIRONMENT, ""),
            profile=os.environ.get(ENV_PROFILE, ""),
            deployment_strategy=strategy,
            max_age=int(os.environ.get(ENV_MAX_AGE) or DEFAULT_MAX_AGE_SECONDS),
            appconfig_client=clients.appconfig() if strategy else None,
            appconfigdata_client=clients.appconfigdata(),
        )
        # The floor no alarm can roll back (``rollout/floor.py``): an environment without monitors.
        floor_environment = os.environ.get(ENV_FLOOR_ENVIRONMENT)
        if not floor_environment:
            return live
        from cartpilot.rollout.floor import FlooredRolloutStore

        floor_strategy = os.environ.get(ENV_FLOOR_DEPLOYMENT_STRATEGY) or None
        floor = AppConfigRolloutStore(
            application=application,
            environment=floor_environment,
            profile=os.environ.get(ENV_PROFILE, ""),
            deployment_strategy=floor_strategy,
            max_age=int(os.environ.get(ENV_MAX_AGE) or DEFAULT_MAX_AGE_SECONDS),
            appconfig_client=clients.appconfig() if floor_strategy else None,
            appconfigdata_client=clients.appconfigdata(),
        )
        return FlooredRolloutStore(live, floor)
    return _FixedRolloutStore()


@functools.cache
def rollout_gate() -> RolloutGate:
    store = rollout_store()
    return RolloutGate(RolloutFlags(store.flags))  # type: ignore[attr-defined]


def reset_rollout() -> None:
    rollout_store.cache_clear()
    rollout_gate.cache_clear()
