import base64

import pytest

from cartpilot.approvals.links import (
    LinkClaims,
    LinkExpired,
    LinkInvalid,
    sign_approval_link,
    verify_approval_link,
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
