"""The request-signing key ring rotates with overlap (signatures.md, "Key Rotation"): a new key is
published before it signs, an old key keeps verifying for the grace period, then leaves the profile."""

from __future__ import annotations

import datetime
import json

import pytest

from cartpilot.commerce.platform_profile import platform_profile
from cartpilot.commerce.signatures import SignatureError, sign_request, verify_request
from cartpilot.commerce.signing_keys import (
    PUBLICATION_DELAY,
    ROTATION_GRACE,
    RingSigner,
    SigningKeyRing,
    SigningKeysMissing,
    retire,
    rotate,
)
from tests.fakes.signing import InMemorySigningKeySource

START = datetime.datetime(2026, 4, 8, tzinfo=datetime.UTC)
QUARTER = datetime.timedelta(days=90)
URL = "https://merchant.example.com/checkout-sessions"
HEADERS = {
    "Content-Type": "application/json",
    "UCP-Agent": 'profile="https://cartpilot.test/.well-known/ucp"',
}
BODY = b'{"line_items":[]}'


def signed_by(ring: SigningKeyRing, at: datetime.datetime) -> dict[str, str]:
    key = ring.signing_key(at)
    return {**HEADERS, **sign_request(method="POST", url=URL, headers=HEADERS, body=BODY, key=key)}


def verifies_with_profile(headers: dict[str, str], profile_keys: list[dict[str, str]]) -> str:
    """What a merchant does: look the kid up among the profile's signing_keys."""
    return verify_request(
        method="POST", url=URL, headers=headers, body=BODY, keys={jwk["kid"]: jwk for jwk in profile_keys}
    )


def empty_source() -> InMemorySigningKeySource:
    """A stack's secret before its first rotation."""
    return InMemorySigningKeySource({"keys": []})


def published_kids(source: InMemorySigningKeySource) -> list[str]:
    profile = platform_profile("https://cartpilot.test", "2026-04-08", source.load())
    return [jwk["kid"] for jwk in profile["signing_keys"]]


def test_a_new_ring_has_one_key_that_signs_at_once() -> None:
    source = InMemorySigningKeySource()
    ring = source.load()
    assert ring.previous == () and ring.signing_key() is ring.current
    assert published_kids(source) == [ring.current.kid]
    assert verifies_with_profile(signed_by(ring, START), ring.published()) == ring.current.kid


def test_a_rotation_publishes_the_new_key_before_it_signs() -> None:
    source = empty_source()
    source.rotate(now=START, kid="k-april")
    ring = source.rotate(now=START + QUARTER, kid="k-july")
    assert [jwk["kid"] for jwk in ring.published()] == ["k-july", "k-april"]
    assert ring.signing_key(START + QUARTER + PUBLICATION_DELAY / 2).kid == "k-april"
    assert ring.signing_key(START + QUARTER + PUBLICATION_DELAY).kid == "k-july"


def test_a_request_signed_with_the_old_key_still_verifies_during_the_overlap() -> None:
    source = empty_source()
    before = source.rotate(now=START, kid="k-april")
    signed_before_rotation = signed_by(before, START)
    after = source.rotate(now=START + QUARTER, kid="k-july")
    assert verifies_with_profile(signed_before_rotation, after.published()) == "k-april"
    assert (
        verifies_with_profile(signed_by(after, START + QUARTER + PUBLICATION_DELAY), after.published())
        == "k-july"
    )


def test_after_a_second_rotation_the_oldest_key_is_gone_from_the_profile() -> None:
    source = empty_source()
    oldest = source.rotate(now=START, kid="k-april")
    signed_with_oldest = signed_by(oldest, START)
    source.rotate(now=START + QUARTER, kid="k-july")
    ring = source.rotate(now=START + 2 * QUARTER, kid="k-october")
    assert published_kids(source) == ["k-october", "k-july"]
    with pytest.raises(SignatureError) as refused:
        verifies_with_profile(signed_with_oldest, ring.published())
    assert refused.value.code == "key_not_found"
    (retired,) = [entry for entry in source.secret["keys"] if entry["kid"] == "k-april"]
    assert retired["status"] == "retired" and "d" not in retired["jwk"], "a retired key keeps no private half"


