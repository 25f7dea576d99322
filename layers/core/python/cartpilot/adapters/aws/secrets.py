"""The signing key ring from Secrets Manager, through Powertools Parameters."""

from __future__ import annotations

import json

from cartpilot.kernel.keyring import KeyRing


class SecretsManagerKeySource:
    """Reads the key ring, cached for a few minutes per container (rotation overlaps by design)."""

    def __init__(self, secret_id: str, max_age_seconds: int = 300) -> None:
        self._secret_id = secret_id
        self._max_age = max_age_seconds

    def keyring(self) -> KeyRing:
        # Imported here: Parameters loads boto3, which a handler should pay for on first use, not at import.
        from aws_lambda_powertools.utilities import parameters

        value = parameters.get_secret(self._secret_id, max_age=self._max_age)
        return KeyRing.from_secret(json.loads(value) if isinstance(value, str) else value)
