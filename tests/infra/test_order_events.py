"""Issue 13 row 1 on the template: the public order-event webhook route and its per-address WAF limit,
the sparse index of polled orders, and the tracking sweep with exactly what it needs."""

from __future__ import annotations

from typing import Any

import pytest

from cartpilot.adapters.aws import order_events_table
from infra import api, data
from tests.infra.conftest import Synthesis, live_alias, of_type, statements_of_role

pytestmark = pytest.mark.xdist_group("infra")


def _role_of(synthesis: Synthesis, brand: str, name: str) -> tuple[str, str]:
    function = synthesis.stacks[brand].functions.by_name[name]
    function_id = synthesis.logical_id(brand, function)
    resources = synthesis.template_json(brand)["Resources"]
    return function_id, resources[function_id]["Properties"]["Role"]["Fn::GetAtt"][0]


def _path(resources: dict[str, dict[str, Any]], resource_ref: Any) -> str:
    parts: list[str] = []
    while isinstance(resource_ref, dict) and "Ref" in resource_ref:
        resource = resources[resource_ref["Ref"]]["Properties"]
        parts.insert(0, resource["PathPart"])
        resource_ref = resource["ParentId"]
    return "/" + "/".join(parts)


def test_the_webhook_route_is_public_post_only(resources: dict[str, dict[str, Any]]) -> None:
    methods = [
        (m["Properties"]["HttpMethod"], m["Properties"]["AuthorizationType"])
        for m in of_type(resources, "AWS::ApiGateway::Method").values()
        if _path(resources, m["Properties"]["ResourceId"]) == "/webhooks/merchants/{merchantId}"
    ]
    assert methods == [("POST", "NONE")]


def test_the_webhook_route_has_its_own_per_address_limit(resources: dict[str, dict[str, Any]]) -> None:
    (acl,) = of_type(resources, "AWS::WAFv2::WebACL").values()
    rules = {rule["Name"]: rule for rule in acl["Properties"]["Rules"]}
    rule = rules[api.ORDER_WEBHOOKS_PER_ADDRESS.name]
    statement = rule["Statement"]["RateBasedStatement"]
    assert statement["Limit"] == api.ORDER_WEBHOOKS_PER_ADDRESS.requests
    assert statement["AggregateKeyType"] == "IP"
    assert statement["ScopeDownStatement"]["ByteMatchStatement"]["SearchString"] == "/webhooks/"
    assert rule["Action"] == {"Block": {}}


def test_the_polled_orders_index_is_the_one_the_adapter_queries(
    resources: dict[str, dict[str, Any]], synthesis: Synthesis, brand_name: str
) -> None:
    assert order_events_table.OPEN_TRACKING_INDEX == data.OPEN_TRACKING_INDEX
    goals = resources[synthesis.logical_id(brand_name, synthesis.stacks[brand_name].data.goals)]
    (index,) = [
        i for i in goals["Properties"]["GlobalSecondaryIndexes"] if i["IndexName"] == data.OPEN_TRACKING_INDEX
    ]
    assert index["KeySchema"] == [
        {"AttributeName": order_events_table.OPEN_TRACKING_KEY, "KeyType": "HASH"},
        {"AttributeName": order_events_table.OPEN_SINCE_KEY, "KeyType": "RANGE"},
    ]
    assert index["Projection"]["ProjectionType"] == "INCLUDE"
    assert sorted(index["Projection"]["NonKeyAttributes"]) == ["goalId", "merchantId", "orderId"]


def test_the_tracking_sweep_runs_on_a_schedule_and_queries_only_its_index(
    resources: dict[str, dict[str, Any]], synthesis: Synthesis, brand_name: str
) -> None:
    _, role_id = _role_of(synthesis, brand_name, "tracking")
    rules = [
        rule["Properties"]
        for rule in of_type(resources, "AWS::Events::Rule").values()
        if any(
            t["Arn"] == live_alias(synthesis, brand_name, "tracking") for t in rule["Properties"]["Targets"]
        )
    ]
    assert [rule["ScheduleExpression"] for rule in rules] == ["rate(1 minute)"]
    stack = synthesis.stacks[brand_name]
    goals = synthesis.logical_id(brand_name, stack.data.goals)
    statements = statements_of_role(resources, role_id)
    queries = [s for s in statements if "dynamodb:Query" in s["Action"] and goals in str(s["Resource"])]
    assert [q["Resource"] for q in queries] == [
        {"Fn::Join": ["", [{"Fn::GetAtt": [goals, "Arn"]}, f"/index/{data.OPEN_TRACKING_INDEX}"]]}
    ]
    actions = {a for s in statements for a in s["Action"]}
    # Item updates only (links, claims, tracking): no PutItem, DeleteItem, Scan; never the order flow.
    assert "dynamodb:PutItem" not in {
        a for s in statements if goals in str(s["Resource"]) for a in s["Action"]
    }
    assert not {"dynamodb:Scan", "dynamodb:DeleteItem"} & actions
    assert not any(a.startswith("states:") for a in actions)
    assert "sns:Publish" in actions
