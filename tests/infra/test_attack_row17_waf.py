"""Issue 11 row 17: a handful of addresses cannot keep approvers at 429.

The attack: the approval routes' throttle was shared by every caller and sat below what the WAF let a
few addresses send (10 addresses at 300 requests per 5 minutes each is 10 requests a second, against a
route throttle of 5), so ten addresses kept every approver at 429; the UCP profile had no per-address
limit at all. API Gateway's throttles and AWS WAF exist only on AWS (the local gateway has neither),
so the attack is checked on the synthesized templates (every brand's): every public route has a
per-address WAF limit, and its route or stage throttle stays above what ``ADDRESSES`` addresses at
their WAF limits can send, over the WAF's own evaluation window.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import Synthesis, of_type

pytestmark = pytest.mark.xdist_group("infra")

# How many addresses an attacker may hold, each sending as much as the WAF lets it, before any
# approver meets a 429.
ADDRESSES = 10


def _path(resources: dict[str, dict[str, Any]], resource_ref: Any) -> str:
    parts: list[str] = []
    while isinstance(resource_ref, dict) and "Ref" in resource_ref:
        resource = resources[resource_ref["Ref"]]["Properties"]
        parts.insert(0, resource["PathPart"])
        resource_ref = resource["ParentId"]
    return "/" + "/".join(parts)


def _public_methods(resources: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    return [
        (method["Properties"]["HttpMethod"], _path(resources, method["Properties"]["ResourceId"]))
        for method in of_type(resources, "AWS::ApiGateway::Method").values()
        if method["Properties"]["AuthorizationType"] == "NONE"
        and method["Properties"]["HttpMethod"] != "OPTIONS"
    ]


def _matches(statement: dict[str, Any], path: str) -> bool:
    match = statement["ByteMatchStatement"]
    assert match["FieldToMatch"] == {"UriPath": {}}
    wanted, uri = match["SearchString"], f"/v1{path}".lower()
    return {
        "CONTAINS": wanted in uri,
        "STARTS_WITH": uri.startswith(wanted),
        "EXACTLY": uri == wanted,
    }[match["PositionalConstraint"]]


def _per_address_rules(resources: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    (acl,) = of_type(resources, "AWS::WAFv2::WebACL").values()
    rules = []
    for rule in acl["Properties"]["Rules"]:
        rate = rule["Statement"].get("RateBasedStatement")
        if rate is not None:
            assert rule["Action"] == {"Block": {}}
            assert rate["AggregateKeyType"] == "IP"
            rules.append(rate)
    return rules


def _throttle(stage: dict[str, Any], http_method: str, path: str) -> tuple[float, int]:
    """(rate per second, burst) the stage applies to one route: its own setting, else the stage's."""
    settings = stage["Properties"]["MethodSettings"]
    escaped = "/" + path.replace("/", "~1")  # how API Gateway names a resource path
    for setting in settings:
        if setting["ResourcePath"] == escaped and setting["HttpMethod"] == http_method:
            return float(setting["ThrottlingRateLimit"]), int(setting["ThrottlingBurstLimit"])
    (default,) = [s for s in settings if s["ResourcePath"] == "/*" and s["HttpMethod"] == "*"]
    assert not path.startswith("/approvals/"), "the approval routes have their own throttle"
    return float(default["ThrottlingRateLimit"]), int(default["ThrottlingBurstLimit"])


def test_every_public_route_has_a_per_address_limit(synthesis: Synthesis, brand_name: str) -> None:
    resources = synthesis.template_json(brand_name)["Resources"]
    public = _public_methods(resources)
    assert {path for _, path in public} >= {"/approvals/{approvalId}", "/.well-known/ucp"}
    rules = _per_address_rules(resources)
    for http_method, path in public:
        assert any(_matches(rule["ScopeDownStatement"], path) for rule in rules), (http_method, path)


def test_the_route_throttle_is_above_what_ten_addresses_at_their_waf_limit_can_send(
    synthesis: Synthesis, brand_name: str
) -> None:
    resources = synthesis.template_json(brand_name)["Resources"]
    (stage,) = of_type(resources, "AWS::ApiGateway::Stage").values()
    rules = _per_address_rules(resources)
    overwhelmed = []
    for http_method, path in _public_methods(resources):
        covering = [rule for rule in rules if _matches(rule["ScopeDownStatement"], path)]
        # An address is blocked by whichever of its rules it meets first; none: nothing blocks it.
        per_address = min(
            (rule["Limit"] / rule["EvaluationWindowSec"] for rule in covering), default=float("inf")
        )
        rate, burst = _throttle(stage, http_method, path)
        if not ADDRESSES * per_address < rate <= burst:
            overwhelmed.append(
                (http_method, path, f"{ADDRESSES} addresses send {ADDRESSES * per_address:.2f}/s", rate)
            )
    assert overwhelmed == []


def test_the_web_acl_guards_the_stage(synthesis: Synthesis, brand_name: str) -> None:
    resources = synthesis.template_json(brand_name)["Resources"]
    (acl_id,) = of_type(resources, "AWS::WAFv2::WebACL")
    (stage_id,) = of_type(resources, "AWS::ApiGateway::Stage")
    (association,) = of_type(resources, "AWS::WAFv2::WebACLAssociation").values()
    assert association["Properties"]["WebACLArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}
    assert stage_id in str(association["Properties"]["ResourceArn"])


def test_a_percent_encoded_path_meets_the_same_limit(synthesis: Synthesis, brand_name: str) -> None:
    """API Gateway routes /v1/%61pprovals/… to /approvals/…: the rule must decode before it matches."""
    resources = synthesis.template_json(brand_name)["Resources"]
    for rule in _per_address_rules(resources):
        match = rule["ScopeDownStatement"]["ByteMatchStatement"]
        transformations = sorted(match["TextTransformations"], key=lambda t: t["Priority"])
        assert [t["Type"] for t in transformations] == ["URL_DECODE", "LOWERCASE"], match["SearchString"]
