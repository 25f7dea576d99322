"""cdk-nag: the AwsSolutions rule pack, and acknowledgments that carry their reasons.

cdk-nag v3 runs as a CDK policy-validation plugin: every synth checks every template, and an
unacknowledged finding fails the synth and writes ``validation-report.json`` to the output folder.
Acknowledgments are placed on the narrowest construct that produces the finding, and the reason
says why the finding is right for this stack; they are also written into the template metadata
(``cdk_nag.rules_to_suppress``) so reviewers see them next to the resource.
"""

from __future__ import annotations

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

# Findings that the same stack produces in more than one place, with one reason each.
XRAY_WILDCARD = "AwsSolutions-IAM5[Resource::*]"
KMS_GENERATE_DATA_KEY = "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]"
KMS_REENCRYPT = "AwsSolutions-IAM5[Action::kms:ReEncrypt*]"


def add_checks(app: cdk.App) -> None:
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True))


def acknowledge(scope: IConstruct, finding: str, reason: str) -> None:
    """Accepts one finding (``AwsSolutions-RULE`` or ``AwsSolutions-RULE[detail]``) under ``scope``."""
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=finding, reason=reason))
