"""The rollout flags in a JSON file: the local stack's store.

Read on every check, so a change (``cartpilot rollout set``) takes effect at the next step.
Written whole to a temporary file and renamed over the old one, so a reader never sees half.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from aws_lambda_powertools.utilities.feature_flags.base import StoreProvider
from aws_lambda_powertools.utilities.feature_flags.exceptions import ConfigurationStoreError

from cartpilot.rollout.flags import flags_document, settings_from_document
from cartpilot.rollout.model import RolloutSettings


class FileFlagsStore(StoreProvider):
    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def get_raw_configuration(self) -> dict[str, Any]:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationStoreError(f"cannot read the rollout flags at {self.path}") from exc
        if not isinstance(document, dict):
            raise ConfigurationStoreError(f"the rollout flags at {self.path} are not a JSON object")
        return document

    def get_configuration(self) -> dict[str, Any]:
        return self.get_raw_configuration


class FileRolloutStore:
    """``RolloutStore`` over the file (who and why go to the audit trail, not the file)."""

    def __init__(self, path: Path) -> None:
        self.flags = FileFlagsStore(path)

    @property
    def path(self) -> Path:
        return self.flags.path

    def read(self) -> RolloutSettings:
        return settings_from_document(self.flags.get_configuration())

    def write(self, settings: RolloutSettings, *, actor: str, reason: str) -> None:
        document = flags_document(settings)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=".rollout-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(document, handle, indent=2, sort_keys=True)
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
