"""Alarms and a dashboard: what tells the brand's on-call that orders are going wrong.

Alarms fire on any failed or timed-out order flow, any step loop (the order flow's Express child) that
ran out of time, any compensation, any goal left NEEDS_ATTENTION
(the two business metrics the functions emit with Powertools Metrics, dimension ``service``), any
function error or throttle, server errors at the API, and any message in a dead-letter queue (an
invocation EventBridge Scheduler gave up on: scheduled goals may not be firing). They all notify one
encrypted SNS topic.
"""

from __future__ import annotations

from collections.abc import Mapping

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

PERIOD = cdk.Duration.minutes(5)
BUSINESS_METRICS = ("Compensations", "NeedsAttention")
API_SERVER_ERRORS_THRESHOLD = 5


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        brand: str,
        key: kms.IKey,
        metrics_namespace: str,
        service_name: str,
        state_machine: sfn.StateMachine,
        functions: Mapping[str, lambda_.IFunction],
        order_steps: sfn.StateMachine | None = None,
        rest_api: apigw.RestApi,
        alarm_email: str | None,
        dead_letter_queues: Mapping[str, sqs.IQueue] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self._prefix = f"CartPilot-{brand}"
        self.alarm_topic = sns.Topic(
            self, "AlarmTopic", display_name=f"CartPilot {brand} alarms", master_key=key, enforce_ssl=True
        )
        self.alarm_topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsOfThisAccount",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.alarm_topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": stack.format_arn(
                            service="cloudwatch",
                            resource="alarm",
                            resource_name="*",
                            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                        )
                    },
                },
            )
        )
        if alarm_email:
            self.alarm_topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        self._action = cloudwatch_actions.SnsAction(self.alarm_topic)
        self.alarms: list[cloudwatch.Alarm] = []

        flow_failed = state_machine.metric_failed(period=PERIOD, statistic="Sum")
        flow_timed_out = state_machine.metric_timed_out(period=PERIOD, statistic="Sum")
        self._alarm("OrderFlowFailed", flow_failed, "An order-flow execution failed")
        self._alarm("OrderFlowTimedOut", flow_timed_out, "An order-flow execution timed out")
        if order_steps is not None:
            # Only its timeouts: the step loop ends FAILED by design for every recorded outcome other
            # than a receipt (compensated, needs attention, a replan), which the order flow and the
            # business metrics already report. A timeout is the loop running out of its five minutes
            # mid-order; the order flow then undoes what ran, and someone should ask why it stalled.
            self._alarm(
                "OrderStepsTimedOut",
                order_steps.metric_timed_out(period=PERIOD, statistic="Sum"),
                "A step loop (the order flow's Express child) timed out; the order flow undid what ran",
            )

        business = {
            name: cloudwatch.Metric(
                namespace=metrics_namespace,
                metric_name=name,
                dimensions_map={"service": service_name},
                statistic="Sum",
                period=PERIOD,
            )
            for name in BUSINESS_METRICS
        }
        self._alarm("Compensations", business["Compensations"], "Executed steps were undone after a failure")
        self._alarm(
            "NeedsAttention", business["NeedsAttention"], "A goal needs a person: see its audit trail"
        )

        for name, function in functions.items():
            label = name.capitalize()
            self._alarm(
                f"{label}Errors",
                function.metric_errors(period=PERIOD, statistic="Sum"),
                f"The {name} function failed",
            )
            self._alarm(
                f"{label}Throttles",
                function.metric_throttles(period=PERIOD, statistic="Sum"),
                f"The {name} function was throttled",
            )

        api_5xx = rest_api.metric_server_error(period=PERIOD, statistic="Sum")
        self._alarm(
            "ApiServerErrors", api_5xx, "The API answered with 5xx", threshold=API_SERVER_ERRORS_THRESHOLD
        )

        for name, queue in (dead_letter_queues or {}).items():
            self._alarm(
                f"{name}DeadLetters",
                queue.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum"),
                f"The {name} dead-letter queue holds a message that could not be delivered",
            )

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=self._prefix)
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Order flows",
                left=[
                    state_machine.metric_started(period=PERIOD, statistic="Sum"),
                    state_machine.metric_succeeded(period=PERIOD, statistic="Sum"),
                    flow_failed,
                    flow_timed_out,
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Compensations and goals needing attention", left=list(business.values()), width=12
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Function errors",
                left=[
                    fn.metric_errors(period=PERIOD, statistic="Sum", label=name)
                    for name, fn in functions.items()
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Function throttles",
                left=[
                    fn.metric_throttles(period=PERIOD, statistic="Sum", label=name)
                    for name, fn in functions.items()
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Function duration p95",
                left=[
                    fn.metric_duration(period=PERIOD, statistic="p95", label=name)
                    for name, fn in functions.items()
                ],
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="API requests and errors",
                left=[
                    rest_api.metric_count(period=PERIOD, statistic="Sum"),
                    rest_api.metric_client_error(period=PERIOD, statistic="Sum"),
                    api_5xx,
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="API latency p95",
                left=[rest_api.metric_latency(period=PERIOD, statistic="p95")],
                width=12,
            ),
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms), width=24),
        )

    def _alarm(
        self, name: str, metric: cloudwatch.IMetric, description: str, *, threshold: float = 1
    ) -> None:
        alarm = cloudwatch.Alarm(
            self,
            name,
            alarm_name=f"{self._prefix}-{name}",
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(self._action)
        self.alarms.append(alarm)
