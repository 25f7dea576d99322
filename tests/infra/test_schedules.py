"""Issue 13 row 4 (scheduled and recurring goals): the schedules table, the EventBridge Scheduler
schedule that runs the occurrence sweep, and the exact permissions of everything that touches them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cartpilot.adapters.aws import schedules_table
from infra import data
from tests.infra.conftest import Synthesis, live_alias, of_type, resource_refs, statements_of_role

pytestmark = pytest.mark.xdist_group("infra")


def _function(synthesis: Synthesis, brand: str, name: str) -> tuple[str, str]:
    """(function logical id, its role's logical id)."""
    function = synthesis.stacks[brand].functions.by_name[name]
    function_id = synthesis.logical_id(brand, function)
    resources = synthesis.template_json(brand)["Resources"]
    return function_id, resources[function_id]["Properties"]["Role"]["Fn::GetAtt"][0]


def _schedules_table(synthesis: Synthesis, brand: str) -> str:
    return synthesis.logical_id(brand, synthesis.stacks[brand].data.schedules)


def _table_statements(statements: list[dict[str, Any]], table_id: str) -> list[dict[str, Any]]:
    return [
        s
        for s in statements
        if table_id in json.dumps(s.get("Resource")) and any(a.startswith("dynamodb:") for a in s["Action"])
    ]


def test_the_index_the_adapter_queries_is_the_one_the_stack_declares(
    resources: dict[str, dict[str, Any]], synthesis: Synthesis, brand_name: str
) -> None:
    assert schedules_table.DUE_SCHEDULES_INDEX == data.DUE_SCHEDULES_INDEX
    assert schedules_table.SWEEP_KEY == data.DUE_SCHEDULES_KEY
    table = resources[_schedules_table(synthesis, brand_name)]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": "scheduleId", "KeyType": "HASH"}]
    due, by_user = table["GlobalSecondaryIndexes"]
    assert due["IndexName"] == data.DUE_SCHEDULES_INDEX
    assert due["KeySchema"] == [
        {"AttributeName": schedules_table.SWEEP_KEY, "KeyType": "HASH"},
        {"AttributeName": "nextAt", "KeyType": "RANGE"},
    ]
    assert due["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    # A shopper's schedules: every item by user, newest first, in full.
    assert by_user["IndexName"] == data.USER_SCHEDULES_INDEX == schedules_table.USER_SCHEDULES_INDEX
    assert by_user["KeySchema"] == [
        {"AttributeName": "userId", "KeyType": "HASH"},
        {"AttributeName": "createdAt", "KeyType": "RANGE"},
    ]
    assert by_user["Projection"] == {"ProjectionType": "ALL"}
    assert table["DeletionProtectionEnabled"] is True


def test_only_the_api_queries_the_index_by_user(
    resources: dict[str, dict[str, Any]], synthesis: Synthesis, brand_name: str
) -> None:
    table_id = _schedules_table(synthesis, brand_name)
    index = {"Fn::Join": ["", [{"Fn::GetAtt": [table_id, "Arn"]}, f"/index/{data.USER_SCHEDULES_INDEX}"]]}
    querying = set()
    for name in synthesis.stacks[brand_name].functions.by_name:
        _, role_id = _function(synthesis, brand_name, name)
        for statement in statements_of_role(resources, role_id):
            if index in resource_refs(statement):
                assert statement["Action"] == ["dynamodb:Query"], name
                querying.add(name)
    assert querying == {"api"}


def test_the_sweeps_dead_letter_queue_alarms(
    resources: dict[str, dict[str, Any]], synthesis: Synthesis, brand_name: str
) -> None:
    stack = synthesis.stacks[brand_name]
    (queue_id,) = of_type(resources, "AWS::SQS::Queue")
    topic = synthesis.logical_id(brand_name, stack.monitoring.alarm_topic)
    (alarm,) = [
        a["Properties"]
        for a in of_type(resources, "AWS::CloudWatch::Alarm").values()
        if a["Properties"]["AlarmName"] == f"CartPilot-{brand_name}-OccurrenceSweepDeadLetters"
    ]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
    assert alarm["Threshold"] == 1
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["AlarmActions"] == [{"Ref": topic}]


def test_eventbridge_scheduler_runs_the_sweep_every_minute_with_retries_and_a_dead_letter_queue(
    resources: dict[str, dict[str, Any]], synthesis: Synthesis, brand_name: str
) -> None:
    function_id, _ = _function(synthesis, brand_name, "occurrences")
    (schedule,) = of_type(resources, "AWS::Scheduler::Schedule").values()
    properties = schedule["Properties"]
    assert properties["ScheduleExpression"] == "rate(1 minute)"
    assert properties["State"] == "ENABLED"
    (group,) = of_type(resources, "AWS::Scheduler::ScheduleGroup").values()
    assert properties["GroupName"] == group["Properties"]["Name"] == f"cartpilot-{brand_name}-occurrences"
    target = properties["Target"]
    alias = live_alias(synthesis, brand_name, "occurrences")
    assert target["Arn"] == alias
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] == 60
    (queue_id,) = of_type(resources, "AWS::SQS::Queue")
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert resources[queue_id]["Properties"]["SqsManagedSseEnabled"] is True
    # The old-style rule is for the redelivery sweep only; nothing else invokes the occurrences function.
    for rule in of_type(resources, "AWS::Events::Rule").values():
        assert all(
            t["Arn"] not in (alias, {"Fn::GetAtt": [function_id, "Arn"]})
            for t in rule["Properties"]["Targets"]
        )


def test_the_schedulers_role_may_invoke_the_occurrences_function_and_nothing_else(
    resources: dict[str, dict[str, Any]], synthesis: Synthesis, brand_name: str
) -> None:
    (schedule,) = of_type(resources, "AWS::Scheduler::Schedule").values()
    role_id = schedule["Properties"]["Target"]["RoleArn"]["Fn::GetAtt"][0]
    trust = resources[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "scheduler.amazonaws.com"}]
    assert "aws:SourceAccount" in json.dumps(trust)
    statements = statements_of_role(resources, role_id)
    (queue_id,) = of_type(resources, "AWS::SQS::Queue")
    allowed = {
        (action, json.dumps(resource, sort_keys=True))
        for s in statements
        for action in s["Action"]
        for resource in resource_refs(s)
    }
    invoke = {(a, r) for a, r in allowed if a.startswith("lambda:")}
    # The live alias alone: neither $LATEST nor any other version.
    assert invoke == {("lambda:InvokeFunction", json.dumps(live_alias(synthesis, brand_name, "occurrences")))}
    others = allowed - invoke
    assert {a for a, _ in others} <= {"sqs:SendMessage"}
    assert all(queue_id in r for _, r in others)


