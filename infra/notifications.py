"""Where approval links and receipts go out: an encrypted SNS topic and, optionally, an SES identity.

The topic is the contract with the brand (subscribe an email list, an SQS queue or a webhook relay);
``notifications.sesIdentity`` in the brand file adds a verified sender the functions may mail from.
A second topic is the brand's staff channel: the links of staff-only approvals go there and nowhere
else, so subscribe only the staff's own addresses to it.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_ses as ses
from aws_cdk import aws_sns as sns
from constructs import Construct


class Notifications(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, brand: str, key: kms.IKey, ses_identity: str | None
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self,
            "Topic",
            display_name=f"CartPilot {brand} approvals and receipts",
            master_key=key,
            enforce_ssl=True,
        )
        self.staff_topic = sns.Topic(
            self,
            "StaffTopic",
            display_name=f"CartPilot {brand} staff approvals",
            master_key=key,
            enforce_ssl=True,
        )
        self.ses_identity_name = ses_identity
        self.ses_identity_arn: str | None = None
        if ses_identity:
            identity = (
                ses.Identity.email(ses_identity) if "@" in ses_identity else ses.Identity.domain(ses_identity)
            )
            # Mail from the identity goes through this configuration set by default (no caller names it,
            # so no extra IAM resource): TLS required, bounces and complaints suppressed, reputation kept.
            self.configuration_set = ses.ConfigurationSet(
                self,
                "EmailConfigurationSet",
                tls_policy=ses.ConfigurationSetTlsPolicy.REQUIRE,
                suppression_reasons=ses.SuppressionReasons.BOUNCES_AND_COMPLAINTS,
                reputation_metrics=True,
                sending_enabled=True,
            )
            ses.EmailIdentity(
                self, "SesIdentity", identity=identity, configuration_set=self.configuration_set
            )
            self.ses_identity_arn = cdk.Stack.of(self).format_arn(
                service="ses", resource="identity", resource_name=ses_identity
            )

    def grant_send(self, grantee: iam.IGrantable) -> None:
        self.topic.grant_publish(grantee)
        if self.ses_identity_arn:
            grantee.grant_principal.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["ses:SendEmail", "ses:SendRawEmail"],
                    resources=[self.ses_identity_arn],
                )
            )
