"""The link-signing key ring's rotation function, against an in-memory Secrets Manager."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from cartpilot.kernel.keyring import KeyRing
from infra.rotation.app import RotationError, key_id_for, next_key_ring, rotate

pytestmark = pytest.mark.xdist_group("infra")

SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:link-signing"


class FakeSecretsManager:
    """Versions and staging labels, as much of Secrets Manager as a rotation sees."""

    def __init__(self, initial: str) -> None:
        self.values: dict[str, str] = {"v0": initial}
        self.stages: dict[str, list[str]] = {"v0": ["AWSCURRENT"]}
        self.rotation_enabled = True

    def start_rotation(self, token: str) -> None:
        self.stages[token] = ["AWSPENDING"]

    def describe_secret(self, *, SecretId: str) -> Mapping[str, Any]:
        return {
            "RotationEnabled": self.rotation_enabled,
            "VersionIdsToStages": {v: list(s) for v, s in self.stages.items()},
        }

    def get_secret_value(
        self, *, SecretId: str, VersionStage: str, VersionId: str | None = None
    ) -> Mapping[str, Any]:
        for version, stages in self.stages.items():
            if (
                VersionStage in stages
                and (VersionId is None or VersionId == version)
                and version in self.values
            ):
                return {"VersionId": version, "SecretString": self.values[version]}
        raise LookupError(VersionStage)

    def put_secret_value(
        self, *, SecretId: str, ClientRequestToken: str, SecretString: str, VersionStages: list[str]
    ) -> Mapping[str, Any]:
        self.values[ClientRequestToken] = SecretString
        self.stages[ClientRequestToken] = list(VersionStages)
        return {}

    def update_secret_version_stage(
        self, *, SecretId: str, VersionStage: str, MoveToVersionId: str, RemoveFromVersionId: str
    ) -> Mapping[str, Any]:
        self.stages[RemoveFromVersionId].remove(VersionStage)
        self.stages[MoveToVersionId].append(VersionStage)
        self.stages[RemoveFromVersionId].append("AWSPREVIOUS")
        return {}

    def current(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(
            self.get_secret_value(SecretId=SECRET, VersionStage="AWSCURRENT")["SecretString"]
        )
        return value


def _rotate_fully(secrets: FakeSecretsManager, token: str) -> None:
    secrets.start_rotation(token)
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        rotate(secrets, secret_id=SECRET, token=token, step=step)


def test_first_rotation_turns_the_placeholder_into_a_ring_of_one_key() -> None:
    secrets = FakeSecretsManager("b4c0ffeeRandomPlaceholderWithoutStructure")
    _rotate_fully(secrets, "11111111-2222-3333-4444-555555555555")
    ring = KeyRing.from_secret(secrets.current())
    assert ring.current == "k111111112222"
    assert list(ring.keys) == [ring.current]
    assert len(ring.keys[ring.current]) == 32


def test_rotation_keeps_the_replaced_key_so_links_in_flight_still_verify() -> None:
    secrets = FakeSecretsManager("placeholder")
    _rotate_fully(secrets, "aaaaaaaa-0000-0000-0000-000000000001")
    first = KeyRing.from_secret(secrets.current())
    _rotate_fully(secrets, "bbbbbbbb-0000-0000-0000-000000000002")
    second = KeyRing.from_secret(secrets.current())
    assert second.current != first.current
    assert second.keys[first.current] == first.keys[first.current]
    _rotate_fully(secrets, "cccccccc-0000-0000-0000-000000000003")
    third = KeyRing.from_secret(secrets.current())
    assert set(third.keys) == {second.current, third.current}  # the oldest key, and its links, are gone


def test_a_repeated_create_step_does_not_mint_a_second_key() -> None:
    secrets = FakeSecretsManager("placeholder")
    token = "dddddddd-0000-0000-0000-000000000004"
    secrets.start_rotation(token)
    rotate(secrets, secret_id=SECRET, token=token, step="createSecret")
    pending = secrets.values[token]
    rotate(secrets, secret_id=SECRET, token=token, step="createSecret")
    assert secrets.values[token] == pending


def test_rotation_refuses_versions_it_was_not_asked_to_rotate() -> None:
    secrets = FakeSecretsManager("placeholder")
    with pytest.raises(RotationError, match="does not exist"):
        rotate(secrets, secret_id=SECRET, token="unknown", step="createSecret")
    secrets.rotation_enabled = False
    secrets.start_rotation("eeeeeeee-0000-0000-0000-000000000005")
    with pytest.raises(RotationError, match="not enabled"):
        rotate(secrets, secret_id=SECRET, token="eeeeeeee-0000-0000-0000-000000000005", step="createSecret")


def test_next_key_ring_starts_over_from_anything_that_is_not_a_ring() -> None:
    for current in (None, "", "not json", "42", json.dumps({"current": "k9", "keys": {}})):
        ring = next_key_ring(current, "k1")
        assert KeyRing.from_secret(ring).current == "k1"
        assert list(ring["keys"]) == ["k1"]
    assert key_id_for("12345678-9abc-def0-1234-56789abcdef0") == "k123456789abc"
