"""One fixture per port, parametrised over the in-memory fake and the real AWS adapter on moto.

Every test in this directory runs against both, so a fake can only pass for the adapter it
stands in for. The moto account is per test (``mock_aws`` resets it on exit) and is only
started for the real adapters.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import boto3
import pytest

from cartpilot.goals.parts import PART_OF, STEP_PART, STEP_REFS, STEPS_FIELD, part_key, ref_attribute
from cartpilot_local.resources import create_tables, table_names
from cartpilot_local.stack import atomic_dynamodb
from tests.contract.backends import (
    ApprovalStoreBackend,
    AuditRecordsBackend,
    FakeKeySourceBackend,
    FakeNotifierBackend,
    FakeWorkflowBackend,
    GoalStoreBackend,
    KeySourceBackend,
    NotifierBackend,
    OrderCountersBackend,
    SecretsManagerKeySourceBackend,
    SnsNotifierBackend,
    StepFunctionsWorkflowBackend,
    WorkflowBackend,
    fake_goal_store,
)
from tests.fakes import InMemoryApprovalStore, InMemoryAuditRecords, InMemoryOrderCounters

BRAND = "contract"
REGION = "us-east-1"


@contextmanager
def faithful_task_tokens() -> Iterator[None]:
    """Two places where moto's Step Functions is weaker than the service; the port's contract needs both.

    * A task token is single use: Step Functions answers ``TaskTimedOut`` ("Provided task does
      not exist anymore") to a second SendTaskSuccess/SendTaskFailure. moto keeps the token and
      accepts SendTaskFailure again forever (and SendTaskSuccess while the execution runs); here
      a used token answers ``InvalidToken``, which the adapter reads the same way.
    * SendTaskFailure carries ``cause`` to the failed task; moto's response handler drops it.
    """
    from moto.core.responses import EmptyResult
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackPoolManager
    from moto.stepfunctions.responses import StepFunctionResponse

    notify = CallbackPoolManager.notify
    used: set[tuple[int, str]] = set()
    lock = threading.Lock()

    def notify_once(pool: CallbackPoolManager, callback_id: str, outcome: Any) -> bool:
        # A used token answers as an unknown one (InvalidToken). The endpoint stays in the pool:
        # the waiting task may not have picked it up yet.
        with lock:
            if (id(pool), callback_id) in used:
                return False
            delivered = notify(pool, callback_id, outcome)
            if delivered:
                used.add((id(pool), callback_id))
            return delivered

    def send_task_failure(response: StepFunctionResponse) -> Any:
        response.stepfunction_backend.send_task_failure(
            response._get_param("taskToken"),
            error=response._get_param("error"),
            cause=response._get_param("cause"),
        )
        return EmptyResult()

    with (
        mock.patch.object(CallbackPoolManager, "notify", notify_once),
        mock.patch.object(StepFunctionResponse, "send_task_failure", send_task_failure),
    ):
        yield


@functools.cache
def _session() -> boto3.Session:
    """One session per process: building clients from a warm session is quick, from a new one slow.
    Created after moto is imported, so its clients carry moto's hook (nothing reaches AWS)."""
    return boto3.Session(region_name=REGION)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    """A fresh moto account with the brand's tables; Step Functions executes its state machines."""
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS
    from moto import mock_aws

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    # Powertools keeps one Secrets Manager client per process: build it in this account.
    monkeypatch.delitem(DEFAULT_PROVIDERS, "secrets", raising=False)
    with (
        mock_aws(config={"stepfunctions": {"execute_state_machine": True}}),
        atomic_dynamodb(),
        faithful_task_tokens(),
    ):
        session = _session()
        create_tables(session.client("dynamodb"), BRAND)
        yield session
        DEFAULT_PROVIDERS.pop("secrets", None)


def _table(kind: str) -> Any:
    """A new resource for the table: boto3 resources are not shared between threads."""
    return _session().resource("dynamodb").Table(table_names(BRAND)[kind])


def _in_aws(request: pytest.FixtureRequest) -> boto3.Session | None:
    """The moto account for a real adapter; None for the fake (which needs no AWS at all)."""
    if request.param == "fake":
        return None
    session: boto3.Session = request.getfixturevalue("aws")
    return session


@pytest.fixture(params=["fake", "dynamodb"])
def goals(request: pytest.FixtureRequest) -> GoalStoreBackend:
    if _in_aws(request) is None:
        return fake_goal_store()
    from cartpilot.adapters.aws.goals_table import DynamoDBGoalStore

    table = _table("goals")

    def head(goal_id: str) -> dict[str, Any]:
        item: dict[str, Any] = table.get_item(Key={"pk": f"GOAL#{goal_id}"}, ConsistentRead=True)["Item"]
        return item

    def stored_part_key(goal_id: str, field: str) -> str:
        if field == STEPS_FIELD:
            return part_key(goal_id, STEP_PART, head(goal_id)[STEP_REFS][0][1])
        part = PART_OF[field]
        return part_key(goal_id, part, head(goal_id)[ref_attribute(part)])

    def edit(goal_id: str, **fields: Any) -> None:
        # As stored by the adapter: structured values as JSON text, the rest as they are; a large
        # field inside its part, rewritten in place with a plain PutItem.
        for name, value in fields.items():
            if name in PART_OF:
                key = stored_part_key(goal_id, name)
                item = table.get_item(Key={"pk": key}, ConsistentRead=True)["Item"]
                body = {**json.loads(item["body"]), name: value}
                table.put_item(Item={**item, "body": json.dumps(body)})
                continue
            stored = json.dumps(value) if isinstance(value, dict | list) else value
            table.update_item(
                Key={"pk": f"GOAL#{goal_id}"},
                UpdateExpression="SET #name = :value",
                ExpressionAttributeNames={"#name": name},
                ExpressionAttributeValues={":value": stored},
            )

    def drop_part(goal_id: str, field: str) -> None:
        table.delete_item(Key={"pk": stored_part_key(goal_id, field)})

    def part_count(goal_id: str) -> int:
        items = table.scan()["Items"]
        return sum(1 for item in items if str(item["pk"]).startswith(f"GOALPART#{goal_id}#"))

    def head_size(goal_id: str) -> int:
        # DynamoDB's item size: attribute names plus values (strings as UTF-8, numbers about their digits).
        def size(value: Any) -> int:
            if isinstance(value, list):
                return 3 + sum(1 + size(item) for item in value)
            if isinstance(value, set):
                return sum(size(item) for item in value)
            return len(str(value).encode())

        return sum(len(name.encode()) + size(value) for name, value in head(goal_id).items())

    return GoalStoreBackend(
        store=DynamoDBGoalStore(table),
        another=lambda: DynamoDBGoalStore(_table("goals")),
        edit=edit,
        drop_part=drop_part,
        part_count=part_count,
        head_size=head_size,
    )


@pytest.fixture(params=["fake", "dynamodb"])
def audit(request: pytest.FixtureRequest) -> AuditRecordsBackend:
    if _in_aws(request) is None:
        fake = InMemoryAuditRecords()
        return AuditRecordsBackend(records=fake, another=lambda: fake)
    from cartpilot.adapters.aws.audit_table import DynamoDBAuditRecords

    return AuditRecordsBackend(
        records=DynamoDBAuditRecords(_table("audit")), another=lambda: DynamoDBAuditRecords(_table("audit"))
    )


@pytest.fixture(params=["fake", "dynamodb"])
def approvals(request: pytest.FixtureRequest) -> ApprovalStoreBackend:
    if _in_aws(request) is None:
        fake = InMemoryApprovalStore()
        return ApprovalStoreBackend(store=fake, another=lambda: fake)
    from cartpilot.adapters.aws.approvals_table import DynamoDBApprovalStore

    return ApprovalStoreBackend(
        store=DynamoDBApprovalStore(_table("goals")), another=lambda: DynamoDBApprovalStore(_table("goals"))
    )


@pytest.fixture(params=["fake", "dynamodb"])
def counters(request: pytest.FixtureRequest) -> OrderCountersBackend:
    if _in_aws(request) is None:
        fake = InMemoryOrderCounters()
        return OrderCountersBackend(counters=fake, another=lambda: fake)
    from cartpilot.adapters.aws.counters_table import DynamoDBOrderCounters

    return OrderCountersBackend(
        counters=DynamoDBOrderCounters(_table("counters")),
        another=lambda: DynamoDBOrderCounters(_table("counters")),
    )


@pytest.fixture(params=["fake", "sns"])
def notifications(request: pytest.FixtureRequest) -> NotifierBackend:
    session = _in_aws(request)
    if session is None:
        return FakeNotifierBackend()
    return SnsNotifierBackend(session.client("sns"), session.client("sqs"))


@pytest.fixture(params=["fake", "secretsmanager"])
def keys(request: pytest.FixtureRequest) -> KeySourceBackend:
    session = _in_aws(request)
    if session is None:
        return FakeKeySourceBackend()
    return SecretsManagerKeySourceBackend(session.client("secretsmanager"))


@pytest.fixture(
    params=[
        "fake",
        # moto builds its ASL parser once per process (seconds): keep these on one worker.
        pytest.param("stepfunctions", marks=pytest.mark.xdist_group("contract-stepfunctions")),
    ]
)
def flows(request: pytest.FixtureRequest) -> Iterator[WorkflowBackend]:
    session = _in_aws(request)
    if session is None:
        yield FakeWorkflowBackend()
        return
    backend = StepFunctionsWorkflowBackend(session.client("stepfunctions"), session.client("sqs"))
    try:
        yield backend
    finally:
        backend.close()
