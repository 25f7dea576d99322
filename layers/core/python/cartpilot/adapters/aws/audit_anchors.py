"""The audit anchors and the published plan-signing keys, in one S3 bucket with Object Lock.

The bucket keeps every object version in compliance mode for the audit retention period: no role,
not even the account's root, can delete or shorten it. Each anchor (``anchors/{goalId}/{seq}.json``)
and each public key (``plan-keys/{kid}.der``) is written with ``If-None-Match: *`` (the bucket policy
refuses a PutObject without it), so a place is written once. Should anyone write a place again anyway,
S3 keeps a new version beside the first: readers take the first version and report the others.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from cartpilot.audit.chain import AuditAnchor, AuditRecord
from cartpilot.audit.ports import AuditSlotTaken

ANCHORS_PREFIX = "anchors/"
PLAN_KEYS_PREFIX = "plan-keys/"
# PreconditionFailed: the key exists; ConditionalRequestConflict: a concurrent write to it is in flight.
_TAKEN = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}


def _anchor_key(goal_id: str, seq: int) -> str:
    return f"{ANCHORS_PREFIX}{goal_id}/{seq:010d}.json"


class _WriteOnceBucket:
    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    def put_once(self, key: str, body: bytes, content_type: str) -> bool:
        """False when the key already exists."""
        try:
            self._s3.put_object(
                Bucket=self._bucket, Key=key, Body=body, ContentType=content_type, IfNoneMatch="*"
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] in _TAKEN:
                return False
            raise
        return True

    def first_versions(self, prefix: str) -> dict[str, tuple[str, int]]:
        """Key -> (version id of its first version, how many versions it has), under ``prefix``."""
        versions: dict[str, list[str]] = {}
        paginator = self._s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
            # Delete markers are not listed here: a "deleted" object is still read from its versions.
            for version in page.get("Versions", []):
                versions.setdefault(version["Key"], []).append(version["VersionId"])
        # S3 lists a key's versions newest first; LastModified has whole seconds, too coarse to order
        # two writes of one second.
        return {key: (found[-1], len(found)) for key, found in versions.items()}

    def read(self, key: str, version_id: str | None = None) -> bytes | None:
        extra = {"VersionId": version_id} if version_id else {}
        try:
            body: bytes = self._s3.get_object(Bucket=self._bucket, Key=key, **extra)["Body"].read()
        except ClientError as exc:
            if exc.response["Error"]["Code"] in {"NoSuchKey", "NoSuchVersion", "404"}:
                return None
            raise
        return body


class S3AuditAnchors:
    def __init__(self, s3: Any, bucket: str) -> None:
        self._bucket = _WriteOnceBucket(s3, bucket)

    def claim(self, record: AuditRecord) -> None:
        body = record.model_dump_json().encode()
        if not self._bucket.put_once(_anchor_key(record.goalId, record.seq), body, "application/json"):
            raise AuditSlotTaken(f"{record.goalId}#{record.seq}")

    def anchored(self, goal_id: str, seq: int) -> AuditRecord | None:
        key = _anchor_key(goal_id, seq)
        first = self._bucket.first_versions(key).get(key)
        body = self._bucket.read(key, first[0]) if first else None
        return AuditRecord.model_validate_json(body) if body else None

    def all(self, goal_id: str) -> list[AuditAnchor]:
        anchors: list[AuditAnchor] = []
        for key, (version_id, count) in self._bucket.first_versions(f"{ANCHORS_PREFIX}{goal_id}/").items():
            body = self._bucket.read(key, version_id)
            if body is None:
                continue
            record = AuditRecord.model_validate_json(body)
            anchors.append(AuditAnchor(seq=record.seq, hash=record.hash, versions=count, at=record.at))
        return sorted(anchors, key=lambda anchor: anchor.seq)


class S3KeyRegistry:
    """The public keys of every plan-signing key that ever signed, kept as long as the anchors."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self._bucket = _WriteOnceBucket(s3, bucket)

    def publish(self, kid: str, public_key_der: bytes) -> None:
        self._bucket.put_once(f"{PLAN_KEYS_PREFIX}{kid}.der", public_key_der, "application/pkix-spki")

    def all(self) -> dict[str, bytes]:
        keys: dict[str, bytes] = {}
        for key, (version_id, _count) in self._bucket.first_versions(PLAN_KEYS_PREFIX).items():
            body = self._bucket.read(key, version_id)
            if body is not None:
                keys[key.removeprefix(PLAN_KEYS_PREFIX).removesuffix(".der")] = body
        return keys
