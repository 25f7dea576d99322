"""KeySource: the signing key ring, and a rotation seen once the cache has aged out."""

from __future__ import annotations

import pytest

from tests.contract.backends import KeySourceBackend


def test_the_key_ring_has_the_current_key_and_all_keys(keys: KeySourceBackend):
    ring = keys.source.keyring()
    assert ring.current == "k1"
    assert set(ring.keys) == {"k1"}
    assert len(ring.keys["k1"]) == 32


def test_a_rotation_adds_a_key_and_makes_it_current(keys: KeySourceBackend):
    before = keys.source.keyring()
    keys.rotate("k2")
    after = keys.source.keyring()
    assert after.current == "k2"
    assert set(after.keys) == {"k1", "k2"}
    assert after.keys["k1"] == before.keys["k1"], "a rotation keeps the old key, so its links still verify"
    assert after.keys["k2"] != before.keys["k1"] and len(after.keys["k2"]) == 32

    keys.rotate("k3")
    again = keys.source.keyring()
    assert (again.current, set(again.keys)) == ("k3", {"k1", "k2", "k3"})
    assert again.keys["k2"] == after.keys["k2"]


def test_a_dropped_key_is_gone_from_the_ring(keys: KeySourceBackend):
    keys.rotate("k2")
    ring = keys.source.keyring()
    keys.store({"current": "k2", "keys": {"k2": _encoded(ring.keys["k2"])}})
    assert set(keys.source.keyring().keys) == {"k2"}


def test_a_secret_without_its_current_key_is_refused(keys: KeySourceBackend):
    keys.store({"current": "k9", "keys": {"k1": _encoded(b"\0" * 32)}})
    with pytest.raises(ValueError, match="current"):
        keys.source.keyring()


def _encoded(key: bytes) -> str:
    import base64

    return base64.b64encode(key).decode()
