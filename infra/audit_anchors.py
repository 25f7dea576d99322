"""Where the audit trail cannot be rewritten: the plan-signing key and the write-once anchors bucket.

- The plan-signing key is an asymmetric KMS key (ECC_NIST_P256, ECDSA_SHA_256), named by an alias.
  Only the functions that fix plans may Sign with it (``plan_signing_key`` in ``function_specs``);
  verifying needs only its public key. It is not the approval-link key ring. A rotation creates a new
  key and moves the alias (asymmetric keys have no automatic rotation), so grants follow the alias.
- The anchors bucket has S3 Object Lock in compliance mode with the audit retention as its default:
  every version of every object is kept that long, and no one, the account root included, can delete
  or shorten it. It holds a copy of each audit record (``anchors/``) and the public key of every
  plan-signing key that ever signed (``plan-keys/``), so records stay verifiable after any number of
  rotations. The bucket policy refuses a PutObject without ``If-None-Match: *``: a place is written once.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.nag import acknowledge
from infra.permissions import OBJECT_PREFIXES, Resource, Statement

# How long anchors and published keys are kept, unchangeable: the audit records' retention.
AUDIT_RETENTION = cdk.Duration.days(7 * 365)


class AuditAnchors(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, brand: str, key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        self.signing_key = kms.Key(
            self,
            "PlanSigningKey",
            description=f"CartPilot {brand}: signs plan snapshots in the audit trail",
            key_spec=kms.KeySpec.ECC_NIST_P256,
            key_usage=kms.KeyUsage.SIGN_VERIFY,
            # Signatures stay verifiable from the published public key; the key itself is kept too.
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        self.signing_alias = self.signing_key.add_alias(f"alias/cartpilot-{brand}-plan-signing")
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_lock_enabled=True,
            object_lock_default_retention=s3.ObjectLockRetention.compliance(AUDIT_RETENTION),
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="WriteOnceOnly",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["s3:PutObject"],
                resources=[self.bucket.arn_for_objects("*")],
                conditions={"Null": {"s3:if-none-match": "true"}},
            )
        )
        acknowledge(
            self.bucket,
            "AwsSolutions-S1",
            "The bucket is write-once (Object Lock, compliance mode) and only the stack's functions write "
            "it, each object once; its reads and writes are recorded by CloudTrail data events, not by "
            "a second bucket of access logs.",
        )

    @property
    def alias_name(self) -> str:
        return self.signing_alias.alias_name

    def allow(self, role: iam.IRole, statement: Statement) -> None:
        """One of a function's statements (``infra/permissions.py``) on the bucket or the signing key."""
        actions = sorted(statement.actions)
        if statement.resource in OBJECT_PREFIXES:
            bucket_actions = [action for action in actions if action == "s3:ListBucketVersions"]
            object_actions = [action for action in actions if action not in bucket_actions]
            objects = self.bucket.arn_for_objects(f"{OBJECT_PREFIXES[statement.resource]}*")
            role.add_to_principal_policy(iam.PolicyStatement(actions=object_actions, resources=[objects]))
            if bucket_actions:
                role.add_to_principal_policy(
                    iam.PolicyStatement(actions=bucket_actions, resources=[self.bucket.bucket_arn])
                )
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::<{self._logical_id(self.bucket)}.Arn>/"
                f"{OBJECT_PREFIXES[statement.resource]}*]",
                "An audit writer anchors each record as its own object (anchors/{goalId}/{seq}.json), a "
                "plan signer publishes each public key as one (plan-keys/{kid}.der); object names are "
                "only known at run time, and each grant stays under its own prefix. The bucket refuses "
                "overwrites and keeps every version (Object Lock), and no function may delete.",
            )
        elif statement.resource is Resource.PLAN_SIGNING_KEY:
            stack = cdk.Stack.of(self)
            # A rotation points the alias at a new key: grant by alias, not by the first key's ARN.
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=actions,
                    resources=[stack.format_arn(service="kms", resource="key", resource_name="*")],
                    conditions={"ForAnyValue:StringEquals": {"kms:ResourceAliases": self.alias_name}},
                )
            )
            acknowledge(
                role,
                "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:kms:<AWS::Region>:<AWS::AccountId>:key/*]",
                "Plan signing follows the key alias across rotations (asymmetric KMS keys rotate by a "
                "new key taking the alias); the kms:ResourceAliases condition limits it to the one "
                "plan-signing alias of this brand.",
            )

    @staticmethod
    def _logical_id(construct: Construct) -> str:
        child = construct.node.default_child
        assert isinstance(child, cdk.CfnElement)
        return cdk.Stack.of(construct).get_logical_id(child)
