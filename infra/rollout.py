"""The brand's rollout on AWS: feature flags in AppConfig, anomaly alarms, and the guard they call.

- AppConfig: one application, one feature-flags profile (hosted; its first version is stage ``all``,
  kill switch off, rendered by ``cartpilot.rollout.flags`` so the document has one source), and two
  environments of it. **Live** holds what the operators set; its monitor is the composite of the
  anomaly alarms, so a flag change that goes bad rolls back. It deploys with ``FlagChanges``:
  linear, 20 % of callers a minute for 5 minutes, then a 5-minute bake. **Floor** holds only a stage
  and a kill switch that hold the live settings down; it has no monitor and deploys with
  ``Restrictions`` (all at once, no bake), so nothing can roll a restriction back.
- Why two: AppConfig rolls a deployment back while one of its environment's monitors is in ALARM
  (or INSUFFICIENT_DATA). The guard drops the brand to read-only exactly while an anomaly alarm
  fires; deployed to the live environment, that drop would be rolled back at once. Deployed to the
  floor, it stays until an operator raises the stage (``cartpilot.rollout.floor``).
- Six anomaly alarms on the business metrics the functions emit (compensation rate, goals needing
  attention, deny rate, replans after price drift, merchant 5xx, approval rejections). AppConfig
  takes at most five monitors per environment, so the live environment watches one composite alarm
  that is in ALARM when any of the six is.
- EventBridge sends each of the six entering ALARM to the ``guard`` function, which drops the brand
  to read-only and tells the operators on the alarm topic (``cartpilot.rollout.guard``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import aws_cdk as cdk
from aws_cdk import aws_appconfig as appconfig
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from constructs import Construct

from cartpilot.rollout.flags import flags_document
from cartpilot.rollout.model import RolloutSettings
from infra.function_specs import FUNCTIONS
from infra.permissions import Resource, statements_for

PERIOD = cdk.Duration.minutes(5)
# Thresholds over one 5-minute period (infra/README.md, "Rollout guard").
COMPENSATION_RATE_PERCENT = 10
DENY_RATE_PERCENT = 50
# A rate over a handful of goals is noise: below these many goals started, the rate alarms stay quiet.
MIN_GOALS_FOR_COMPENSATION_RATE = 5
MIN_GOALS_FOR_DENY_RATE = 10
NEEDS_ATTENTION_GOALS = 1
PRICE_DRIFT_REPLANS = 3
MERCHANT_SERVER_ERRORS = 10
APPROVAL_REJECTIONS = 5
# The flag-change strategy: linear, 20 % of callers each minute, then 5 minutes watching the alarms.
FLAG_CHANGE_GROWTH_PERCENT = 20
FLAG_CHANGE_MINUTES = 5
FLAG_CHANGE_BAKE_MINUTES = 5
PROFILE_NAME = "rollout"
LIVE_ENVIRONMENT = "live"
FLOOR_ENVIRONMENT = "floor"
# What the functions are told, in the names ``cartpilot.wiring.rollout`` reads.
ENV_APPLICATION = "ROLLOUT_APPCONFIG_APPLICATION"
ENV_OPS_TOPIC = "OPS_TOPIC_ARN"


class Rollout(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        brand: str,
        metrics_namespace: str,
        service_name: str,
        state_machine_name: str,
        functions: Mapping[str, lambda_.Function],
        guard: lambda_.IFunction,
        alarm_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self._prefix = f"CartPilot-{brand}"
        self._action = cloudwatch_actions.SnsAction(alarm_topic)

        self.alarms = self._anomaly_alarms(metrics_namespace, service_name, state_machine_name)
        self.anomaly = cloudwatch.CompositeAlarm(
            self,
            "AnomalyDetected",
            composite_alarm_name=f"{self._prefix}-AnomalyDetected",
            alarm_description="One of the anomaly alarms fires: a flag change deploying now rolls back",
            alarm_rule=cloudwatch.AlarmRule.any_of(*self.alarms.values()),
        )

        self.application = appconfig.Application(
            self,
            "Application",
            application_name=self._prefix,
            description=f"CartPilot {brand}: rollout stage, pilot and kill switch",
        )
        self.flag_changes = appconfig.DeploymentStrategy(
            self,
            "FlagChanges",
            deployment_strategy_name=f"{self._prefix}-FlagChanges",
            description="Operators' flag changes: gradual, watched by the anomaly alarms",
            rollout_strategy=appconfig.RolloutStrategy.linear(
                growth_factor=FLAG_CHANGE_GROWTH_PERCENT,
                deployment_duration=cdk.Duration.minutes(FLAG_CHANGE_MINUTES),
                final_bake_time=cdk.Duration.minutes(FLAG_CHANGE_BAKE_MINUTES),
            ),
        )
        self.restrictions = appconfig.DeploymentStrategy(
            self,
            "Restrictions",
            deployment_strategy_name=f"{self._prefix}-Restrictions",
            description="Restrictions on the floor: at once, with nothing to watch",
            rollout_strategy=appconfig.RolloutStrategy.linear(
                growth_factor=100,
                deployment_duration=cdk.Duration.minutes(0),
                final_bake_time=cdk.Duration.minutes(0),
            ),
        )
        # AppConfig reads the composite alarm's state with this role, on that alarm only (the role
        # CDK would generate may describe every alarm of the account).
        self.monitor_role = iam.Role(
            self,
            "MonitorRole",
            assumed_by=iam.ServicePrincipal("appconfig.amazonaws.com"),
            description=f"CartPilot {brand}: AppConfig reads the anomaly alarm's state, nothing else",
            inline_policies={
                "ReadAnomalyAlarm": iam.PolicyDocument(
                    statements=[
                        iam.PolicyStatement(
                            actions=["cloudwatch:DescribeAlarms"], resources=[self.anomaly.alarm_arn]
                        )
                    ]
                )
            },
        )
        self.live = appconfig.Environment(
            self,
            "Live",
            application=self.application,
            environment_name=LIVE_ENVIRONMENT,
            description="The operators' rollout settings; a change rolls back on an anomaly",
            monitors=[
                appconfig.Monitor.from_cfn_monitors_property(
                    alarm_arn=self.anomaly.alarm_arn, alarm_role_arn=self.monitor_role.role_arn
                )
            ],
        )
        self.floor = appconfig.Environment(
            self,
            "Floor",
            application=self.application,
            environment_name=FLOOR_ENVIRONMENT,
            description="Restrictions holding the live settings down; never rolled back",
        )
        self.flags = appconfig.HostedConfiguration(
            self,
            "Flags",
            application=self.application,
            name=PROFILE_NAME,
            description="Rollout stage, pilot users and percent, kill switch (Powertools feature flags)",
            type=appconfig.ConfigurationType.FEATURE_FLAGS,
            content=appconfig.ConfigurationContent.from_inline_json(
                json.dumps(flags_document(RolloutSettings()), sort_keys=True)
            ),
            # The first version is the default everywhere; no earlier one exists to roll back to.
            deployment_strategy=self.restrictions,
            deploy_to=[self.live, self.floor],
        )

        self.guard_rule = events.Rule(
            self,
            "AnomalyToGuard",
            description="An anomaly alarm entered ALARM: drop the brand to read-only",
            event_pattern=events.EventPattern(
                source=["aws.cloudwatch"],
                detail_type=["CloudWatch Alarm State Change"],
                detail={
                    # By name, as written: the names are fixed, and a reference would tie the rule to them.
                    "alarmName": sorted(self.alarm_name(name) for name in self.alarms),
                    "state": {"value": ["ALARM"]},
                },
            ),
            targets=[targets.LambdaFunction(guard, retry_attempts=2)],
        )
        self._connect(functions, alarm_topic)

    def _anomaly_alarms(
        self, namespace: str, service: str, state_machine_name: str
    ) -> dict[str, cloudwatch.Alarm]:
        def business(name: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=namespace,
                metric_name=name,
                dimensions_map={"service": service},
                statistic="Sum",
                period=PERIOD,
            )

        # By the machine's ARN built from its fixed name, not a reference to it: the functions that
        # read the flags are part of the machine's definition, and the flags' environment names these
        # alarms, so a reference would close a dependency cycle.
        machine_arn = cdk.Stack.of(self).format_arn(
            service="states",
            resource="stateMachine",
            resource_name=state_machine_name,
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        started = cloudwatch.Metric(
            namespace="AWS/States",
            metric_name="ExecutionsStarted",
            dimensions_map={"StateMachineArn": machine_arn},
            statistic="Sum",
            period=PERIOD,
        )

        def rate(numerator: str, minimum: int, label: str) -> cloudwatch.MathExpression:
            return cloudwatch.MathExpression(
                expression=f"IF(FILL(started, 0) >= {minimum}, 100 * FILL(events, 0) / started, 0)",
                using_metrics={"events": business(numerator), "started": started},
                period=PERIOD,
                label=label,
            )

        return {
            "CompensationRate": self._alarm(
                "CompensationRate",
                rate("Compensations", MIN_GOALS_FOR_COMPENSATION_RATE, "Compensations per 100 goals started"),
                COMPENSATION_RATE_PERCENT,
                f"At least {COMPENSATION_RATE_PERCENT} of every 100 goals started were compensated",
            ),
            "NeedsAttention": self._alarm(
                "NeedsAttention",
                business("NeedsAttention"),
                NEEDS_ATTENTION_GOALS,
                "A goal was left NEEDS_ATTENTION: an undo could not finish",
            ),
            "DenyRate": self._alarm(
                "DenyRate",
                rate("GoalsDenied", MIN_GOALS_FOR_DENY_RATE, "Denials per 100 goals started"),
                DENY_RATE_PERCENT,
                f"At least {DENY_RATE_PERCENT} of every 100 goals started were denied by policy",
            ),
            "PriceDriftReplans": self._alarm(
                "PriceDriftReplans",
                business("PriceDriftReplans"),
                PRICE_DRIFT_REPLANS,
                "Plans were undone and planned again because the merchant's prices moved",
            ),
            "MerchantServerErrors": self._alarm(
                "MerchantServerErrors",
                business("MerchantServerErrors"),
                MERCHANT_SERVER_ERRORS,
                "The merchant answered 5xx (each attempt counts)",
            ),
            "ApprovalRejections": self._alarm(
                "ApprovalRejections",
                business("ApprovalRejections"),
                APPROVAL_REJECTIONS,
                "Approvers rejected plans",
            ),
        }

    def alarm_name(self, name: str) -> str:
        return f"{self._prefix}-Anomaly-{name}"

    def _alarm(
        self, name: str, metric: cloudwatch.IMetric, threshold: float, description: str
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            name,
            alarm_name=self.alarm_name(name),
            alarm_description=f"{description}. The guard drops the brand to rollout stage read-only.",
            metric=metric,
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(self._action)
        return alarm

    def arns(self, alarm_topic: sns.ITopic) -> dict[Resource, str]:
        """Each rollout resource's ARN as IAM checks it: reading an environment is reading its
        configuration of the profile; deploying names the environment, the profile and the strategy."""
        return {
            Resource.ROLLOUT_LIVE: self.live.environment_arn,
            Resource.ROLLOUT_FLOOR: self.floor.environment_arn,
            Resource.ROLLOUT_PROFILE: self.flags.configuration_profile_arn,
            Resource.ROLLOUT_STRATEGY: self.flag_changes.deployment_strategy_arn,
            Resource.ROLLOUT_FLOOR_STRATEGY: self.restrictions.deployment_strategy_arn,
            Resource.OPS_TOPIC: alarm_topic.topic_arn,
        }

    def configuration_arn(self, environment: appconfig.Environment) -> str:
        return f"{environment.environment_arn}/configuration/{self.flags.configuration_profile_id}"

    def _connect(self, functions: Mapping[str, lambda_.Function], alarm_topic: sns.ITopic) -> None:
        """Tells each function that reads or writes the flags where they are, and grants what its
        spec declares (``infra/permissions.py``) on these resources."""
        arns = self.arns(alarm_topic)
        read_arns = {
            Resource.ROLLOUT_LIVE: self.configuration_arn(self.live),
            Resource.ROLLOUT_FLOOR: self.configuration_arn(self.floor),
        }
        for spec in FUNCTIONS:
            function = functions[spec.name]
            if spec.reads_rollout or spec.writes_rollout:
                function.add_environment(ENV_APPLICATION, self.application.application_id)
                function.add_environment("ROLLOUT_APPCONFIG_ENVIRONMENT", self.live.environment_id)
                function.add_environment("ROLLOUT_APPCONFIG_FLOOR_ENVIRONMENT", self.floor.environment_id)
                function.add_environment("ROLLOUT_APPCONFIG_PROFILE", self.flags.configuration_profile_id)
            if spec.writes_rollout:
                function.add_environment(
                    "ROLLOUT_APPCONFIG_DEPLOYMENT_STRATEGY", self.flag_changes.deployment_strategy_id
                )
                function.add_environment(
                    "ROLLOUT_APPCONFIG_FLOOR_DEPLOYMENT_STRATEGY", self.restrictions.deployment_strategy_id
                )
            if spec.notifies_operators:
                function.add_environment(ENV_OPS_TOPIC, alarm_topic.topic_arn)
            for statement in statements_for(spec):
                if statement.resource not in arns:
                    continue
                reading = statement.actions <= {
                    "appconfig:StartConfigurationSession",
                    "appconfig:GetLatestConfiguration",
                }
                resource = read_arns[statement.resource] if reading else arns[statement.resource]
                function.add_to_role_policy(
                    iam.PolicyStatement(actions=sorted(statement.actions), resources=[resource])
                )
