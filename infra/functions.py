"""The Lambda functions: one role, one log group and one least-privilege policy each.

Every function runs the newest Python runtime on Graviton with the brand's core layer, Powertools
configured from the environment and active X-Ray tracing. What a function may touch is declared once
in ``FUNCTIONS`` below and turned into IAM grants here; the read-only catalog connector, for
example, can read goals and nothing else, while the connectors that change orders at the merchant
get the merchant credentials and a reserved concurrency that bounds how hard they can hit it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.brands import Brand
from infra.data import DataTables
from infra.layer import ARCHITECTURE, RUNTIME, core_layer_code
from infra.nag import KMS_GENERATE_DATA_KEY, KMS_REENCRYPT, XRAY_WILDCARD, acknowledge
from infra.notifications import Notifications
from infra.secrets import BrandSecrets
from infra.settings import DeploySettings

HANDLER = "app.handler"
LAMBDA_BRANDS_DIR = "/opt/brands"
LOG_LEVEL = "INFO"
FUNCTION_LOG_RETENTION = logs.RetentionDays.ONE_MONTH
ROTATION_CODE_DIR = Path(__file__).parent / "rotation"
LINK_KEY_ROTATION_PERIOD = cdk.Duration.days(30)


class FunctionSourceError(FileNotFoundError):
    """A function the stack deploys has no handler on disk."""


class TableAccess(StrEnum):
    READ = "read"
    READ_WRITE = "read-write"


@dataclass(frozen=True)
class FunctionSpec:
    """One function: where its code is, which ASL variable names it, and what it may touch.

    Timeouts stay below the ``TimeoutSeconds`` of the order-flow task that invokes the function, so
    a slow call ends as the function's own error, which the flow's Retry and Catch understand.
    """

    name: str
    source: str
    description: str
    goals: TableAccess
    asl_variable: str | None = None
    audit: bool = False
    idempotency: bool = False
    counters: bool = False
    link_signing_key: bool = False
    # Signs UCP requests to the merchant, or serves the profile that publishes the public keys.
    ucp_signing_keys: bool = False
    merchant_credentials: bool = False
    llm_api_key: bool = False
    merchant: bool = False
    notifies: bool = False
    approval_links: bool = False
    mutates_merchant: bool = False
    timeout_seconds: int = 30
    memory_mb: int = 512

    @property
    def construct_id(self) -> str:
        return self.name.capitalize()

    @property
    def writes_encrypted_data(self) -> bool:
        return self.goals is TableAccess.READ_WRITE or self.audit or self.idempotency or self.counters


_RW = TableAccess.READ_WRITE

FUNCTIONS: tuple[FunctionSpec, ...] = (
    FunctionSpec(
        name="api",
        source="api",
        description="HTTP API: goals, approvals, audit and the OpenAPI document",
        goals=_RW,
        audit=True,
        idempotency=True,
        link_signing_key=True,
        ucp_signing_keys=True,
        approval_links=True,
        timeout_seconds=15,
    ),
    FunctionSpec(
        name="planner",
        source="planner",
        description="Turns a goal into a concrete plan with read-only merchant lookups",
        asl_variable="PlannerFunctionArn",
        goals=_RW,
        audit=True,
        # Reads the link-signing key ring to sign the plan snapshot in its audit record.
        link_signing_key=True,
        llm_api_key=True,
        merchant=True,
        # Discovery, catalog search and the pricing session are merchant calls: a merchant that
        # authenticates platforms needs its credential on them too.
        merchant_credentials=True,
        ucp_signing_keys=True,
        timeout_seconds=100,
        memory_mb=1024,
    ),
    FunctionSpec(
        name="catalog",
        source="connectors/catalog",
        description="Read-only catalog connector",
        asl_variable="CatalogFunctionArn",
        goals=TableAccess.READ,
        merchant=True,
        merchant_credentials=True,  # the price check opens a pricing session at the merchant
        ucp_signing_keys=True,
    ),
    FunctionSpec(
        name="validator",
        source="validator",
        description="Checks a plan against the brand's policies, limits and risk tiers",
        asl_variable="ValidatorFunctionArn",
        goals=_RW,
        audit=True,
        counters=True,
        memory_mb=1024,
    ),
    FunctionSpec(
        name="approval",
        source="approval",
        description="Records a pending approval and sends the signed approval link",
        asl_variable="ApprovalFunctionArn",
        goals=_RW,
        audit=True,
        link_signing_key=True,
        notifies=True,
        approval_links=True,
    ),
    *(
        FunctionSpec(
            name=name,
            source=f"connectors/{name}",
            description=f"Mutating {name} connector",
            asl_variable=f"{name.capitalize()}FunctionArn",
            goals=_RW,
            audit=True,
            idempotency=True,
            merchant_credentials=True,
            merchant=True,
            ucp_signing_keys=True,
            mutates_merchant=True,
            timeout_seconds=50,
        )
        for name in ("checkout", "payment", "fulfillment", "orders")
    ),
    FunctionSpec(
        name="notify",
        source="connectors/notify",
        description="Sends receipts and status notifications",
        asl_variable="NotifyFunctionArn",
        goals=_RW,
        audit=True,
        # A completed order is counted here, for the validator's per-day spend and velocity policies.
        counters=True,
        notifies=True,
    ),
    FunctionSpec(
        name="compensator",
        source="compensator",
        description="Undoes executed steps in reverse order",
        asl_variable="CompensatorFunctionArn",
        goals=_RW,
        audit=True,
        idempotency=True,
        merchant_credentials=True,
        merchant=True,
        ucp_signing_keys=True,
        mutates_merchant=True,
        timeout_seconds=100,
    ),
)


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
            "POWERTOOLS_SERVICE_NAME": brand.service_name,
            "POWERTOOLS_METRICS_NAMESPACE": brand.metrics_namespace,
            "LOG_LEVEL": LOG_LEVEL,
            # Responses carry plans, recipients and addresses: traces keep timings, not payloads.
            "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
        }
        self.by_name: dict[str, lambda_.Function] = {}
        for spec in FUNCTIONS:
            environment = common_environment | _own_environment(
                spec,
                merchant_url=merchant_url,
                secrets=secrets,
                notifications=notifications,
                approval_base_url=approval_base_url,
                public_api_url=public_api_url,
            )
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
            )
            role = self._role_of(function)
            self._grant(spec, role, tables=tables, secrets=secrets, notifications=notifications)
            acknowledge(
                role,
                XRAY_WILDCARD,
                f"Active tracing of the {spec.name} function: xray:PutTraceSegments and "
                "xray:PutTelemetryRecords support no resource-level permissions, so AWS requires '*'.",
            )
            self.by_name[spec.name] = function

        self.link_key_rotation = self._link_key_rotation(secrets, key=key)

    @property
    def everything(self) -> Mapping[str, lambda_.Function]:
        """The application's functions and the infrastructure's own (the key rotation), for alarms."""
        return {**self.by_name, "rotation": self.link_key_rotation}

    @property
    def api(self) -> lambda_.Function:
        return self.by_name["api"]

    @property
    def by_asl_variable(self) -> Mapping[str, lambda_.Function]:
        return {spec.asl_variable: self.by_name[spec.name] for spec in FUNCTIONS if spec.asl_variable}

    def connect_state_machine(
        self, state_machine: sfn.StateMachine, *, execution_arn_pattern: str, execution_arn_finding: str
    ) -> None:
        """The API starts executions, answers task tokens for approvals and reads execution status."""
        api = self.api
        api.add_environment("STATE_MACHINE_ARN", state_machine.state_machine_arn)
        state_machine.grant_start_execution(api)
        state_machine.grant_task_response(api)
        api.add_to_role_policy(
            iam.PolicyStatement(actions=["states:DescribeExecution"], resources=[execution_arn_pattern])
        )
        acknowledge(
            self._role_of(api),
            f"AwsSolutions-IAM5[Resource::{execution_arn_finding}]",
            "GET /goals/{goalId} reads the status of the goal's execution; execution ARNs are only known "
            "at run time, so the pattern names this brand's order-flow state machine and no other.",
        )

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
        return lambda_.Function(
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
        )

    def _link_key_rotation(self, secrets: BrandSecrets, *, key: kms.IKey) -> lambda_.Function:
        """Rotates the approval-link key ring every 30 days, and fills it in when the stack is created."""
        function = self._function(
            "LinkKeyRotation",
            description="Rotates the approval-link signing key ring",
            code=lambda_.Code.from_asset(str(ROTATION_CODE_DIR), exclude=["__pycache__", "*.pyc"]),
            environment={},
            timeout_seconds=30,
            memory_mb=256,
            key=key,
        )
        secrets.link_signing_key.add_rotation_schedule(
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
        tables: DataTables,
        secrets: BrandSecrets,
        notifications: Notifications,
    ) -> None:
        if spec.goals is TableAccess.READ_WRITE:
            tables.goals.grant_read_write_data(role)
        else:
            tables.goals.grant_read_data(role)
        if spec.audit:
            tables.grant_audit_append(role)
        if spec.idempotency:
            tables.idempotency.grant_read_write_data(role)
        if spec.counters:
            tables.counters.grant_read_write_data(role)
        if spec.link_signing_key:
            secrets.link_signing_key.grant_read(role)
        if spec.ucp_signing_keys:
            secrets.ucp_signing_keys.grant_read(role)
        if spec.merchant_credentials:
            secrets.merchant_credentials.grant_read(role)
        if spec.llm_api_key:
            secrets.llm_api_key.grant_read(role)
        if spec.notifies:
            notifications.grant_send(role)

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
    if spec.approval_links:
        environment["APPROVAL_BASE_URL"] = approval_base_url
    return environment
