import base64

import pytest

from cartpilot.approvals.links import (
    LinkClaims,
    LinkExpired,
    LinkInvalid,
    sign_approval_link,
    verify_approval_link,
)
from cartpilot.audit.snapshots import (
    PlanSnapshotClaims,
    SignatureInvalid,
    SigningKeyUnknown,
    sign_plan_snapshot,
    verify_plan_snapshot,
)
from cartpilot.kernel.keyring import KeyRing
from cartpilot_local.client import ApprovalLink

CLAIMS = LinkClaims(
    approval_id="a-1", expires_at=2_000, plan_hash="sha256:abc", approver="user-1", tier="APPROVAL"
)


def ring(current: str = "k1", **keys: bytes) -> KeyRing:
    return KeyRing(current=current, keys=keys or {"k1": b"k" * 32})


def signed(keyring: KeyRing, claims: LinkClaims = CLAIMS) -> ApprovalLink:
    return ApprovalLink.parse(sign_approval_link("https://api.example.com/prod", claims, keyring))


def test_a_fresh_link_verifies():
    keyring = ring()
    link = signed(keyring)
    assert link.url.startswith("https://api.example.com/prod/approvals/a-1?exp=2000&kid=k1&sig=")
    verify_approval_link(CLAIMS, kid=link.kid, sig=link.sig, keyring=keyring, now=1_999)


@pytest.mark.parametrize(
    "changed",
    [
        LinkClaims("a-2", 2_000, "sha256:abc", "user-1", "APPROVAL"),  # another approval
        LinkClaims("a-1", 9_999, "sha256:abc", "user-1", "APPROVAL"),  # stretched expiry
        LinkClaims("a-1", 2_000, "sha256:def", "user-1", "APPROVAL"),  # a changed plan
        LinkClaims("a-1", 2_000, "sha256:abc", "user-2", "APPROVAL"),  # another approver
        LinkClaims("a-1", 2_000, "sha256:abc", "user-1", "AUTO"),  # a lower tier
    ],
)
def test_a_link_does_not_transfer_to_other_claims(changed):
    keyring = ring()
    link = signed(keyring)
    with pytest.raises(LinkInvalid):
        verify_approval_link(changed, kid=link.kid, sig=link.sig, keyring=keyring, now=1_000)


def test_forged_signature_is_invalid_even_when_expired():
    keyring = ring()
    with pytest.raises(LinkInvalid):
        verify_approval_link(CLAIMS, kid="k1", sig="A" * 43, keyring=keyring, now=5_000)


def test_expired_link():
    keyring = ring()
    link = signed(keyring)
    with pytest.raises(LinkExpired):
        verify_approval_link(CLAIMS, kid=link.kid, sig=link.sig, keyring=keyring, now=2_000)


def test_rotation_keeps_old_links_until_their_key_is_dropped():
    old = ring("k1", k1=b"1" * 32)
    link = signed(old)
    rotated = ring("k2", k1=b"1" * 32, k2=b"2" * 32)
    verify_approval_link(CLAIMS, kid=link.kid, sig=link.sig, keyring=rotated, now=1_000)
    assert signed(rotated).kid == "k2"
    dropped = ring("k2", k2=b"2" * 32)
    with pytest.raises(LinkInvalid, match="no longer trusted"):
        verify_approval_link(CLAIMS, kid=link.kid, sig=link.sig, keyring=dropped, now=1_000)


def test_key_ring_from_secret():
    secret = KeyRing.new_secret("k7")
    keyring = KeyRing.from_secret(secret)
    assert keyring.current == "k7" and len(keyring.keys["k7"]) == 32
    with pytest.raises(ValueError):
        KeyRing.from_secret({"current": "k9", "keys": {"k1": base64.b64encode(b"x").decode()}})


SNAPSHOT = PlanSnapshotClaims(goal_id="g-1", plan_id="p-abcd", plan_hash="sha256:abc")


def test_a_plan_snapshot_signature_names_its_key_and_verifies():
    keyring = ring("k2", k1=b"1" * 32, k2=b"2" * 32)
    signature = sign_plan_snapshot(SNAPSHOT, keyring)
    assert signature["alg"] == "HMAC-SHA256" and signature["kid"] == "k2"
    verify_plan_snapshot(SNAPSHOT, kid="k2", sig=signature["sig"], keyring=keyring)


@pytest.mark.parametrize(
    "changed",
    [
        PlanSnapshotClaims("g-2", "p-abcd", "sha256:abc"),  # another goal
        PlanSnapshotClaims("g-1", "p-other", "sha256:abc"),  # another plan
        PlanSnapshotClaims("g-1", "p-abcd", "sha256:def"),  # another plan document
    ],
)
def test_a_plan_snapshot_signature_does_not_transfer(changed):
    keyring = ring()
    signature = sign_plan_snapshot(SNAPSHOT, keyring)
    with pytest.raises(SignatureInvalid):
        verify_plan_snapshot(changed, kid="k1", sig=signature["sig"], keyring=keyring)


def test_a_snapshot_signed_by_a_retired_key_is_unknown_rather_than_forged():
    signature = sign_plan_snapshot(SNAPSHOT, ring("k1", k1=b"1" * 32))
    with pytest.raises(SigningKeyUnknown):
        verify_plan_snapshot(SNAPSHOT, kid="k1", sig=signature["sig"], keyring=ring("k2", k2=b"2" * 32))


def test_a_snapshot_signature_never_passes_as_an_approval_link():
    keyring = ring()
    signature = sign_plan_snapshot(SNAPSHOT, keyring)
    as_link = LinkClaims(
        approval_id="g-1", expires_at=2_000, plan_hash="sha256:abc", approver="p-abcd", tier=""
    )
    with pytest.raises(LinkInvalid):
        verify_approval_link(as_link, kid="k1", sig=signature["sig"], keyring=keyring, now=1_000)
