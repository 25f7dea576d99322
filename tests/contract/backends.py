"""What the contract tests hold on to for each backend: the port, plus what a test needs around it.

Each port's fixture yields one of these. The port itself is all the tests exercise; the rest
(editing storage behind the port's back, another instance for another thread, reading what a
recipient received, waiting tasks of a running flow) is how a test arranges and observes.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from cartpilot.approvals.ports import ApprovalStore
from cartpilot.audit.ports import AuditRecords
from cartpilot.brands.activity import OrderCounters
from cartpilot.goals.ports import GoalStore, Notifier, Workflow
from cartpilot.kernel.keyring import KeyRing, KeySource
from tests.fakes import FakeWorkflow, InMemoryGoalStore, RecordingNotifier, StaticKeySource

# How long a test waits for moto's Step Functions engine (it runs executions on threads) or SQS.
POLL_SECONDS = 5
POLLS = 4


@dataclass
class GoalStoreBackend:
    store: GoalStore
    # Another instance over the same storage, for another thread (another Lambda container).
    another: Callable[[], GoalStore]
    # Writes fields straight into storage, past every rule of the port (what a tamperer could do):
    # a large field is rewritten inside the part that holds it, under the part's key.
    edit: Callable[..., None]
    # Loses the part that holds a field (``steps``: the first step's result), as a deleted item would.
    drop_part: Callable[[str, str], None]
    # How many part items are stored for a goal, orphans included.
    part_count: Callable[[str], int]
    # The goal's head item's size in bytes, as DynamoDB counts it for write units (near enough).
    head_size: Callable[[str], int]


@dataclass
class AuditRecordsBackend:
    records: AuditRecords
    # Another instance over the same storage, for another thread (another Lambda container).
    another: Callable[[], AuditRecords]


@dataclass
class ApprovalStoreBackend:
    store: ApprovalStore
    another: Callable[[], ApprovalStore]


@dataclass
class OrderCountersBackend:
    counters: OrderCounters
    another: Callable[[], OrderCounters]


@dataclass(frozen=True)
class Received:
    """A notification as its recipient gets it."""

    message_id: str
    subject: str
    message: dict[str, Any]


class NotifierBackend:
    notifier: Notifier

    def received(self, count: int) -> list[Received]:
        """The first ``count`` notifications delivered, oldest first."""
        raise NotImplementedError


class KeySourceBackend:
    source: KeySource

    def rotate(self, key_id: str) -> None:
        """What the rotation Lambda does: adds a key and makes it current."""
        raise NotImplementedError

    def store(self, secret: dict[str, Any]) -> None:
        """Replaces the secret's value."""
        raise NotImplementedError


class WorkflowBackend:
    """A workflow whose flow has one task that waits on a task token, then reports how it was resumed."""

    workflow: Workflow

    def start_flow(self, name: str) -> None:
        """Starts an execution the way the API does, outside the port under test."""
        raise NotImplementedError

    def task_token(self, name: str) -> str:
        """The token the execution ``name`` waits on (its flow must be started)."""
        raise NotImplementedError

    def outcome(self, name: str) -> dict[str, Any]:
        """How the waiting task of ``name`` was resumed: success with its output, or failure."""
        raise NotImplementedError

    def executions(self, name: str) -> list[dict[str, Any]]:
        """The inputs of the executions started under ``name``."""
        raise NotImplementedError

    def close(self) -> None:
        """Ends whatever still runs."""

    def waiting_task(self) -> tuple[str, str]:
        """A fresh execution waiting on its task: (name, task token)."""
        name = f"flow-{uuid.uuid4().hex[:12]}"
        self.start_flow(name)
        return name, self.task_token(name)


# --- the fakes ---------------------------------------------------------------------------------


def fake_goal_store() -> GoalStoreBackend:
    store = InMemoryGoalStore()
    return GoalStoreBackend(
        store=store,
        another=lambda: store,
        edit=store.overwrite,
        drop_part=store.drop_part,
        part_count=store.part_count,
        head_size=store.head_size,
    )


