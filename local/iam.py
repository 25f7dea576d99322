"""IAM for the local stack: every AWS call a function makes is checked against its deployed policy.

moto accepts any call from anyone, so a handler calling something its role lacks would pass every
local test and fail on AWS (a 502 and an approval stuck, in one case). Here each call a handler makes
is turned into the IAM actions and resources AWS would authorise, and checked against the function's
statements from ``infra/permissions.py``, the declaration the CDK stack builds each role's policy
from (``tests/infra/test_attack_row07_least_privilege.py`` proves the two agree). A call outside the
policy fails as on AWS: a ``ClientError`` with the service's access-denied code, raised before any
request is made, so the flow meets the same failure it would meet there.

Calls made outside a function (the gateway invoking the api, tests reading tables) are the
harness's, not a role's, and are not checked.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any
from unittest import mock

from botocore.client import BaseClient
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from infra.permissions import Resource, Statement

ACCOUNT = "123456789012"
REGION = "us-east-1"

calling_function: ContextVar[str | None] = ContextVar("calling_function", default=None)

# The error code each service answers an unauthorised call with.
_DENIED_CODES = {"sns": "AuthorizationError", "s3": "AccessDenied"}
# DynamoDB authorises each item of a transaction as the single-item action.
_TRANSACT_ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}
# S3 operations whose IAM action has another name.
_S3_ACTIONS = {
    "ListObjectVersions": "ListBucketVersions",
    "ListObjectsV2": "ListBucket",
    "ListObjects": "ListBucket",
    "HeadObject": "GetObject",
    "HeadBucket": "ListBucket",
}
# Parameters that name the resource a call acts on, per IAM service prefix.
_RESOURCE_PARAMETERS = {
    "dynamodb": ("TableName",),
    "secretsmanager": ("SecretId",),
    "sns": ("TopicArn",),
    "states": ("stateMachineArn", "executionArn"),
    "kms": ("KeyId",),
    "s3": ("Bucket",),
    # SES v2 authorises a send on the identity it is sent from.
    "ses": ("FromEmailAddress",),
}


def declarations(*, ses_identity: bool = False) -> tuple[Mapping[str, tuple[Statement, ...]], type[Resource]]:
    """Every function's statements and the resource names, from ``infra/permissions.py``.

    The local stack runs from a checkout (it loads functions/ and the ASL file from it), where
    ``infra`` sits next to ``local``; a console script's path may not include the checkout.
    """
    from cartpilot_local.stack import REPO_ROOT

    if str(REPO_ROOT) not in sys.path:
        sys.path.append(str(REPO_ROOT))
    from infra.permissions import Resource, policies

    return policies(ses_identity=ses_identity), Resource


def requested(service: str, operation: str, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (IAM action, resource identifier) pairs AWS authorises for one API call."""
    if service == "dynamodb" and operation in {"TransactWriteItems", "TransactGetItems"}:
        pairs = []
        for item in params.get("TransactItems", []):
            for kind, request in item.items():
                pairs.append((f"dynamodb:{_TRANSACT_ITEM_ACTIONS[kind]}", str(request.get("TableName", ""))))
        return pairs
    if service == "dynamodb" and operation in {"BatchGetItem", "BatchWriteItem"}:
        return [(f"dynamodb:{operation}", str(table)) for table in params.get("RequestItems", {})]
    if service == "sns" and params.get("PhoneNumber"):
        # An SMS names no ARN (and the number is no one's business in a refusal message).
        return [(f"sns:{operation}", _PHONE_NUMBER)]
    if service == "states" and operation.startswith("SendTask"):
        # A task token names no resource: IAM authorises it on the state machine that issued it.
        return [(f"states:{operation}", _ISSUING_STATE_MACHINE)]
    resource = next(
        (str(params[name]) for name in _RESOURCE_PARAMETERS.get(service, ()) if name in params), ""
    )
    if service == "dynamodb" and params.get("IndexName"):
        # A query of an index is authorised on the index's ARN, not the table's.
        resource = index_resource(resource, str(params["IndexName"]))
    if service == "ses" and resource:
        resource = parseaddr(resource)[1]  # "Brand <sender@…>": the address is the identity
    if service == "s3":
        operation = _S3_ACTIONS.get(operation, operation)
        if operation == "GetObject" and "VersionId" in params:
            operation = "GetObjectVersion"
        # Grants on the audit bucket are per prefix of object names (listing: of the asked prefix).
        resource = object_resource(resource, str(params.get("Key", params.get("Prefix", ""))))
    return [(f"{service}:{operation}", resource)]


def object_resource(bucket: str, key: str) -> str:
    """How a call naming objects of ``bucket`` under ``key``'s first path segment is identified."""
    folder, slash, _ = key.partition("/")
    return f"{bucket}/{folder}{slash}"


def index_resource(table: str, index: str) -> str:
    """How a call naming ``table`` and ``index`` is told apart from one naming the table."""
    return f"{table}/index/{index}"


# Stands for "the state machine that issued the task token" in the pairs above.
_ISSUING_STATE_MACHINE = "(issuing state machine)"
# Stands for any phone number an SMS is published to.
_PHONE_NUMBER = "(phone number)"


@dataclass
class Refusal:
    function: str
    action: str
    resource: str


