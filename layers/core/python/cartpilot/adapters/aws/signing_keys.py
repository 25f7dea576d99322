"""The request-signing key ring in Secrets Manager: read (cached) by the functions, rotated by the CLI.

The secret's format and the rotation rules are ``cartpilot.commerce.signing_keys``'. A stack creates
the secret with a placeholder; ``cartpilot keys rotate --secret ID`` writes the first key, and every
later rotation the next one.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from cartpilot.commerce.signing_keys import SigningKeyRing, SigningKeysMissing, retire, rotate


def ring_from_secret_value(value: object) -> SigningKeyRing:
    """The ring in a secret's value (a JSON string, or what Powertools already decoded)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise SigningKeysMissing(
                "the signing-keys secret still holds its placeholder: run 'cartpilot keys rotate'"
            ) from None
    if not isinstance(value, dict):
        raise SigningKeysMissing("the signing-keys secret holds no key ring: run 'cartpilot keys rotate'")
    return SigningKeyRing.from_secret(value)


class SecretsManagerSigningKeySource:
    """Reads the ring, cached for a few minutes per container; rotation overlaps by design, and a
    new key signs only once it has been published longer than this cache lives."""

    def __init__(self, secret_id: str, max_age_seconds: int = 300) -> None:
        self._secret_id = secret_id
        self._max_age = max_age_seconds

    def load(self) -> SigningKeyRing:
        # Imported here: Parameters loads boto3, which a handler should pay for on first use, not at import.
        from aws_lambda_powertools.utilities import parameters

        value = parameters.get_secret(self._secret_id, max_age=self._max_age)
        return ring_from_secret_value(value)


def _read(client: Any, secret_id: str) -> Any:
    value = client.get_secret_value(SecretId=secret_id).get("SecretString")
    try:
        return json.loads(value or "")
    except ValueError:
        return None  # the placeholder a new stack's secret is born with


def rotate_secret(
    secret_id: str, *, client: Any | None = None, now: datetime.datetime | None = None
) -> SigningKeyRing:
    """One rotation of the ring in ``secret_id`` (the first one turns the placeholder into a ring).

    Secrets Manager has no compare-and-set: run one rotation at a time (it is an operator's command).
    """
    from cartpilot.adapters.aws import clients

    secretsmanager = client or clients.secretsmanager()
    secret = rotate(_read(secretsmanager, secret_id), now=now)
    secretsmanager.put_secret_value(SecretId=secret_id, SecretString=json.dumps(secret))
    return SigningKeyRing.from_secret(secret)


def retire_key(secret_id: str, kid: str, *, client: Any | None = None) -> SigningKeyRing:
    """Unpublishes ``kid`` at once (a compromised key); the current key must be rotated away first."""
    from cartpilot.adapters.aws import clients

    secretsmanager = client or clients.secretsmanager()
    current = _read(secretsmanager, secret_id)
    if not isinstance(current, dict):
        raise SigningKeysMissing("the signing-keys secret holds no key ring: run 'cartpilot keys rotate'")
    secret = retire(current, kid)
    secretsmanager.put_secret_value(SecretId=secret_id, SecretString=json.dumps(secret))
    return SigningKeyRing.from_secret(secret)
