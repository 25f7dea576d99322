"""The Lambda functions: one role, one log group and one least-privilege policy each.

Every function runs the newest Python runtime on Graviton with the brand's core layer, Powertools
configured from the environment and active X-Ray tracing. What a function may touch is declared once
in ``FUNCTIONS`` (``infra/function_specs.py``), turned into explicit IAM statements by
``infra/permissions.py`` and into the role's policy here; the local stack checks every AWS call a
handler makes against the same statements. Every application function is published as a version behind
its ``live`` alias, and whatever invokes it (the order flow, API Gateway, the schedules) invokes that
alias, so a release moves the alias (gradually, for the mutating functions: ``infra/releases.py``)
instead of changing ``$LATEST`` under running flows. The api and the validator start from SnapStart
snapshots of their published versions. The read-only catalog connector, for
example, can read goals and nothing else, while the connectors that change orders at the merchant
get the merchant credentials and a reserved concurrency that bounds how hard they can hit it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.brands import Brand
from infra.data import (
    DUE_SCHEDULES_INDEX,
    NOTICES_DUE_INDEX,
    OPEN_TRACKING_INDEX,
    PENDING_DELIVERY_INDEX,
    REMINDERS_DUE_INDEX,
    USER_SCHEDULES_INDEX,
    DataTables,
)
from infra.function_specs import FUNCTIONS, FunctionSpec
from infra.layer import ARCHITECTURE, RUNTIME, core_layer_code
from infra.nag import KMS_GENERATE_DATA_KEY, KMS_REENCRYPT, XRAY_WILDCARD, acknowledge
from infra.notifications import Notifications
from infra.occurrence_schedule import OccurrenceSchedule
from infra.permissions import SECRETS, Resource, statements_for
from infra.release_id import release_environment
from infra.secrets import BrandSecrets
from infra.settings import DeploySettings

HANDLER = "app.handler"
LAMBDA_BRANDS_DIR = "/opt/brands"
LOG_LEVEL = "INFO"
FUNCTION_LOG_RETENTION = logs.RetentionDays.ONE_MONTH
ROTATION_CODE_DIR = Path(__file__).parent / "rotation"
LINK_KEY_ROTATION_PERIOD = cdk.Duration.days(30)
# What the order flow, API Gateway and the schedules invoke: the version a release has moved it to.
LIVE_ALIAS = "live"
# The brand key as DynamoDB and SNS use it for a reader and for a writer (what CDK's own grants give).
_KEY_READ_ACTIONS = frozenset({"kms:Decrypt", "kms:DescribeKey"})
_KEY_WRITE_ACTIONS = frozenset({"kms:Encrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"})


class FunctionSourceError(FileNotFoundError):
    """A function the stack deploys has no handler on disk."""


class Functions(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        brand: Brand,
        settings: DeploySettings,
        key: kms.IKey,
        tables: DataTables,
        secrets: BrandSecrets,
        notifications: Notifications,
        approval_base_url: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self._brand = brand
        missing = [
            spec.source
            for spec in FUNCTIONS
            if not (settings.paths.functions_dir / spec.source / "app.py").is_file()
        ]
        if missing:
            raise FunctionSourceError(
                f"no app.py for {', '.join(missing)} under {settings.paths.functions_dir}"
            )
        merchant_url = settings.merchant_url or brand.merchant_url
        if merchant_url is None:
            raise ValueError(f"brand {brand.name}: set merchants[0].url in brand.yaml or -c merchantUrl=URL")
        # Where merchants fetch our UCP profile, the one UCP-Agent names: the API, unless a custom
        # domain fronts it.
        public_api_url = settings.public_api_url or approval_base_url

        self.layer = lambda_.LayerVersion(
            self,
            "CoreLayer",
            code=core_layer_code(settings.layer, settings.paths, brand.directory),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description=f"CartPilot {brand.name}: the cartpilot package, its dependencies and brand files",
        )
        common_environment = {
            "CARTPILOT_BRAND": brand.name,
            "CARTPILOT_BRANDS_DIR": LAMBDA_BRANDS_DIR,
            "GOALS_TABLE": tables.goals.table_name,
            "AUDIT_TABLE": tables.audit.table_name,
            "IDEMPOTENCY_TABLE": tables.idempotency.table_name,
            "COUNTERS_TABLE": tables.counters.table_name,
            "AUDIT_BUCKET": tables.anchors.bucket.bucket_name,
            "PLAN_SIGNING_KEY_ID": tables.anchors.alias_name,
            "POWERTOOLS_SERVICE_NAME": brand.service_name,
            "POWERTOOLS_METRICS_NAMESPACE": brand.metrics_namespace,
            "LOG_LEVEL": LOG_LEVEL,
            # Responses carry plans, recipients and addresses: traces keep timings, not payloads.
            "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
            # The release every plan and audit record names (infra/release_id.py).
            **release_environment(brand, settings.paths),
        }
        self.by_name: dict[str, lambda_.Function] = {}
        # Each application function's ``live`` alias: the only thing anything invokes.
        self.live: dict[str, lambda_.Alias] = {}
        for spec in FUNCTIONS:
            environment = common_environment | _own_environment(
                spec,
                merchant_url=merchant_url,
                secrets=secrets,
                notifications=notifications,
                approval_base_url=approval_base_url,
                public_api_url=public_api_url,
            )
            if spec.schedules is not None:
                # Only the functions that use schedules are told where they are.
                environment["SCHEDULES_TABLE"] = tables.schedules.table_name
            function = self._function(
                spec.construct_id,
                description=spec.description,
                code=lambda_.Code.from_asset(
                    str(settings.paths.functions_dir / spec.source), exclude=["__pycache__", "*.pyc", "tests"]
                ),
                environment=environment,
                timeout_seconds=spec.timeout_seconds,
                memory_mb=spec.memory_mb,
                key=key,
                reserved_concurrency=(settings.mutating_concurrency or None)
                if spec.mutates_merchant
                else None,
                snap_start=spec.snap_start,
            )
            alias = self._live_alias(spec, function)
            role = self._role_of(function)
            self._grant(spec, role, key=key, tables=tables, secrets=secrets, notifications=notifications)
            acknowledge(
                role,
                XRAY_WILDCARD,
                f"Active tracing of the {spec.name} function: xray:PutTraceSegments and "
                "xray:PutTelemetryRecords support no resource-level permissions, so AWS requires '*'.",
            )
            self.by_name[spec.name] = function
            self.live[spec.name] = alias
            if spec.schedule_minutes is not None:
                self._schedule(spec, alias, minutes=spec.schedule_minutes)
            if spec.scheduler_minutes is not None:
                self.scheduler = OccurrenceSchedule(
                    self,
                    f"{spec.construct_id}Scheduler",
                    function=alias,
                    brand=brand.name,
                    minutes=spec.scheduler_minutes,
                )

        self.link_key_rotation = self._link_key_rotation(secrets, key=key)

    def _live_alias(self, spec: FunctionSpec, function: lambda_.Function) -> lambda_.Alias:
        """The function's current code and configuration, published as a version, behind ``live``.

        A change to either publishes a new version; CloudFormation then moves the alias (all at once,
        or through CodeDeploy's canary where ``infra/releases.py`` gives the alias a deployment group).
        Old versions are kept: a canary still sends part of the traffic to the previous one, and a
        rollback moves the alias back to it.
        """
        return lambda_.Alias(
            self,
            f"{spec.construct_id}Live",
            alias_name=LIVE_ALIAS,
            version=function.current_version,
            description=f"The released version of the {spec.name} function",
        )

    def _schedule(self, spec: FunctionSpec, function: lambda_.IFunction, *, minutes: int) -> None:
        """A scheduled function runs every ``minutes``; a missed run is the next run's work, so
        EventBridge does not retry one (the next starts within the period anyway)."""
        events.Rule(
            self,
            f"{spec.construct_id}Schedule",
            description=f"Runs the {spec.name} function every {minutes} minute(s)",
            schedule=events.Schedule.rate(cdk.Duration.minutes(minutes)),
            targets=[targets.LambdaFunction(function, retry_attempts=0)],
        )

    @property
    def everything(self) -> Mapping[str, lambda_.Function]:
        """The application's functions and the infrastructure's own (the key rotation), for alarms."""
        return {**self.by_name, "rotation": self.link_key_rotation}

    @property
    def api(self) -> lambda_.Function:
        return self.by_name["api"]

    @property
    def api_alias(self) -> lambda_.Alias:
        return self.live["api"]

    @property
    def by_asl_variable(self) -> Mapping[str, lambda_.Alias]:
        """The ``live`` alias of each function the order flow invokes, by its ASL variable."""
        return {spec.asl_variable: self.live[spec.name] for spec in FUNCTIONS if spec.asl_variable}

    def connect_state_machine(self, state_machine: sfn.StateMachine, undo_flow: sfn.StateMachine) -> None:
        """The API starts executions and answers task tokens; the redelivery sweep answers them too, and
        the occurrence sweep starts them. The API also starts undo executions."""
        self.api.add_environment("STATE_MACHINE_ARN", state_machine.state_machine_arn)
        for spec in FUNCTIONS:
            if spec.answers_task_tokens or spec.starts_order_flow:
                self.by_name[spec.name].add_environment("STATE_MACHINE_ARN", state_machine.state_machine_arn)
        for spec in FUNCTIONS:
            for statement in statements_for(spec):
                target = {Resource.ORDER_FLOW: state_machine, Resource.UNDO_FLOW: undo_flow}.get(
                    statement.resource
                )
                if target is not None:
                    self.by_name[spec.name].add_to_role_policy(
                        iam.PolicyStatement(
                            actions=sorted(statement.actions), resources=[target.state_machine_arn]
                        )
                    )
            if spec.starts_undo_flow:
                self.by_name[spec.name].add_environment("UNDO_STATE_MACHINE_ARN", undo_flow.state_machine_arn)

    def _function(
        self,
        construct_id: str,
        *,
        description: str,
        code: lambda_.Code,
        environment: dict[str, str],
        timeout_seconds: int,
        memory_mb: int,
        key: kms.IKey,
        reserved_concurrency: int | None = None,
        snap_start: bool = False,
    ) -> lambda_.Function:
        brand = self._brand.name
        role = iam.Role(
            self,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"CartPilot {brand}: the {construct_id} function, nothing else",
        )
        log_group = logs.LogGroup(
            self,
            f"{construct_id}Logs",
            retention=FUNCTION_LOG_RETENTION,
            encryption_key=key,
        )
        log_group.grant_write(role)
        function = lambda_.Function(
            self,
            construct_id,
            description=f"CartPilot {brand}: {description}",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=HANDLER,
            code=code,
            layers=[self.layer],
            role=role,
            environment=environment,
            tracing=lambda_.Tracing.ACTIVE,
            timeout=cdk.Duration.seconds(timeout_seconds),
            memory_size=memory_mb,
            log_group=log_group,
            reserved_concurrent_executions=reserved_concurrency,
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if snap_start else None,
            # Versions outlive the deploy that replaced them: the canary and a rollback still need them.
            current_version_options=lambda_.VersionOptions(removal_policy=cdk.RemovalPolicy.RETAIN),
        )
        if snap_start:
            cdk.Annotations.of(function).acknowledge_warning(
                "@aws-cdk/aws-lambda:snapStartRequirePublish",
                "Published: the function's current version is behind its live alias (_live_alias).",
            )
        return function

    def _link_key_rotation(self, secrets: BrandSecrets, *, key: kms.IKey) -> lambda_.Function:
        """Rotates the approval-link and the shopper view-link key rings every 30 days, and fills them
        in when the stack is created: one function, two schedules (it rotates whichever secret calls)."""
        function = self._function(
            "LinkKeyRotation",
            description="Rotates the approval-link and view-link signing key rings",
            code=lambda_.Code.from_asset(str(ROTATION_CODE_DIR), exclude=["__pycache__", "*.pyc"]),
            environment={},
            timeout_seconds=30,
            memory_mb=256,
            key=key,
        )
        secrets.link_signing_key.add_rotation_schedule(
            "Rotation", rotation_lambda=function, automatically_after=LINK_KEY_ROTATION_PERIOD
        )
        secrets.view_link_key.add_rotation_schedule(
            "Rotation", rotation_lambda=function, automatically_after=LINK_KEY_ROTATION_PERIOD
        )
        acknowledge(
            self._role_of(function),
            XRAY_WILDCARD,
            "Active tracing (xray:PutTraceSegments, xray:PutTelemetryRecords) and "
            "secretsmanager:GetRandomPassword, which CDK grants every rotation function: none of these "
            "actions supports resource-level permissions. The secret itself is granted by ARN.",
        )
        # Only Secrets Manager, and only on behalf of this account, may invoke the rotation.
        for child in function.node.children:
            if isinstance(child, lambda_.CfnPermission):
                child.source_account = cdk.Stack.of(self).account
        return function

    @staticmethod
    def _role_of(function: lambda_.Function) -> iam.IRole:
        role = function.role
        if role is None:
            raise ValueError(f"{function.node.path} has no execution role")
        return role

    def _grant(
        self,
        spec: FunctionSpec,
        role: iam.IRole,
        *,
        key: kms.IKey,
        tables: DataTables,
        secrets: BrandSecrets,
        notifications: Notifications,
    ) -> None:
        """The spec's statements (``infra/permissions.py``) on this stack's resources, and the use of the
        brand key that DynamoDB, Secrets Manager and SNS make on the function's behalf."""
        arns: dict[Resource, str] = {
            Resource.GOALS_TABLE: tables.goals.table_arn,
            Resource.AUDIT_TABLE: tables.audit.table_arn,
            Resource.IDEMPOTENCY_TABLE: tables.idempotency.table_arn,
            Resource.COUNTERS_TABLE: tables.counters.table_arn,
            Resource.LINK_SIGNING_KEY: secrets.link_signing_key.secret_arn,
            Resource.VIEW_LINK_KEY: secrets.view_link_key.secret_arn,
            Resource.UCP_SIGNING_KEYS: secrets.ucp_signing_keys.secret_arn,
            Resource.MERCHANT_CREDENTIALS: secrets.merchant_credentials.secret_arn,
            Resource.LLM_API_KEY: secrets.llm_api_key.secret_arn,
            Resource.NOTIFY_TOPIC: notifications.topic.topic_arn,
            Resource.STAFF_TOPIC: notifications.staff_topic.topic_arn,
            Resource.PENDING_DELIVERY_INDEX: f"{tables.goals.table_arn}/index/{PENDING_DELIVERY_INDEX}",
            Resource.OPEN_TRACKING_INDEX: f"{tables.goals.table_arn}/index/{OPEN_TRACKING_INDEX}",
            Resource.NOTICES_DUE_INDEX: f"{tables.goals.table_arn}/index/{NOTICES_DUE_INDEX}",
            Resource.REMINDERS_DUE_INDEX: f"{tables.goals.table_arn}/index/{REMINDERS_DUE_INDEX}",
            Resource.SCHEDULES_TABLE: tables.schedules.table_arn,
            Resource.DUE_SCHEDULES_INDEX: f"{tables.schedules.table_arn}/index/{DUE_SCHEDULES_INDEX}",
            Resource.USER_SCHEDULES_INDEX: f"{tables.schedules.table_arn}/index/{USER_SCHEDULES_INDEX}",
        }
        if notifications.ses_identity_arn:
            arns[Resource.SES_IDENTITY] = notifications.ses_identity_arn
        statements = [
            statement
            for statement in statements_for(spec, ses_identity=notifications.ses_identity_arn is not None)
            if statement.resource in arns  # the order flow's are added once it exists
        ]
        for statement in statements:
            role.add_to_principal_policy(
                iam.PolicyStatement(actions=sorted(statement.actions), resources=[arns[statement.resource]])
            )
        for statement in statements_for(spec):
            if statement.resource is Resource.SMS:
                # SMS to a phone number has no ARN; excluding every topic ARN leaves only phones.
                role.add_to_principal_policy(
                    iam.PolicyStatement(
                        actions=sorted(statement.actions),
                        not_resources=["arn:*:sns:*:*:*"],
                    )
                )
        # The anchors bucket and the plan-signing key need more than one ARN or a condition each.
        for statement in statements_for(spec):
            if statement.resource in {Resource.AUDIT_BUCKET, Resource.PLAN_KEYS, Resource.PLAN_SIGNING_KEY}:
                tables.anchors.allow(role, statement)
        # Encryption at rest: every item, secret and message is under the brand key.
        key_actions = set(_KEY_READ_ACTIONS)
        if spec.writes_encrypted_data:
            key_actions |= _KEY_WRITE_ACTIONS
        if spec.notifies:
            key_actions |= {"kms:GenerateDataKey*"}
        key.grant(role, *sorted(key_actions))
        if any(statement.resource in SECRETS for statement in statements):
            stack = cdk.Stack.of(self)
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["kms:Decrypt"],
                    resources=[key.key_arn],
                    conditions={
                        "StringEquals": {
                            "kms:ViaService": f"secretsmanager.{stack.region}.{stack.url_suffix}"
                        }
                    },
                )
            )

        if spec.writes_encrypted_data or spec.notifies:
            acknowledge(
                role,
                KMS_GENERATE_DATA_KEY,
                f"The {spec.name} function writes items or publishes messages encrypted with this brand's "
                "customer-managed key; the grant names that single key and the wildcard only spans the "
                "GenerateDataKey variants DynamoDB and SNS call on the writer's behalf.",
            )
        if spec.writes_encrypted_data:
            acknowledge(
                role,
                KMS_REENCRYPT,
                f"The {spec.name} function writes DynamoDB items under this brand's customer-managed key; "
                "ReEncrypt* (ReEncryptFrom/ReEncryptTo) is scoped to that single key ARN.",
            )


