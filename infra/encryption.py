"""The brand's customer-managed KMS key.

One key per brand stack encrypts the tables, secrets, topics and log groups. A customer-managed key
rather than the AWS-managed ones because: the goals table and the order-flow logs hold shoppers'
names, phone numbers and addresses, and a brand's security team must be able to cut off every copy
of that data at once (disable the key) and see each use of it in CloudTrail; the alarm topic must be
encrypted with a key whose policy lets CloudWatch publish, which ``alias/aws/sns`` cannot; and it keeps
one brand's data unreadable to the roles of another brand in the same account. It costs one dollar a
month per brand plus requests, which DynamoDB and CloudWatch Logs keep low by caching data keys.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct


class BrandKey(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, brand: str) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.key = kms.Key(
            self,
            "Key",
            description=f"CartPilot {brand}: goals, audit, secrets, notifications and logs",
            enable_key_rotation=True,
            # Retained tables (goals, audit) stay readable after the stack is deleted.
            removal_policy=cdk.RemovalPolicy.RETAIN,
            pending_window=cdk.Duration.days(30),
        )
        # CloudWatch Logs encrypts the stack's log groups; the encryption context names the log group,
        # so the key serves log groups of this account and region only.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchLogsOfThisAccount",
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.{stack.url_suffix}")],
                actions=[
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": stack.format_arn(
                            service="logs",
                            resource="log-group",
                            resource_name="*",
                            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                        )
                    }
                },
            )
        )
        # CloudWatch alarms publish to the encrypted alarm topic.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsOfThisAccount",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            )
        )
