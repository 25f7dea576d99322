"""Step Functions' own answers for a task token nobody waits for, as the adapter sees them.

moto answers a used token with InvalidToken only; the service also says TaskTimedOut (the
wait timed out) and TaskDoesNotExist. Each is the domain's TaskTokenGone; anything else is not.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from cartpilot.adapters.aws.workflow import TASK_TOKEN_GONE, StepFunctionsWorkflow
from cartpilot.goals.ports import TaskTokenGone, WorkflowUnavailable

ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:cartpilot-sandbox-order-flow"


class AnsweringClient:
    """A Step Functions client that answers every task call with one error code."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _refuse(self, operation: str, **params: Any) -> None:
        self.calls.append((operation, params))
        raise ClientError({"Error": {"Code": self.code, "Message": "no"}}, operation)

    def send_task_success(self, **params: Any) -> None:
        self._refuse("SendTaskSuccess", **params)

    def send_task_failure(self, **params: Any) -> None:
        self._refuse("SendTaskFailure", **params)


@pytest.mark.parametrize("code", sorted(TASK_TOKEN_GONE))
def test_every_token_gone_answer_is_the_domain_error(code: str):
    client = AnsweringClient(code)
    workflow = StepFunctionsWorkflow(client, ARN)
    with pytest.raises(TaskTokenGone, match=code):
        workflow.succeed("token-1", {"undo": "requested"})
    with pytest.raises(TaskTokenGone, match=code):
        workflow.fail("token-1", error="ApprovalRejected", cause="The approver said no.")
    assert [name for name, _ in client.calls] == ["SendTaskSuccess", "SendTaskFailure"]
    assert client.calls[0][1] == {"taskToken": "token-1", "output": '{"undo": "requested"}'}


@pytest.mark.parametrize("code", ["ThrottlingException", "PriorRequestNotComplete", "RequestTimeout"])
def test_throttling_and_unavailability_may_be_tried_again(code: str):
    workflow = StepFunctionsWorkflow(AnsweringClient(code), ARN)
    with pytest.raises(WorkflowUnavailable):
        workflow.succeed("token-1", {})
    with pytest.raises(WorkflowUnavailable):
        workflow.fail("token-1", error="PlanChanged", cause="changed")


@pytest.mark.parametrize("code", ["AccessDeniedException", "InvalidOutput", "TaskTimedOutX"])
def test_other_errors_are_not_mistaken_for_a_gone_token(code: str):
    workflow = StepFunctionsWorkflow(AnsweringClient(code), ARN)
    with pytest.raises(ClientError):
        workflow.succeed("token-1", {})
    with pytest.raises(ClientError):
        workflow.fail("token-1", error="PlanChanged", cause="changed")


def test_the_undo_flow_starts_once_per_name_on_its_own_state_machine():
    import boto3
    from moto import mock_aws

    with mock_aws():
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        role = "arn:aws:iam::123456789012:role/flow"
        definition = '{"StartAt": "S", "States": {"S": {"Type": "Succeed"}}}'
        flow = sfn.create_state_machine(name="flow", definition=definition, roleArn=role)["stateMachineArn"]
        undo = sfn.create_state_machine(name="undo", definition=definition, roleArn=role)["stateMachineArn"]
        workflow = StepFunctionsWorkflow(sfn, flow, undo)

        first = workflow.start_undo("g-1-undo", {"goalId": "g-1", "planId": "p-1"})
        again = workflow.start_undo("g-1-undo", {"goalId": "g-1", "planId": "p-1"})

        assert first == again == undo.replace(":stateMachine:", ":execution:") + ":g-1-undo"
        assert [e["name"] for e in sfn.list_executions(stateMachineArn=undo)["executions"]] == ["g-1-undo"]
        assert sfn.list_executions(stateMachineArn=flow)["executions"] == []


def test_without_the_undo_flow_configured_an_undo_start_says_so():
    from cartpilot.adapters.aws.workflow import UndoFlowNotConfigured

    client = AnsweringClient("AccessDeniedException")
    with pytest.raises(UndoFlowNotConfigured, match="UNDO_STATE_MACHINE_ARN"):
        StepFunctionsWorkflow(client, ARN).start_undo("g-1-undo", {"goalId": "g-1"})
    assert client.calls == []
