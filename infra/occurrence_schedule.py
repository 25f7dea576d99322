"""EventBridge Scheduler runs the occurrence sweep: the one schedule behind every scheduled goal.

Design: one fixed ``rate(N minutes)`` schedule invokes the occurrences function, which fires every
occurrence that is due (the schedules table's sparse index, by next occurrence). The alternative,
one ``at()`` schedule per next occurrence re-armed after each fire, would give exact times but split
each schedule's truth between DynamoDB and Scheduler: a lost re-arm stops a recurrence silently, and
every pause, resume and cancel becomes a two-system update that can half-fail. With the sweep, the
table is the only state (a pause or cancel is one conditional write), a failed or missed run is the
next run's work, and no Scheduler calls or ``iam:PassRole`` are needed at run time. The price is up
to a minute of lateness, which a shopping occurrence does not notice.

The schedule lives in its own group, its execution role may invoke the occurrences function and
nothing else, and an invocation Scheduler could not deliver after its retries lands in an encrypted
dead-letter queue (an alarm-worthy event: occurrences are late until the sweep runs again).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.nag import acknowledge

# Retries of one invocation: the next sweep starts within the period anyway, so a few are enough,
# and an event older than the period is superseded by a newer sweep.
RETRY_ATTEMPTS = 2
DEAD_LETTER_RETENTION = cdk.Duration.days(14)


class OccurrenceSchedule(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, function: lambda_.IFunction, brand: str, minutes: int
    ) -> None:
        super().__init__(scope, construct_id)
        self.group = scheduler.ScheduleGroup(
            self,
            "Group",
            schedule_group_name=f"cartpilot-{brand}-occurrences",
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DEAD_LETTER_RETENTION,
        )
        acknowledge(
            self.dead_letters,
            "AwsSolutions-SQS3",
            "This queue is itself the dead-letter queue of the occurrence sweep's schedule (EventBridge "
            "Scheduler's DeadLetterConfig, which cdk-nag does not recognise as a redrive source).",
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": cdk.Stack.of(self).account}},
            ),
            description=f"CartPilot {brand}: EventBridge Scheduler invokes the occurrences function, nothing else",
        )
        self.schedule = scheduler.Schedule(
            self,
            "Sweep",
            description=f"Fires due occurrences of scheduled goals every {minutes} minute(s)",
            schedule=scheduler.ScheduleExpression.rate(cdk.Duration.minutes(minutes)),
            schedule_group=self.group,
            target=targets.LambdaInvoke(
                function,
                role=self.role,
                dead_letter_queue=self.dead_letters,
                retry_attempts=RETRY_ATTEMPTS,
                max_event_age=cdk.Duration.minutes(minutes),
            ),
        )
        # ``function`` is the occurrences function's live alias: CDK grants the role that one ARN.
