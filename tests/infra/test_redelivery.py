"""Issue 11 row 10 (the sweep): the redelivery function runs every minute with exactly what it needs:
a Query on the goals table's sparse index of undelivered decisions (not the table), the item reads and
writes of the courier and the audit, and SendTaskSuccess/SendTaskFailure on the order flow only."""

from __future__ import annotations

from typing import Any

import pytest

from cartpilot.adapters.aws import approvals_table
from infra import data
from tests.infra.conftest import Synthesis, live_alias, of_type, resource_refs, statements_of_role

pytestmark = pytest.mark.xdist_group("infra")


def _redelivery(synthesis: Synthesis, brand: str) -> tuple[str, str]:
    function = synthesis.stacks[brand].functions.by_name["redelivery"]
    function_id = synthesis.logical_id(brand, function)
    resources = synthesis.template_json(brand)["Resources"]
    return function_id, resources[function_id]["Properties"]["Role"]["Fn::GetAtt"][0]


def test_the_index_the_adapter_queries_is_the_one_the_stack_declares(
    resources: dict[str, dict[str, Any]], synthesis: Synthesis, brand_name: str
) -> None:
    assert approvals_table.PENDING_DELIVERY_INDEX == data.PENDING_DELIVERY_INDEX
    goals = resources[synthesis.logical_id(brand_name, synthesis.stacks[brand_name].data.goals)]
    (index,) = [
        i
        for i in goals["Properties"]["GlobalSecondaryIndexes"]
        if i["IndexName"] == data.PENDING_DELIVERY_INDEX
    ]
    assert index["KeySchema"] == [
        {"AttributeName": approvals_table.PENDING_DELIVERY_KEY, "KeyType": "HASH"},
        {"AttributeName": approvals_table.PENDING_SINCE_KEY, "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    defined = {a["AttributeName"]: a["AttributeType"] for a in goals["Properties"]["AttributeDefinitions"]}
    assert defined[approvals_table.PENDING_DELIVERY_KEY] == defined[approvals_table.PENDING_SINCE_KEY] == "S"


def test_the_sweep_runs_every_minute_without_retries(
    resources: dict[str, dict[str, Any]], synthesis: Synthesis, brand_name: str
) -> None:
    alias = live_alias(synthesis, brand_name, "redelivery")
    rules = [
        rule["Properties"]
        for rule in of_type(resources, "AWS::Events::Rule").values()
        if any(t["Arn"] == alias for t in rule["Properties"]["Targets"])
    ]
    assert len(rules) == 1
    (rule,) = rules
    assert rule["ScheduleExpression"] == "rate(1 minute)" and rule["State"] == "ENABLED"
    assert rule["Targets"][0]["RetryPolicy"]["MaximumRetryAttempts"] == 0
    permissions = [
        p["Properties"]
        for p in of_type(resources, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == alias
    ]
    assert [p["Principal"] for p in permissions] == ["events.amazonaws.com"]


def test_the_sweep_queries_only_the_index_and_answers_only_task_tokens(
    resources: dict[str, dict[str, Any]], synthesis: Synthesis, brand_name: str
) -> None:
    stack = synthesis.stacks[brand_name]
    goals = synthesis.logical_id(brand_name, stack.data.goals)
    machine = synthesis.logical_id(brand_name, stack.order_flow.state_machine)
    _, role_id = _redelivery(synthesis, brand_name)
    statements = statements_of_role(resources, role_id)
    (query,) = [s for s in statements if "dynamodb:Query" in s["Action"] and goals in str(s["Resource"])]
    assert query["Action"] == ["dynamodb:Query"]
    assert query["Resource"] == {
        "Fn::Join": ["", [{"Fn::GetAtt": [goals, "Arn"]}, f"/index/{data.PENDING_DELIVERY_INDEX}"]]
    }
    states = {a for s in statements for a in s["Action"] if a.startswith("states:")}
    assert states == {"states:SendTaskSuccess", "states:SendTaskFailure"}
    (on_machine,) = [s for s in statements if any(a.startswith("states:") for a in s["Action"])]
    assert resource_refs(on_machine) == [{"Ref": machine}]
    # No other role may query the goals table itself or this index (other sweeps query their own
    # sparse indexes, e.g. tests/infra/test_order_events.py).
    pending = f"/index/{data.PENDING_DELIVERY_INDEX}"
    for name, function in stack.functions.by_name.items():
        if name == "redelivery":
            continue
        other = resources[synthesis.logical_id(brand_name, function)]["Properties"]["Role"]["Fn::GetAtt"][0]
        for statement in statements_of_role(resources, other):
            if "dynamodb:Query" not in statement["Action"]:
                continue
            targets = (
                statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            )
            for target in targets:
                assert target != {"Fn::GetAtt": [goals, "Arn"]}, name
                assert not (goals in str(target) and pending in str(target)), name