class FakeNotifierBackend(NotifierBackend):
    def __init__(self) -> None:
        self.fake = RecordingNotifier()
        self.notifier = self.fake

    def received(self, count: int) -> list[Received]:
        delivered = []
        for message_id, sent in list(zip(self.fake.message_ids, self.fake.sent, strict=True))[:count]:
            message = dict(sent)
            subject = message.pop("subject")
            delivered.append(Received(message_id=message_id, subject=subject, message=message))
        return delivered


class FakeKeySourceBackend(KeySourceBackend):
    def __init__(self) -> None:
        self.fake = StaticKeySource(KeyRing.new_secret("k1"))
        self.source = self.fake

    def rotate(self, key_id: str) -> None:
        self.fake.rotate(key_id)

    def store(self, secret: dict[str, Any]) -> None:
        self.fake.secret = secret


class FakeWorkflowBackend(WorkflowBackend):
    def __init__(self) -> None:
        self.fake = FakeWorkflow()
        self.workflow = self.fake
        self._tokens: dict[str, str] = {}

    def start_flow(self, name: str) -> None:
        self.fake.start(name, {"goalId": name})

    def task_token(self, name: str) -> str:
        assert name in self.fake.started, f"no execution {name}"
        if name not in self._tokens:
            self._tokens[name] = self.fake.wait_for(f"token-{uuid.uuid4().hex}")
        return self._tokens[name]

    def outcome(self, name: str) -> dict[str, Any]:
        token = self._tokens[name]
        for kind, call in self.fake.calls:
            if call["taskToken"] == token:
                if kind == "success":
                    return {"kind": "success", "output": call["output"]}
                return {"kind": "failure", "error": call["error"], "cause": call["cause"]}
        raise AssertionError(f"the task of {name} was never resumed")

    def executions(self, name: str) -> list[dict[str, Any]]:
        return [self.fake.started[name]] if name in self.fake.started else []


# --- the AWS adapters on moto ------------------------------------------------------------------


class SnsNotifierBackend(NotifierBackend):
    """SnsNotifier on a moto topic, read through an SQS queue subscribed to it (as a recipient would)."""

    def __init__(self, sns: Any, sqs: Any) -> None:
        from cartpilot.adapters.aws.notifications import SnsNotifier

        topic_arn = sns.create_topic(Name="cartpilot-contract-notify")["TopicArn"]
        self._sqs = sqs
        self._queue_url = sqs.create_queue(QueueName="cartpilot-contract-inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        self._topic_arn = topic_arn
        self._delivered: list[Received] = []
        self.notifier = SnsNotifier(topic_arn, sns)

    def received(self, count: int) -> list[Received]:
        for _ in range(POLLS):
            if len(self._delivered) >= count:
                break
            response = self._sqs.receive_message(
                QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=POLL_SECONDS
            )
            for message in response.get("Messages", []):
                envelope = json.loads(message["Body"])
                assert envelope["Type"] == "Notification" and envelope["TopicArn"] == self._topic_arn
                self._delivered.append(
                    Received(
                        message_id=envelope["MessageId"],
                        subject=envelope.get("Subject", ""),
                        message=json.loads(envelope["Message"]),
                    )
                )
                self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
        return self._delivered[:count]


class SecretsManagerKeySourceBackend(KeySourceBackend):
    def __init__(self, secretsmanager: Any) -> None:
        from cartpilot.adapters.aws.secrets import SecretsManagerKeySource
        from cartpilot_local.resources import create_link_secret

        self._client = secretsmanager
        self._secret_id = f"cartpilot/contract/link-signing-{uuid.uuid4().hex[:8]}"
        create_link_secret(secretsmanager, self._secret_id)
        # No cache: a rotation is seen on the next read (the cache age has passed).
        self.source = SecretsManagerKeySource(self._secret_id, max_age_seconds=0)

    def rotate(self, key_id: str) -> None:
        current = json.loads(self._client.get_secret_value(SecretId=self._secret_id)["SecretString"])
        fresh = KeyRing.new_secret(key_id)
        self.store({"current": key_id, "keys": {**current["keys"], **fresh["keys"]}})  # type: ignore[dict-item]

    def store(self, secret: dict[str, Any]) -> None:
        self._client.put_secret_value(SecretId=self._secret_id, SecretString=json.dumps(secret))


def flow_definition(tasks_queue: str, results_queue: str) -> dict[str, Any]:
    """One task that waits on a token (sent through SQS), then a report of how it was resumed."""

    def report(body: dict[str, Any]) -> dict[str, Any]:
        return {
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage",
            "Parameters": {
                "QueueUrl": results_queue,
                "MessageBody": {"name.$": "$$.Execution.Name", **body},
            },
            "End": True,
        }

    return {
        "StartAt": "Wait",
        "States": {
            "Wait": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {
                    "QueueUrl": tasks_queue,
                    "MessageBody": {"name.$": "$$.Execution.Name", "taskToken.$": "$$.Task.Token"},
                },
                "ResultPath": "$.result",
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "Failed"}],
                "Next": "Resumed",
            },
            "Resumed": report({"kind": "success", "output.$": "$.result"}),
            "Failed": report({"kind": "failure", "error.$": "$.failure.Error", "cause.$": "$.failure.Cause"}),
        },
    }


