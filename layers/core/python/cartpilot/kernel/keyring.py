"""The signing key ring: approval links and plan snapshots are signed with its current key.

Keys live in a secret as ``{"current": "k2", "keys": {"k1": "…", "k2": "…"}}``; a rotation adds
a key and moves ``current``, and dropping a key revokes what it signed.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class KeyRing:
    current: str
    keys: dict[str, bytes]

    @classmethod
    def from_secret(cls, secret: dict[str, object]) -> KeyRing:
        raw_keys = secret.get("keys")
        current = secret.get("current")
        if not isinstance(raw_keys, dict) or not isinstance(current, str) or current not in raw_keys:
            raise ValueError("the link-signing secret must hold 'current' and a 'keys' map containing it")
        return cls(
            current=current, keys={kid: base64.b64decode(str(value)) for kid, value in raw_keys.items()}
        )

    @staticmethod
    def new_secret(key_id: str = "k1") -> dict[str, object]:
        return {"current": key_id, "keys": {key_id: base64.b64encode(secrets.token_bytes(32)).decode()}}


class KeySource(Protocol):
    """Where the key ring comes from (Secrets Manager on AWS)."""

    def keyring(self) -> KeyRing: ...
