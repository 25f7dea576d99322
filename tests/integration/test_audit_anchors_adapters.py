"""The anchors bucket and the KMS plan signer against moto's S3 (Object Lock) and KMS."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from cartpilot.adapters.aws.audit_anchors import S3AuditAnchors, S3KeyRegistry
from cartpilot.adapters.aws.plan_signer import KmsPlanSigner
from cartpilot.audit.chain import GENESIS_HASH, AuditRecord, hash_record_body
from cartpilot.audit.ports import AuditSlotTaken
from cartpilot.audit.public_keys import PlanSignatureVerifier
from cartpilot_local.resources import create_audit_bucket, create_plan_signing_key, rotate_plan_signing_key

BUCKET = "cartpilot-test-audit-anchors"
ALIAS = "alias/cartpilot-test-plan-signing"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    from moto import mock_aws

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        s3, kms = boto3.client("s3"), boto3.client("kms")
        create_audit_bucket(s3, BUCKET)
        create_plan_signing_key(kms, ALIAS)
        yield s3, kms


def record(seq: int = 1, actor: str = "tester") -> AuditRecord:
    body = {"goalId": "g-1", "seq": seq, "at": "2026-01-01T00:00:00Z", "actor": actor, "event": "e",
            "status": None, "planHash": None, "detail": {}, "prevHash": GENESIS_HASH}  # fmt: skip
    return AuditRecord(**body, hash=hash_record_body(AuditRecord(**body, hash="").body()))


def test_a_place_is_anchored_once_and_a_second_write_is_seen(aws: tuple[Any, Any]) -> None:
    s3, _ = aws
    anchors = S3AuditAnchors(s3, BUCKET)
    first = record()
    anchors.claim(first)
    with pytest.raises(AuditSlotTaken):
        anchors.claim(record(actor="someone-else"))
    assert anchors.anchored("g-1", 1) == first
    # A write without the condition (the bucket policy refuses it on AWS) only adds a version.
    forged = record(actor="someone-else")
    s3.put_object(Bucket=BUCKET, Key="anchors/g-1/0000000001.json", Body=forged.model_dump_json().encode())
    (anchor,) = anchors.all("g-1")
    assert (anchor.seq, anchor.hash, anchor.versions) == (1, first.hash, 2)
    assert anchors.anchored("g-1", 1) == first


def test_signatures_verify_with_published_keys_across_rotations(aws: tuple[Any, Any]) -> None:
    s3, kms = aws
    registry = S3KeyRegistry(s3, BUCKET)
    signer = KmsPlanSigner(kms, ALIAS, registry)
    first_kid, first_sig = signer.sign(b"before")
    rotate_plan_signing_key(kms, ALIAS)
    rotate_plan_signing_key(kms, ALIAS)
    later_kid, later_sig = signer.sign(b"after")
    assert first_kid != later_kid
    verifier = PlanSignatureVerifier(registry.all())
    assert verifier.verifies(first_kid, b"before", first_sig)
    assert verifier.verifies(later_kid, b"after", later_sig)
    assert not verifier.verifies(first_kid, b"after", first_sig)
