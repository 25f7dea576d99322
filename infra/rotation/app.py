"""Rotates the approval-link signing key ring: the Secrets Manager rotation function of that secret.

The secret holds ``{"current": kid, "keys": {kid: base64 key}}`` (``cartpilot.signing``). A rotation
adds a fresh key, makes it current and keeps the key it replaces, so links signed just before the
rotation verify until they expire (links live at most 7 days, rotations come every 30); keys older
than that are dropped, which revokes any link they signed. The first rotation, which Secrets Manager
runs as soon as the stack creates the schedule, replaces the random placeholder the secret is born
with by a ring of one key.

Secrets Manager calls this function four times per rotation (createSecret, setSecret, testSecret,
finishSecret) with the same ``ClientRequestToken``; each step is safe to repeat.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

import boto3

from cartpilot.kernel.keyring import KeyRing

CURRENT = "AWSCURRENT"
PENDING = "AWSPENDING"


class RotationError(RuntimeError):
    """The rotation request does not match the secret's state; Secrets Manager retries or gives up."""


class SecretsApi(Protocol):
    """The part of the Secrets Manager client a rotation uses."""

    def describe_secret(self, *, SecretId: str) -> Mapping[str, Any]: ...

    def get_secret_value(
        self, *, SecretId: str, VersionStage: str, VersionId: str = ...
    ) -> Mapping[str, Any]: ...

    def put_secret_value(
        self, *, SecretId: str, ClientRequestToken: str, SecretString: str, VersionStages: list[str]
    ) -> Mapping[str, Any]: ...

    def update_secret_version_stage(
        self, *, SecretId: str, VersionStage: str, MoveToVersionId: str, RemoveFromVersionId: str
    ) -> Mapping[str, Any]: ...


def handler(event: Mapping[str, str], context: object) -> None:
    client: SecretsApi = boto3.client("secretsmanager")
    rotate(client, secret_id=event["SecretId"], token=event["ClientRequestToken"], step=event["Step"])


def rotate(client: SecretsApi, *, secret_id: str, token: str, step: str) -> None:
    metadata = client.describe_secret(SecretId=secret_id)
    if not metadata.get("RotationEnabled"):
        raise RotationError(f"rotation is not enabled for {secret_id}")
    versions: Mapping[str, list[str]] = metadata.get("VersionIdsToStages", {})
    if token not in versions:
        raise RotationError(f"version {token} of {secret_id} does not exist")
    if CURRENT in versions[token]:
        return
    if PENDING not in versions[token]:
        raise RotationError(f"version {token} of {secret_id} is not pending rotation")

    if step == "createSecret":
        _create(client, secret_id, token)
    elif step == "setSecret":
        return  # the keys exist nowhere but in this secret
    elif step == "testSecret":
        pending = client.get_secret_value(SecretId=secret_id, VersionId=token, VersionStage=PENDING)
        KeyRing.from_secret(json.loads(pending["SecretString"]))
    elif step == "finishSecret":
        _finish(client, secret_id, token, versions)
    else:
        raise RotationError(f"unknown rotation step {step!r}")


def next_key_ring(current: str | None, key_id: str) -> dict[str, object]:
    """The ring after a rotation: a new current key plus the key it replaces, if there was one."""
    fresh = KeyRing.new_secret(key_id)
    try:
        previous = json.loads(current or "")
        ring = KeyRing.from_secret(previous)
    except (ValueError, TypeError, AttributeError):
        return fresh  # the placeholder of a new secret, or a ring nobody can use any more
    fresh_keys = fresh["keys"]
    assert isinstance(fresh_keys, dict)
    return {"current": key_id, "keys": {ring.current: previous["keys"][ring.current], **fresh_keys}}


def key_id_for(token: str) -> str:
    """Stable across retries of one rotation, distinct between rotations."""
    return "k" + token.replace("-", "")[:12]


def _create(client: SecretsApi, secret_id: str, token: str) -> None:
    try:
        client.get_secret_value(SecretId=secret_id, VersionId=token, VersionStage=PENDING)
        return  # created by an earlier attempt of this rotation
    except _not_found(client):
        pass
    current = client.get_secret_value(SecretId=secret_id, VersionStage=CURRENT)
    ring = next_key_ring(current.get("SecretString"), key_id_for(token))
    client.put_secret_value(
        SecretId=secret_id, ClientRequestToken=token, SecretString=json.dumps(ring), VersionStages=[PENDING]
    )


def _finish(client: SecretsApi, secret_id: str, token: str, versions: Mapping[str, list[str]]) -> None:
    current = next((version for version, stages in versions.items() if CURRENT in stages), None)
    if current is None or current == token:
        return
    client.update_secret_version_stage(
        SecretId=secret_id, VersionStage=CURRENT, MoveToVersionId=token, RemoveFromVersionId=current
    )


def _not_found(client: SecretsApi) -> type[Exception]:
    exceptions = getattr(client, "exceptions", None)
    return getattr(exceptions, "ResourceNotFoundException", LookupError)