@dataclass
class _Inbox:
    """Messages of an SQS queue, by the execution name they carry."""

    sqs: Any
    url: str
    by_name: dict[str, dict[str, Any]] = field(default_factory=dict)

    def get(self, name: str) -> dict[str, Any]:
        for _ in range(POLLS):
            if name in self.by_name:
                break
            response = self.sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=POLL_SECONDS
            )
            for message in response.get("Messages", []):
                body = json.loads(message["Body"])
                self.by_name[body["name"]] = body
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        assert name in self.by_name, f"nothing arrived for {name}"
        return self.by_name[name]


class StepFunctionsWorkflowBackend(WorkflowBackend):
    """StepFunctionsWorkflow on moto's Step Functions engine, with an SQS callback task."""

    def __init__(self, stepfunctions: Any, sqs: Any) -> None:
        from cartpilot.adapters.aws.workflow import StepFunctionsWorkflow

        self._sfn = stepfunctions
        self._tasks = _Inbox(sqs, sqs.create_queue(QueueName="cartpilot-contract-tasks")["QueueUrl"])
        self._results = _Inbox(sqs, sqs.create_queue(QueueName="cartpilot-contract-results")["QueueUrl"])
        self._arn = stepfunctions.create_state_machine(
            name="cartpilot-contract-flow",
            definition=json.dumps(flow_definition(self._tasks.url, self._results.url)),
            roleArn="arn:aws:iam::123456789012:role/cartpilot-contract-flow",
            type="STANDARD",
        )["stateMachineArn"]
        self.workflow = StepFunctionsWorkflow(stepfunctions, self._arn)

    def start_flow(self, name: str) -> None:
        self._sfn.start_execution(stateMachineArn=self._arn, name=name, input=json.dumps({"goalId": name}))

    def task_token(self, name: str) -> str:
        return str(self._tasks.get(name)["taskToken"])

    def outcome(self, name: str) -> dict[str, Any]:
        report = dict(self._results.get(name))
        report.pop("name")
        return report

    def executions(self, name: str) -> list[dict[str, Any]]:
        listed = self._sfn.list_executions(stateMachineArn=self._arn)["executions"]
        return [
            json.loads(self._sfn.describe_execution(executionArn=execution["executionArn"])["input"])
            for execution in listed
            if execution["name"] == name
        ]

    def close(self) -> None:
        # Nothing may keep running into the next test: fail every task still waiting, and see it end.
        for execution in self._sfn.list_executions(stateMachineArn=self._arn, statusFilter="RUNNING")[
            "executions"
        ]:
            name = execution["name"]
            if name in self._results.by_name:
                continue
            with contextlib.suppress(ClientError):  # resumed already, its report still on its way
                self._sfn.send_task_failure(
                    taskToken=self.task_token(name), error="TestOver", cause="teardown"
                )
            self._results.get(name)
