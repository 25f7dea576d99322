"""The local stack: the whole order flow on 127.0.0.1 with no AWS account and no Docker.

moto emulates DynamoDB, Step Functions (executing the real ASL file), Lambda,
Secrets Manager and SNS in this process; Lambda invocations run the real handlers
in-process; the sandbox merchant and the API gateway listen on loopback. Only one
stack can run per process: moto and the functions' environment are process-wide.
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from unittest import mock

import boto3

from cartpilot import wiring
from cartpilot.rollout.model import RolloutSettings
from cartpilot.wiring.schedules import use_schedule_clock
from cartpilot_local.iam import PolicyEnforcement, local_enforcement
from cartpilot_local.lambda_runtime import InProcessLambdaRuntime, load_handler
from cartpilot_local.nested_executions import nested_executions
from cartpilot_local.notifications import TopicOutage, sent_emails, verify_sender
from cartpilot_local.resources import (
    audit_bucket_name,
    create_audit_bucket,
    create_link_secret,
    create_plan_signing_key,
    create_signing_keys_secret,
    create_tables,
    plan_signing_key_alias,
    table_environment,
)
from cartpilot_local.rollout import LocalRollout, rollout_routes
from cartpilot_local.schedule_clock import AdjustableClock
from cartpilot_local.schedules import running_on_schedule
from cartpilot_local.starting_executions import starting_executions

if TYPE_CHECKING:
    from cartpilot_local.merchant.state import MerchantState

REPO_ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS_DIR = REPO_ROOT / "functions"
ASL_PATH = REPO_ROOT / "statemachines" / "order_flow.asl.json"
# The step loop the order flow nests (Express on AWS and here) and the undo flow an undo request starts.
STEPS_ASL_PATH = REPO_ROOT / "statemachines" / "order_steps.asl.json"
UNDO_ASL_PATH = REPO_ROOT / "statemachines" / "undo_flow.asl.json"
REGION = "us-east-1"
ACCOUNT = "123456789012"


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    directory: str
    asl_variable: str | None
    # Invoked on a timer (EventBridge Scheduler on AWS; ``cartpilot_local.schedules`` here).
    scheduled: bool = False


FUNCTIONS: tuple[FunctionSpec, ...] = (
    FunctionSpec("api", "api", None),
    FunctionSpec("planner", "planner", "PlannerFunctionArn"),
    FunctionSpec("validator", "validator", "ValidatorFunctionArn"),
    FunctionSpec("approval", "approval", "ApprovalFunctionArn"),
    FunctionSpec("compensator", "compensator", "CompensatorFunctionArn"),
    FunctionSpec("catalog", "connectors/catalog", "CatalogFunctionArn"),
    FunctionSpec("checkout", "connectors/checkout", "CheckoutFunctionArn"),
    FunctionSpec("payment", "connectors/payment", "PaymentFunctionArn"),
    FunctionSpec("fulfillment", "connectors/fulfillment", "FulfillmentFunctionArn"),
    FunctionSpec("orders", "connectors/orders", "OrdersFunctionArn"),
    FunctionSpec("notify", "connectors/notify", "NotifyFunctionArn"),
    FunctionSpec("redelivery", "redelivery", None, scheduled=True),
    FunctionSpec("notices", "notices", None, scheduled=True),
    FunctionSpec("occurrences", "occurrences", None, scheduled=True),
    FunctionSpec("tracking", "tracking", None, scheduled=True),
)


# Retry waits of this development stack. The ASL file leaves every Retry's IntervalSeconds and
# BackoffRate to the environment as unquoted ``${...}`` placeholders (the production values, and why,
# are RETRY_TIMINGS in infra/orchestration.py). Here a retry waits 1 s with no backoff, the least
# moto's engine takes (it sleeps for real, in whole seconds: IntervalSeconds >= 1, BackoffRate >= 1),
# so a fault drill takes seconds instead of a minute; error names and retry counts are the file's, as
# on AWS. One wait stays longer to keep the flow's behaviour: a step that met an open circuit is
# retried just past the breaker's reset, as on AWS, so the retry meets a half-open breaker and a brief
# brown-out heals instead of failing fast until the retries run out. The breaker's reset is short
# here too (MERCHANT_BREAKER_RESET_SECONDS), so that wait is two seconds, not six.
LOCAL_BREAKER_RESET_SECONDS = 1
CIRCUIT_OPEN_RETRY_SECONDS = math.floor(LOCAL_BREAKER_RESET_SECONDS) + 1
LOCAL_RETRY_TIMINGS: dict[str, int] = {
    "LambdaRetryIntervalSeconds": 1,
    "LambdaRetryBackoffRate": 1,
    "CircuitOpenRetryIntervalSeconds": CIRCUIT_OPEN_RETRY_SECONDS,
    "CircuitOpenRetryBackoffRate": 1,
    "MerchantRetryIntervalSeconds": 1,
    "MerchantRetryBackoffRate": 1,
    "NotifyRetryIntervalSeconds": 1,
    "NotifyRetryBackoffRate": 1,
    "CompensationRetryIntervalSeconds": 1,
    "CompensationRetryBackoffRate": 1,
    # In-process functions end with their step; a second is plenty.
    "StepsSettleSeconds": 1,
}


def substitute_definition(template: str, substitutions: dict[str, str]) -> str:
    """What CloudFormation's DefinitionSubstitutions does to the ASL file: ``${Name}`` -> value.

    Retry timings not given are this stack's short ones (``LOCAL_RETRY_TIMINGS``).
    """
    values = {name: str(value) for name, value in LOCAL_RETRY_TIMINGS.items()} | substitutions
    for name, value in values.items():
        template = template.replace("${" + name + "}", value)
    if "${" in template:
        raise ValueError("the state machine definition has a substitution the stack does not provide")
    return template


class LocalStack:
    def __init__(
        self,
        *,
        brand: str = "sandbox",
        api_port: int = 0,
        merchant_port: int = 0,
        log_level: str = "WARNING",
        merchant_read_timeout: float | None = None,
        merchant_url: str | None = None,
        merchant_feed: str | None = None,
        merchant_api_key: tuple[str, str] | None = None,
        rollout: RolloutSettings | None = None,
        state_dir: Path | None = None,
    ) -> None:
        """``merchant_url`` points the stack at a running UCP merchant instead of starting the sandbox;
        ``merchant_feed`` gives that merchant's product feed (for a merchant without a catalog), and
        ``merchant_api_key`` (header, value) the credential it issued, kept in the emulated Secrets
        Manager as a deployment keeps it."""
        self.brand = brand
        self._external_merchant_url = merchant_url.rstrip("/") if merchant_url else None
        self._merchant_feed = merchant_feed
        self._merchant_api_key = merchant_api_key
        self._api_port = api_port
        self._merchant_port = merchant_port
        self._log_level = log_level
        self._merchant_read_timeout = merchant_read_timeout
        self._exit = ExitStack()
        # Lambda scales out per concurrent request; sixteen warm containers a function is plenty here.
        self.runtime = InProcessLambdaRuntime(containers_per_function=16)
        self.api_url = ""
        self.merchant_url = ""
        self.merchant_state: MerchantState | None = None
        self.state_machine_arn = ""
        self.steps_state_machine_arn = ""
        self.undo_state_machine_arn = ""
        self.topic_arn = ""
        self.staff_topic_arn = ""
        # The brand's SES sender (brand.yaml notifications.sesIdentity), verified in the emulator.
        self.ses_identity = ""
        self.topic_outage = TopicOutage()
        self.link_secret_id = f"cartpilot/{brand}/link-signing"
        self.view_link_secret_id = f"cartpilot/{brand}/view-link-signing"
        self.merchant_credentials_secret_id = f"cartpilot/{brand}/merchant-credentials"
        self.signing_keys_secret_id = f"cartpilot/{brand}/ucp-signing-keys"
        self.plan_signing_key_alias = plan_signing_key_alias(brand)
        self.audit_bucket = audit_bucket_name(brand)
        # Each function's AWS calls are checked against its deployed policy (infra/permissions.py).
        self.iam: PolicyEnforcement | None = None
        self.schedule_clock = AdjustableClock()
        # The brand's rollout flags (default: stage all); a file under the state directory, a fresh
        # temporary one unless given.
        self._rollout_settings = rollout or RolloutSettings()
        self._state_dir = state_dir
        self.rollout: LocalRollout | None = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LocalStack:
        from moto import mock_aws

        _quiet_local_noise()

        from cartpilot_local.gateway import create_gateway
        from cartpilot_local.merchant.app import create_app
        from cartpilot_local.servers import serve_in_thread

        try:
            self._set_environment_for_aws()
            self._exit.enter_context(mock_aws(config={"stepfunctions": {"execute_state_machine": True}}))
            self._exit.enter_context(self.runtime.installed())
            # startExecution(.sync:2) tasks start and await child executions as on AWS.
            self._exit.enter_context(nested_executions())
            # Task-token calls made while another execution starts find the waiting task.
            self._exit.enter_context(starting_executions())
            self._exit.enter_context(atomic_dynamodb())
            self._exit.enter_context(atomic_s3_writes())
            if self._external_merchant_url is not None:
                self.merchant_url = self._external_merchant_url
            else:
                merchant_app = create_app()
                # The sandbox's books and keys, for tests that act as the merchant (order events).
                self.merchant_state = merchant_app.state.merchant
                merchant = serve_in_thread(merchant_app, port=self._merchant_port)
                self._exit.callback(merchant.stop)
                self.merchant_url = merchant.url
            self._create_resources()
            self.topic_outage = self._exit.enter_context(TopicOutage().installed())
            self.rollout = self._start_rollout()
            gateway = serve_in_thread(
                create_gateway(
                    "api", self.outbox, self.advance_schedule_clock, local_routes=rollout_routes(self.rollout)
                ),
                port=self._api_port,
            )
            self._exit.callback(gateway.stop)
            self.api_url = gateway.url
            self._set_environment_for_functions()
            self.iam = self._exit.enter_context(local_enforcement(os.environ).installed())
            self._exit.enter_context(_product_logs_to_stdout(self._log_level))
            # Cached clients, settings and secrets from an earlier stack must not leak into this one.
            wiring.reset()
            # Schedules read their own clock, which tests move forward (POST /_local/clock).
            use_schedule_clock(self.schedule_clock.now)
            self._exit.callback(use_schedule_clock, None)
            self._register_functions()
            scheduled = [spec.name for spec in FUNCTIONS if spec.scheduled]
            self._exit.enter_context(running_on_schedule(scheduled, REGION))
        except BaseException:
            self._exit.close()
            raise
        return self

    def stop(self) -> None:
        self._exit.close()

    def _start_rollout(self) -> LocalRollout:
        state_dir = self._state_dir
        if state_dir is None:
            state_dir = Path(self._exit.enter_context(tempfile.TemporaryDirectory(prefix="cartpilot-local-")))
        rollout = LocalRollout(state_dir, self.brand)
        rollout.initialise(self._rollout_settings)
        return rollout

    def _set_environment_for_aws(self) -> None:
        # Fake credentials: nothing here may ever reach a real AWS account.
        os.environ.update(
            {
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SESSION_TOKEN": "testing",
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
            }
        )

    def _set_environment_for_functions(self) -> None:
        env = {
            "CARTPILOT_BRAND": self.brand,
            **table_environment(self.brand),
            "LINK_SIGNING_SECRET_ID": self.link_secret_id,
            "VIEW_LINK_SECRET_ID": self.view_link_secret_id,
            "SIGNING_KEYS_SECRET_ID": self.signing_keys_secret_id,
            "PLAN_SIGNING_KEY_ID": self.plan_signing_key_alias,
            "AUDIT_BUCKET": self.audit_bucket,
            # Our UCP profile is served by the API (GET /.well-known/ucp); UCP-Agent names it.
            "PUBLIC_API_URL": self.api_url,
            "MERCHANT_URL": self.merchant_url,
            "MERCHANT_BREAKER_RESET_SECONDS": str(LOCAL_BREAKER_RESET_SECONDS),
            "NOTIFY_TOPIC_ARN": self.topic_arn,
            **({"SES_IDENTITY": self.ses_identity} if self.ses_identity else {}),
            "STAFF_TOPIC_ARN": self.staff_topic_arn,
            "STATE_MACHINE_ARN": self.state_machine_arn,
            "UNDO_STATE_MACHINE_ARN": self.undo_state_machine_arn,
            "APPROVAL_BASE_URL": self.api_url,
            "ROLLOUT_FLAGS_FILE": str(self.rollout.path) if self.rollout is not None else "",
            "POWERTOOLS_SERVICE_NAME": f"cartpilot-{self.brand}",
            "POWERTOOLS_METRICS_NAMESPACE": "CartPilot",
            "POWERTOOLS_TRACE_DISABLED": "true",
            # EMF metrics go to stdout on Lambda, where CloudWatch picks them up; locally they are noise.
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": self._log_level,
            "LOG_LEVEL": self._log_level,
        }
        if self._merchant_read_timeout is not None:
            env["MERCHANT_READ_TIMEOUT"] = str(self._merchant_read_timeout)
        if self._merchant_feed is not None:
            env["MERCHANT_FEED"] = self._merchant_feed
        if self._merchant_api_key is not None:
            env["MERCHANT_CREDENTIALS_SECRET_ID"] = self.merchant_credentials_secret_id
            env["MERCHANT_CREDENTIALS_HEADER"] = self._merchant_api_key[0]
        os.environ.update(env)
        from cartpilot.kernel.observability import logger

        # The functions share one Logger, which may predate this environment: apply the level now.
        logger.setLevel(self._log_level)

    def _create_resources(self) -> None:
        create_tables(boto3.client("dynamodb", region_name=REGION), self.brand)
        create_plan_signing_key(boto3.client("kms", region_name=REGION), self.plan_signing_key_alias)
        create_audit_bucket(boto3.client("s3", region_name=REGION), self.audit_bucket)
        create_link_secret(boto3.client("secretsmanager", region_name=REGION), self.link_secret_id)
        # The shopper view links' own ring, created like the approval-link one.
        create_link_secret(boto3.client("secretsmanager", region_name=REGION), self.view_link_secret_id)
        if self._merchant_api_key is not None:
            boto3.client("secretsmanager", region_name=REGION).create_secret(
                Name=self.merchant_credentials_secret_id, SecretString=self._merchant_api_key[1]
            )
        create_signing_keys_secret(
            boto3.client("secretsmanager", region_name=REGION), self.signing_keys_secret_id
        )
        from cartpilot.brands.config import load_brand
        from cartpilot.wiring.settings import brands_dir

        self.ses_identity = load_brand(self.brand, brands_dir()).notifications.get("sesIdentity", "")
        if self.ses_identity:
            verify_sender(self.ses_identity, REGION)
        self.topic_arn = boto3.client("sns", region_name=REGION).create_topic(
            Name=f"cartpilot-{self.brand}-notify"
        )["TopicArn"]
        self.staff_topic_arn = boto3.client("sns", region_name=REGION).create_topic(
            Name=f"cartpilot-{self.brand}-staff"
        )["TopicArn"]

        iam = boto3.client("iam", region_name=REGION)
        role_arn = iam.create_role(
            RoleName="cartpilot-local",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        lambda_client = boto3.client("lambda", region_name=REGION)
        substitutions: dict[str, str] = {}
        for spec in FUNCTIONS:
            arn = lambda_client.create_function(
                FunctionName=spec.name,
                Runtime="python3.13",
                Role=role_arn,
                Handler="app.handler",
                Code={"ZipFile": _placeholder_zip(spec)},
                Timeout=60,
            )["FunctionArn"]
            if spec.asl_variable:
                substitutions[spec.asl_variable] = arn
        stepfunctions = boto3.client("stepfunctions", region_name=REGION)

        def create(name: str, path: Path, machine_type: Literal["EXPRESS", "STANDARD"]) -> str:
            definition = substitute_definition(path.read_text(encoding="utf-8"), substitutions)
            return str(
                stepfunctions.create_state_machine(
                    name=f"cartpilot-{self.brand}-{name}",
                    definition=definition,
                    roleArn=role_arn,
                    type=machine_type,
                )["stateMachineArn"]
            )

        # As the CDK stack builds them (infra/stack.py): the nested step loop first, its ARN then goes
        # into the order flow's definition.
        self.steps_state_machine_arn = create("order-steps", STEPS_ASL_PATH, "EXPRESS")
        substitutions["OrderStepsStateMachineArn"] = self.steps_state_machine_arn
        self.state_machine_arn = create("order-flow", ASL_PATH, "STANDARD")
        self.undo_state_machine_arn = create("undo-flow", UNDO_ASL_PATH, "STANDARD")

    def _register_functions(self) -> None:
        for spec in FUNCTIONS:
            path = FUNCTIONS_DIR / spec.directory / "app.py"
            self.runtime.register(spec.name, functools.partial(load_handler, path))

    def advance_schedule_clock(self, seconds: float) -> str:
        """Moves the schedules' time forward; the next sweep (within a second) fires what fell due."""
        return self.schedule_clock.advance(seconds).isoformat()

    def outbox(self) -> list[dict[str, Any]]:
        """The notifications that would have been sent (approval links, receipts): the shoppers'
        topic's, then the staff channel's (whose messages say ``"audience": "staff"``)."""
        from moto.sns.models import sns_backends

        messages: list[dict[str, Any]] = []
        for arn in (self.topic_arn, self.staff_topic_arn):
            topic = sns_backends[ACCOUNT][REGION].topics.get(arn)
            for notification in topic.sent_notifications if topic else []:
                _message_id, message, subject, _attributes, _group = notification
                messages.append({"subject": subject, **json.loads(message)})
        # Text messages to phones (one-time codes): their words, never the number they went to.
        for _phone, text in list(sns_backends[ACCOUNT][REGION].sms_messages.values()):
            messages.append({"kind": "verification-code", "text": text})
        # Emails (receipts, shipping notices, the fallback): rendered, without the address.
        messages.extend(sent_emails(ACCOUNT, REGION))
        return messages


