"""An in-memory signing-key source behind the same port as the Secrets Manager adapter."""

from __future__ import annotations

import datetime
from typing import Any

from cartpilot.commerce.signing_keys import SigningKeyRing, new_ring_secret, rotate


class InMemorySigningKeySource:
    """A key ring held as its secret would be; ``rotate`` does what ``cartpilot keys rotate`` does."""

    def __init__(self, secret: dict[str, Any] | None = None) -> None:
        self.secret: dict[str, Any] = secret if secret is not None else new_ring_secret()

    def load(self) -> SigningKeyRing:
        return SigningKeyRing.from_secret(self.secret)

    def rotate(self, *, now: datetime.datetime | None = None, kid: str | None = None) -> SigningKeyRing:
        self.secret = rotate(self.secret, now=now, kid=kid)
        return self.load()
