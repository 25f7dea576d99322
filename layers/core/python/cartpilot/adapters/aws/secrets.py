"""Secrets Manager, through Powertools Parameters: the signing key ring and a model planner's API key."""

from __future__ import annotations

import json
from collections.abc import Callable

from cartpilot.kernel.keyring import KeyRing
from cartpilot.planning.conversation import ModelUnavailable


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


def api_key_from_secrets_manager(secret_id: str, *, max_age_seconds: int = 300) -> Callable[[], str | None]:
    """A reader of the model provider's API key; any failure to read it is a reason to fall back."""

    def read() -> str | None:
        from aws_lambda_powertools.utilities import parameters

        from cartpilot.planning.setup import api_key_from_secret

        try:
            raw = parameters.get_secret(secret_id, max_age=max_age_seconds)
        except Exception as exc:  # named by type only: a message might quote the secret
            raise ModelUnavailable(f"cannot read the API key secret: {type(exc).__name__}") from None
        return api_key_from_secret(raw)

    return read


def secret_text(secret_id: str, *, max_age_seconds: int = 300) -> Callable[[], str]:
    """A reader of a secret's value as text (a merchant credential), cached per container for a few
    minutes, so a value replaced in Secrets Manager takes effect without a deploy."""

    def read() -> str:
        from aws_lambda_powertools.utilities import parameters

        value = parameters.get_secret(secret_id, max_age=max_age_seconds)
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)

    return read