def _placeholder_zip(spec: FunctionSpec) -> bytes:
    """moto wants a code package; the code that runs is loaded from functions/ in-process."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", (FUNCTIONS_DIR / spec.directory / "app.py").read_text(encoding="utf-8"))
    return buffer.getvalue()


@contextmanager
def atomic_dynamodb() -> Iterator[None]:
    """Makes each emulated DynamoDB request atomic, as the real service is per item.

    moto evaluates a ConditionExpression and then writes, with nothing in between held;
    under the local stack's threads two conditional writes could both pass. Our
    exactly-once guarantees (audit chain places, one approval decision, one goal per key)
    rest on conditional writes, so the emulator must not be weaker than DynamoDB here.
    """
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.RLock()
    original = DynamoHandler.call_action

    def call_action(handler: DynamoHandler) -> Any:
        with lock:
            return original(handler)

    with mock.patch.object(DynamoHandler, "call_action", call_action):
        yield


@contextmanager
def atomic_s3_writes() -> Iterator[None]:
    """Makes each emulated S3 PutObject atomic, as S3's conditional writes are.

    moto checks ``If-None-Match: *`` and then stores the object; two threads could both pass the
    check. The audit anchors rest on that condition: a place in a chain is written once.
    """
    from moto.s3.responses import S3Response

    lock = threading.RLock()
    original = S3Response.put_object

    def put_object(response: S3Response) -> Any:
        with lock:
            return original(response)

    with mock.patch.object(S3Response, "put_object", put_object):
        yield


@contextmanager
def _product_logs_to_stdout(level: str) -> Iterator[None]:
    """Prints the library's own stdlib loggers (``cartpilot.*``) as Lambda's runtime would, at the stack's level."""
    import logging
    import sys

    product = logging.getLogger("cartpilot")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    handler.setLevel(level)
    previous = product.level
    product.addHandler(handler)
    if product.getEffectiveLevel() > handler.level:
        product.setLevel(level)  # only ever more verbose: never hide records others listen for
    try:
        yield
    finally:
        product.removeHandler(handler)
        product.setLevel(previous)


def _quiet_local_noise() -> None:
    """moto logs every handled task failure with its full state; the flow's own audit says it better."""
    import logging
    import warnings

    logging.getLogger("moto").setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", message="No application metrics to publish")
