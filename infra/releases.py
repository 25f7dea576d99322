"""Safe code releases: the mutating functions move to a new version by a CodeDeploy canary.

Every application function runs behind its ``live`` alias (``infra/functions.py``). For the
functions that change orders at the merchant (``mutates_merchant``: checkout, payment, fulfillment,
orders and the compensator), a new version does not take the alias at once: CodeDeploy sends it 10
percent of the invocations for five minutes, then all of them, and moves the alias back to the
previous version if any of the function's alarms (its errors and throttles, and the brand's anomaly
alarms when they are given) goes off meanwhile or the deployment fails or is stopped. The other
functions' aliases move at once: they change nothing at the merchant, and a bad version of them is a
retry or a redeploy away.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.function_specs import FUNCTIONS
from infra.nag import acknowledge

CANARY = codedeploy.LambdaDeploymentConfig.CANARY_10_PERCENT_5_MINUTES
# The per-function alarms ``infra/monitoring.py`` creates, by the suffix of their construct id.
FUNCTION_ALARM_KINDS = ("Errors", "Throttles")
# CodeDeploy watches at most this many alarms per deployment group.
MAX_ALARMS_PER_GROUP = 10
CODEDEPLOY_MANAGED_POLICY = "service-role/AWSCodeDeployRoleForLambdaLimited"


class ReleaseError(ValueError):
    """The release setup does not fit the stack: a mutating function without alias or alarms."""


def canaried_functions() -> list[str]:
    """The functions whose new versions go out by canary: every one that mutates the merchant."""
    return [spec.name for spec in FUNCTIONS if spec.mutates_merchant]


def function_alarms(monitoring: Construct, name: str) -> list[cloudwatch.IAlarm]:
    """The errors and throttles alarms ``Monitoring`` created for the function ``name``."""
    found: list[cloudwatch.IAlarm] = []
    for kind in FUNCTION_ALARM_KINDS:
        child = monitoring.node.try_find_child(f"{name.capitalize()}{kind}")
        if not isinstance(child, cloudwatch.Alarm):
            raise ReleaseError(f"monitoring has no {kind.lower()} alarm for the {name} function")
        found.append(child)
    return found


class Releases(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        brand: str,
        aliases: Mapping[str, lambda_.Alias],
        monitoring: Construct,
        anomaly_alarms: Sequence[cloudwatch.IAlarm] = (),
    ) -> None:
        """``anomaly_alarms``: brand-wide alarms (compensation rate, denies, merchant 5xx, ...) that
        also stop a canary; each group watches them beside its own function's alarms."""
        super().__init__(scope, construct_id)
        self.application = codedeploy.LambdaApplication(
            self, "Application", application_name=f"CartPilot-{brand}"
        )
        self.deployment_groups: dict[str, codedeploy.LambdaDeploymentGroup] = {}
        for name in canaried_functions():
            if name not in aliases:
                raise ReleaseError(f"the {name} function has no live alias to deploy")
            alarms = [*function_alarms(monitoring, name), *anomaly_alarms]
            if len(alarms) > MAX_ALARMS_PER_GROUP:
                raise ReleaseError(
                    f"the {name} deployment group would watch {len(alarms)} alarms; "
                    f"CodeDeploy takes at most {MAX_ALARMS_PER_GROUP}"
                )
            group = codedeploy.LambdaDeploymentGroup(
                self,
                f"{name.capitalize()}Deployments",
                application=self.application,
                alias=aliases[name],
                deployment_config=CANARY,
                alarms=alarms,
                auto_rollback=codedeploy.AutoRollbackConfig(
                    failed_deployment=True, stopped_deployment=True, deployment_in_alarm=True
                ),
            )
            acknowledge(
                group.role,
                f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{CODEDEPLOY_MANAGED_POLICY}]",
                f"CodeDeploy's service role for the {name} function's canary: the AWS-maintained "
                "Lambda-limited policy lets it read the alarms and move aliases of functions, nothing "
                "else; CDK attaches it to every Lambda deployment group.",
            )
            self.deployment_groups[name] = group