def test_rotating_again_within_the_grace_period_keeps_the_older_key_published() -> None:
    source = empty_source()
    source.rotate(now=START, kid="k1")
    source.rotate(now=START + QUARTER, kid="k2")
    source.rotate(now=START + QUARTER + ROTATION_GRACE / 2, kid="k3")
    assert published_kids(source) == ["k3", "k2", "k1"]
    source.rotate(now=START + QUARTER + ROTATION_GRACE, kid="k4")
    assert published_kids(source) == ["k4", "k3", "k2"], "k1 was replaced a full grace period ago"


def test_a_third_rotation_drops_what_was_already_retired() -> None:
    source = empty_source()
    for step, kid in enumerate(["k1", "k2", "k3", "k4"]):
        source.rotate(now=START + step * QUARTER, kid=kid)
    assert [(entry["kid"], entry["status"]) for entry in source.secret["keys"]] == [
        ("k4", "current"),
        ("k3", "previous"),
        ("k2", "retired"),
    ]


def test_a_compromised_previous_key_is_retired_at_once() -> None:
    source = empty_source()
    source.rotate(now=START, kid="k1")
    source.rotate(now=START + datetime.timedelta(days=1), kid="k2")
    source.secret = retire(source.secret, "k1")
    assert published_kids(source) == ["k2"]
    with pytest.raises(ValueError, match="rotate"):
        retire(source.secret, "k2")
    with pytest.raises(ValueError, match="not in the ring"):
        retire(source.secret, "k9")


def test_the_first_rotation_turns_a_placeholder_into_a_ring() -> None:
    assert [entry["status"] for entry in rotate({"placeholder": "x"}, now=START)["keys"]] == ["current"]
    assert len(rotate(None)["keys"]) == 1


def test_the_secret_survives_a_json_round_trip() -> None:
    secret = json.loads(json.dumps(rotate(rotate(None, now=START, kid="a"), now=START + QUARTER, kid="b")))
    ring = SigningKeyRing.from_secret(secret)
    assert (ring.current.kid, [k.kid for k in ring.previous]) == ("b", ["a"])
    assert ring.current_since == START + QUARTER
    assert secret["keys"][0]["createdAt"] == "2026-07-07T00:00:00Z"


@pytest.mark.parametrize(
    ("secret", "error"),
    [
        ({"keys": []}, SigningKeysMissing),
        ({"current": "k1"}, ValueError),
        (
            {"keys": [{"kid": "a", "jwk": {"kid": "b"}, "status": "current", "createdAt": "2026-04-08"}]},
            ValueError,
        ),
    ],
    ids=["empty", "not-a-ring", "kid-mismatch"],
)
def test_a_secret_that_is_not_a_usable_ring_is_refused(
    secret: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        SigningKeyRing.from_secret(secret)


def test_a_ring_needs_exactly_one_current_key() -> None:
    secret = rotate(rotate(None, now=START, kid="a"), now=START + QUARTER, kid="b")
    for entry in secret["keys"]:
        entry["status"] = "current"
    with pytest.raises(ValueError, match="exactly one current"):
        SigningKeyRing.from_secret(secret)


def test_a_kid_cannot_be_reused() -> None:
    with pytest.raises(ValueError, match="already"):
        rotate(rotate(None, kid="same"), kid="same")


@pytest.mark.parametrize(
    ("rotated_ago", "signer"),
    [(datetime.timedelta(minutes=1), "k-old"), (datetime.timedelta(hours=1), "k-new")],
)
def test_the_ring_signer_signs_with_the_key_the_ring_chooses(
    rotated_ago: datetime.timedelta, signer: str
) -> None:
    now = datetime.datetime.now(datetime.UTC)
    source = empty_source()
    source.rotate(now=now - QUARTER, kid="k-old")
    ring = source.rotate(now=now - rotated_ago, kid="k-new")
    added = RingSigner(source)(method="POST", url=URL, headers=HEADERS, body=BODY)
    assert verifies_with_profile({**HEADERS, **added}, ring.published()) == signer
