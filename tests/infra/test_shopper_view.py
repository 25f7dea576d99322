"""The shopper's view in the template: a public route behind its own throttle and per-address WAF
limit, and the notify function allowed to read the link key it signs view links with (nothing more)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import Synthesis, of_type, resource_refs, statements_of_role

pytestmark = pytest.mark.xdist_group("infra")


def test_the_view_route_is_throttled_like_the_approval_routes(resources: dict[str, dict[str, Any]]) -> None:
    (stage,) = of_type(resources, "AWS::ApiGateway::Stage").values()
    settings = {(s["HttpMethod"], s["ResourcePath"]): s for s in stage["Properties"]["MethodSettings"]}
    for method in ("GET", "POST"):
        view = settings[(method, "/~1shoppers~1goals~1{goalId}")]
        assert (view["ThrottlingRateLimit"], view["ThrottlingBurstLimit"]) == (20, 40)


def test_one_address_is_limited_on_the_view_route_however_it_spells_the_path(
    resources: dict[str, dict[str, Any]],
) -> None:
    (acl,) = of_type(resources, "AWS::WAFv2::WebACL").values()
    (rule,) = [r for r in acl["Properties"]["Rules"] if r["Name"] == "ShopperViewPerIp"]
    rate = rule["Statement"]["RateBasedStatement"]
    assert rule["Action"] == {"Block": {}}
    assert (rate["Limit"], rate["EvaluationWindowSec"], rate["AggregateKeyType"]) == (100, 300, "IP")
    match = rate["ScopeDownStatement"]["ByteMatchStatement"]
    assert match["SearchString"] == "/shoppers/" and match["PositionalConstraint"] == "CONTAINS"
    assert [t["Type"] for t in match["TextTransformations"]] == ["URL_DECODE", "LOWERCASE"]


def test_notify_reads_the_view_link_key_and_no_other_secret(synthesis: Synthesis, brand_name: str) -> None:
    resources = synthesis.template_json(brand_name)["Resources"]
    stack = synthesis.stacks[brand_name]
    notify = resources[synthesis.logical_id(brand_name, stack.functions.by_name["notify"])]["Properties"]
    link_key = synthesis.logical_id(brand_name, stack.secrets.view_link_key)
    assert notify["Environment"]["Variables"]["VIEW_LINK_SECRET_ID"] == {"Ref": link_key}
    # Never the approval-link key: a compromised notify function cannot mint approval links.
    assert "LINK_SIGNING_SECRET_ID" not in notify["Environment"]["Variables"]
    role_id = notify["Role"]["Fn::GetAtt"][0]
    secret_reads = [
        ref
        for statement in statements_of_role(resources, role_id)
        if "secretsmanager:GetSecretValue" in statement["Action"]
        for ref in resource_refs(statement)
    ]
    assert secret_reads == [{"Ref": link_key}]
