"""Workflow: executions started once by name, and task tokens that resume (or fail) a task once."""

from __future__ import annotations

import pytest

from cartpilot.goals.ports import TaskTokenGone, Workflow
from tests.contract.backends import WorkflowBackend


def resume(workflow: Workflow, how: str, token: str) -> None:
    if how == "succeed":
        workflow.succeed(token, {"undo": "requested"})
    else:
        workflow.fail(token, error="ApprovalRejected", cause="The approver said no.")


def test_start_returns_an_id_per_name(flows: WorkflowBackend):
    first = flows.workflow.start("g-1", {"goalId": "g-1"})
    second = flows.workflow.start("g-2", {"goalId": "g-2"})
    assert isinstance(first, str) and first.endswith(":g-1")
    assert second != first
    assert flows.executions("g-1") == [{"goalId": "g-1"}]


def test_starting_a_name_again_returns_its_id_and_starts_nothing(flows: WorkflowBackend):
    started = flows.workflow.start("g-1", {"goalId": "g-1"})
    assert flows.workflow.start("g-1", {"goalId": "g-1"}) == started
    assert flows.workflow.start("g-1", {"goalId": "g-1", "retry": 2}) == started
    assert flows.executions("g-1") == [{"goalId": "g-1"}]


def test_starting_a_finished_name_again_starts_nothing(flows: WorkflowBackend):
    started = flows.workflow.start("g-1", {"goalId": "g-1"})
    flows.workflow.succeed(flows.task_token("g-1"), {"done": True})
    assert flows.outcome("g-1") == {"kind": "success", "output": {"done": True}}
    assert flows.workflow.start("g-1", {"goalId": "g-1"}) == started
    assert flows.executions("g-1") == [{"goalId": "g-1"}]


def test_succeed_resumes_the_waiting_task_with_the_output(flows: WorkflowBackend):
    name, token = flows.waiting_task()
    output = {"planId": "p-1", "steps": [{"id": "s1", "action": "checkout.create"}], "total": 249900}
    flows.workflow.succeed(token, output)
    assert flows.outcome(name) == {"kind": "success", "output": output}


def test_fail_fails_the_waiting_task_with_error_and_cause(flows: WorkflowBackend):
    name, token = flows.waiting_task()
    flows.workflow.fail(token, error="ApprovalRejected", cause="The approver said no.")
    assert flows.outcome(name) == {
        "kind": "failure",
        "error": "ApprovalRejected",
        "cause": "The approver said no.",
    }


def test_each_token_resumes_its_own_task(flows: WorkflowBackend):
    (first, first_token), (second, second_token) = flows.waiting_task(), flows.waiting_task()
    assert first_token != second_token
    flows.workflow.fail(second_token, error="ApprovalExpired", cause="nobody answered")
    flows.workflow.succeed(first_token, {"n": 1})
    assert flows.outcome(first) == {"kind": "success", "output": {"n": 1}}
    assert flows.outcome(second) == {
        "kind": "failure",
        "error": "ApprovalExpired",
        "cause": "nobody answered",
    }


@pytest.mark.parametrize("how", ["succeed", "fail"])
def test_a_token_nobody_waits_for_is_gone(flows: WorkflowBackend, how: str):
    flows.waiting_task()  # a flow waits, on another token
    with pytest.raises(TaskTokenGone):
        resume(flows.workflow, how, "AAAAKgAAAAIAAAAAAAAAAZ-never-issued")


@pytest.mark.parametrize("then", ["succeed", "fail"])
@pytest.mark.parametrize("first", ["succeed", "fail"])
def test_a_used_token_is_gone(flows: WorkflowBackend, first: str, then: str):
    name, token = flows.waiting_task()
    resume(flows.workflow, first, token)
    assert flows.outcome(name)["kind"] == ("success" if first == "succeed" else "failure")
    with pytest.raises(TaskTokenGone):
        resume(flows.workflow, then, token)
    assert flows.outcome(name)["kind"] == ("success" if first == "succeed" else "failure")


def test_the_flow_gets_its_input_and_output_as_they_were_when_sent(flows: WorkflowBackend):
    flow_input = {"goalId": "g-1", "context": {"budget": 100000}}
    flows.workflow.start("g-1", flow_input)
    flow_input["context"]["budget"] = 1  # type: ignore[index]
    output = {"planId": "p-1", "steps": [{"id": "s1"}]}
    flows.workflow.succeed(flows.task_token("g-1"), output)
    output["steps"].append({"id": "s9"})  # type: ignore[attr-defined]
    assert flows.executions("g-1") == [{"goalId": "g-1", "context": {"budget": 100000}}]
    assert flows.outcome("g-1") == {"kind": "success", "output": {"planId": "p-1", "steps": [{"id": "s1"}]}}


@pytest.mark.parametrize("how", ["start", "succeed"])
def test_what_is_not_json_is_refused(flows: WorkflowBackend, how: str):
    name, token = flows.waiting_task()
    calls = {
        "start": lambda: flows.workflow.start("g-other", {"at": object()}),
        "succeed": lambda: flows.workflow.succeed(token, {"at": object()}),
    }
    with pytest.raises(TypeError):
        calls[how]()
    assert flows.executions("g-other") == []
    flows.workflow.succeed(token, {"ok": True})  # the task still waits
    assert flows.outcome(name) == {"kind": "success", "output": {"ok": True}}
