"""Secrets Manager secrets: the approval-link signing key, the merchant credentials and the LLM key.

The functions receive secret ARNs, never values, and read them at runtime through IAM grants scoped
to the one secret each needs. All three are encrypted with the brand's key. The link-signing key ring
is born as a random placeholder that its rotation function (``infra/rotation``) turns into a ring at
the first rotation, which Secrets Manager starts as soon as the stack creates the schedule.
"""

from __future__ import annotations

from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.nag import acknowledge


class BrandSecrets(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, brand: str, key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        self.link_signing_key = secretsmanager.Secret(
            self,
            "LinkSigningKey",
            description=(
                f"CartPilot {brand}: the key ring that signs approval links, "
                '{"current": kid, "keys": {kid: base64}}; rotated every 30 days by the stack.'
            ),
            encryption_key=key,
        )

        self.merchant_credentials = secretsmanager.Secret(
            self,
            "MerchantCredentials",
            description=(
                f"CartPilot {brand}: credentials the mutating connectors present to the merchant. "
                "Deployed with a random placeholder; put the merchant-issued value after deploy."
            ),
            encryption_key=key,
        )
        acknowledge(
            self.merchant_credentials,
            "AwsSolutions-SMG4",
            "Issued by the merchant, not by AWS: there is no rotation API a Lambda could call, so the "
            "value is replaced when the merchant reissues it (procedure in infra/README.md).",
        )

        self.llm_api_key = secretsmanager.Secret(
            self,
            "LlmApiKey",
            description=(
                f"CartPilot {brand}: API key of the LLM provider the planner calls (unused by the rules "
                "planner). Deployed with a random placeholder; put the provider's key after deploy."
            ),
            encryption_key=key,
        )
        acknowledge(
            self.llm_api_key,
            "AwsSolutions-SMG4",
            "Issued by the LLM provider's console, which has no rotation API: the planner's key is "
            "replaced by hand when the provider reissues it (procedure in infra/README.md).",
        )