def test_the_occurrences_function_reads_due_schedules_through_the_index_and_only_starts_flows(
    resources: dict[str, dict[str, Any]], synthesis: Synthesis, brand_name: str
) -> None:
    stack = synthesis.stacks[brand_name]
    table_id = _schedules_table(synthesis, brand_name)
    machine = synthesis.logical_id(brand_name, stack.order_flow.state_machine)
    _, role_id = _function(synthesis, brand_name, "occurrences")
    statements = statements_of_role(resources, role_id)

    on_table = _table_statements(statements, table_id)
    query = [s for s in on_table if "dynamodb:Query" in s["Action"]]
    items = [s for s in on_table if "dynamodb:Query" not in s["Action"]]
    assert [s["Action"] for s in query] == [["dynamodb:Query"]]
    assert query[0]["Resource"] == {
        "Fn::Join": ["", [{"Fn::GetAtt": [table_id, "Arn"]}, f"/index/{data.DUE_SCHEDULES_INDEX}"]]
    }
    assert [sorted(s["Action"]) for s in items] == [["dynamodb:GetItem", "dynamodb:UpdateItem"]]
    states = [s for s in statements if any(a.startswith("states:") for a in s["Action"])]
    assert [s["Action"] for s in states] == [["states:StartExecution"]]
    assert resource_refs(states[0]) == [{"Ref": machine}]
    # The sweep needs no runtime Scheduler calls: one fixed schedule, the table holds the state.
    everything = json.dumps(statements)
    assert "scheduler:" not in everything and "iam:PassRole" not in everything


def test_only_the_api_the_sweep_and_the_mandate_check_touch_the_schedules_table(
    resources: dict[str, dict[str, Any]], synthesis: Synthesis, brand_name: str
) -> None:
    table_id = _schedules_table(synthesis, brand_name)
    environments = {}
    for name in synthesis.stacks[brand_name].functions.by_name:
        function_id, role_id = _function(synthesis, brand_name, name)
        environments[name] = resources[function_id]["Properties"]["Environment"]["Variables"]
        actions = sorted(
            a
            for s in _table_statements(statements_of_role(resources, role_id), table_id)
            for a in s["Action"]
        )
        if name == "api":
            assert actions == [
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:Query",
                "dynamodb:UpdateItem",
            ]
        elif name == "occurrences":
            assert actions == ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"]
        elif name == "validator":
            # Reads an occurrence's schedule for its signed mandate; changes nothing there.
            assert actions == ["dynamodb:GetItem"]
        else:
            assert actions == [], name
    told = {name for name, environment in environments.items() if "SCHEDULES_TABLE" in environment}
    assert told == {"api", "occurrences", "validator"}
    assert environments["occurrences"]["SCHEDULES_TABLE"] == {"Ref": table_id}