@dataclass
class PolicyEnforcement:
    """Checks the calls of the functions running in this process against their policies.

    ``resources`` maps what a call names (a table name, a secret id, a topic or state machine ARN)
    to the declared resource it is; ``execution_prefix`` is the ARN prefix of the order flow's
    executions.
    """

    policies: Mapping[str, tuple[Statement, ...]]
    resources: Mapping[str, Resource]
    order_flow: Resource
    executions: Resource
    execution_prefix: str
    refusals: list[Refusal] = field(default_factory=list)

    def check(self, function: str, service: str, operation: str, params: Mapping[str, Any]) -> None:
        from infra.permissions import allows

        statements = self.policies.get(function, ())
        for action, identifier in requested(service, operation, params):
            resource = self._resource(identifier)
            if not allows(statements, action, resource):
                self.refusals.append(Refusal(function, action, identifier))
                raise _access_denied(function, service, operation, action, identifier)

    def _resource(self, identifier: str) -> Resource | None:
        if identifier == _ISSUING_STATE_MACHINE:
            return self.order_flow
        if identifier.startswith(self.execution_prefix):
            return self.executions
        return self.resources.get(identifier)

    @contextmanager
    def installed(self) -> Iterator[PolicyEnforcement]:
        """Checks every botocore call made while the context is open, whichever client makes it."""
        enforcement = self
        # The one method every client's calls go through (botocore's stubs leave it out).
        original = BaseClient._make_api_call  # type: ignore[attr-defined]

        def make_api_call(client: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
            function = calling_function.get()
            if function is not None:
                service = client.meta.service_model.signing_name
                enforcement.check(function, service, operation_name, api_params)
            return original(client, operation_name, api_params)

        with mock.patch.object(BaseClient, "_make_api_call", make_api_call):
            yield self


@contextmanager
def acting_as(function: str) -> Iterator[None]:
    """Attributes the AWS calls made inside the context to ``function``'s role."""
    token = calling_function.set(function)
    try:
        yield
    finally:
        calling_function.reset(token)


def _access_denied(function: str, service: str, operation: str, action: str, resource: str) -> ClientError:
    role = f"arn:aws:sts::{ACCOUNT}:assumed-role/cartpilot-local-{function}/{function}"
    message = (
        f"User: {role} is not authorized to perform: {action} on resource: {resource or '*'} "
        f"because no identity-based policy allows the {action} action"
    )
    status = 403 if service in _DENIED_CODES else 400
    return ClientError(
        {
            "Error": {"Code": _DENIED_CODES.get(service, "AccessDeniedException"), "Message": message},
            "ResponseMetadata": {
                "HTTPStatusCode": status,
                "HTTPHeaders": {},
                "HostId": "",
                "RequestId": str(uuid.uuid4()),
                "RetryAttempts": 0,
            },
        },
        operation,
    )


def local_enforcement(environ: Mapping[str, str]) -> PolicyEnforcement:
    """The resources the functions' environment names, under their declared names."""
    from infra.permissions import ENVIRONMENT, OBJECT_PREFIXES

    statements, resource = declarations(ses_identity=bool(environ.get("SES_IDENTITY")))
    from cartpilot.adapters.aws.approvals_table import PENDING_DELIVERY_INDEX
    from cartpilot.adapters.aws.notices_table import NOTICES_DUE_INDEX, REMINDERS_DUE_INDEX
    from cartpilot.adapters.aws.order_events_table import OPEN_TRACKING_INDEX

    resources = {environ[variable]: named for variable, named in ENVIRONMENT.items() if environ.get(variable)}
    resources[_PHONE_NUMBER] = resource.SMS
    for named, prefix in OBJECT_PREFIXES.items():
        bucket = next((name for name, found in resources.items() if found is resource.AUDIT_BUCKET), None)
        if bucket is not None:
            resources[object_resource(bucket, prefix)] = named
    if environ.get("GOALS_TABLE"):
        resources[index_resource(environ["GOALS_TABLE"], PENDING_DELIVERY_INDEX)] = (
            resource.PENDING_DELIVERY_INDEX
        )
        resources[index_resource(environ["GOALS_TABLE"], OPEN_TRACKING_INDEX)] = resource.OPEN_TRACKING_INDEX
        resources[index_resource(environ["GOALS_TABLE"], NOTICES_DUE_INDEX)] = resource.NOTICES_DUE_INDEX
        resources[index_resource(environ["GOALS_TABLE"], REMINDERS_DUE_INDEX)] = resource.REMINDERS_DUE_INDEX
    if environ.get("SCHEDULES_TABLE"):
        from cartpilot.adapters.aws.schedules_table import DUE_SCHEDULES_INDEX, USER_SCHEDULES_INDEX

        resources[index_resource(environ["SCHEDULES_TABLE"], DUE_SCHEDULES_INDEX)] = (
            resource.DUE_SCHEDULES_INDEX
        )
        resources[index_resource(environ["SCHEDULES_TABLE"], USER_SCHEDULES_INDEX)] = (
            resource.USER_SCHEDULES_INDEX
        )
    state_machine_arn = environ["STATE_MACHINE_ARN"]
    return PolicyEnforcement(
        policies=statements,
        resources=resources,
        order_flow=resource.ORDER_FLOW,
        executions=resource.ORDER_FLOW_EXECUTIONS,
        execution_prefix=state_machine_arn.replace(":stateMachine:", ":execution:") + ":",
    )