def _own_environment(
    spec: FunctionSpec,
    *,
    merchant_url: str,
    secrets: BrandSecrets,
    notifications: Notifications,
    approval_base_url: str,
    public_api_url: str,
) -> dict[str, str]:
    """What only this function is told: the secrets, topic and URLs it may use, and nothing more."""
    environment: dict[str, str] = {}
    if spec.merchant:
        environment["MERCHANT_URL"] = merchant_url
    if spec.link_signing_key:
        environment["LINK_SIGNING_SECRET_ID"] = secrets.link_signing_key.secret_arn
    if spec.view_link_key:
        environment["VIEW_LINK_SECRET_ID"] = secrets.view_link_key.secret_arn
    if spec.ucp_signing_keys:
        environment["SIGNING_KEYS_SECRET_ID"] = secrets.ucp_signing_keys.secret_arn
        environment["PUBLIC_API_URL"] = public_api_url
    if spec.merchant_credentials:
        environment["MERCHANT_CREDENTIALS_SECRET_ID"] = secrets.merchant_credentials.secret_arn
    if spec.llm_api_key:
        environment["LLM_API_KEY_SECRET_ID"] = secrets.llm_api_key.secret_arn
    if spec.notifies:
        environment["NOTIFY_TOPIC_ARN"] = notifications.topic.topic_arn
        if notifications.ses_identity_name:
            environment["SES_IDENTITY"] = notifications.ses_identity_name
    if spec.notifies_staff:
        environment["STAFF_TOPIC_ARN"] = notifications.staff_topic.topic_arn
    if spec.approval_links:
        environment["APPROVAL_BASE_URL"] = approval_base_url
    return environment
