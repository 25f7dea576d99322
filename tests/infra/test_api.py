"""The REST API: who may call what, what is validated and throttled, what is logged and traced."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from tests.infra.conftest import Synthesis, of_type

pytestmark = pytest.mark.xdist_group("infra")

EXPECTED_ROUTES = {
    ("POST", "/goals"): "AWS_IAM",
    ("GET", "/goals/{goalId}"): "AWS_IAM",
    ("POST", "/goals/{goalId}/undo"): "AWS_IAM",
    ("GET", "/goals/{goalId}/audit"): "AWS_IAM",
    ("GET", "/openapi.json"): "AWS_IAM",
    # The published public keys of plan signatures, for clients verifying audit trails.
    ("GET", "/audit/keys"): "AWS_IAM",
    ("GET", "/approvals/{approvalId}"): "NONE",
    ("POST", "/approvals/{approvalId}"): "NONE",
    # The shopper's own page of a goal: the signed link from the receipt is the credential.
    ("GET", "/shoppers/goals/{goalId}"): "NONE",
    ("POST", "/shoppers/goals/{goalId}"): "NONE",
    # Staff-only approvals: the link and a SigV4 signature by a principal brand.yaml lists as staff.
    ("GET", "/staff/approvals/{approvalId}"): "AWS_IAM",
    ("POST", "/staff/approvals/{approvalId}"): "AWS_IAM",
    # Scheduled and recurring goals, for the client that created them.
    ("GET", "/schedules/{scheduleId}"): "AWS_IAM",
    ("DELETE", "/schedules/{scheduleId}"): "AWS_IAM",
    ("POST", "/schedules/{scheduleId}/pause"): "AWS_IAM",
    ("POST", "/schedules/{scheduleId}/resume"): "AWS_IAM",
    ("GET", "/schedules/{scheduleId}/audit"): "AWS_IAM",
    ("GET", "/schedules/{scheduleId}/mandate"): "AWS_IAM",
    # A shopper's schedules made through the calling client.
    ("GET", "/schedules"): "AWS_IAM",
    ("GET", "/.well-known/ucp"): "NONE",
    ("GET", "/.well-known/ucp/2026-01-11"): "NONE",
    # Merchants' order events: the merchant's signature is the credential.
    ("POST", "/webhooks/merchants/{merchantId}"): "NONE",
}


def _path(resources: dict[str, dict[str, Any]], resource_ref: dict[str, Any]) -> str:
    if "Fn::GetAtt" in resource_ref:  # the root resource
        return ""
    resource = resources[resource_ref["Ref"]]["Properties"]
    return _path(resources, resource["ParentId"]) + "/" + resource["PathPart"]


def _methods(resources: dict[str, dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method["Properties"]["HttpMethod"], _path(resources, method["Properties"]["ResourceId"])): method[
            "Properties"
        ]
        for method in of_type(resources, "AWS::ApiGateway::Method").values()
    }


def _stage(resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (stage,) = of_type(resources, "AWS::ApiGateway::Stage").values()
    properties: dict[str, Any] = stage["Properties"]
    return properties


def test_goal_routes_need_iam_and_approval_routes_are_public(
    template: Template, resources: dict[str, dict[str, Any]]
) -> None:
    template.resource_count_is("AWS::ApiGateway::Method", len(EXPECTED_ROUTES))
    template.has_resource_properties(
        "AWS::ApiGateway::RestApi", {"EndpointConfiguration": {"Types": ["REGIONAL"]}}
    )
    methods = _methods(resources)
    assert {route: method["AuthorizationType"] for route, method in methods.items()} == EXPECTED_ROUTES


def test_the_schedules_list_needs_a_user_id(resources: dict[str, dict[str, Any]]) -> None:
    listing = _methods(resources)[("GET", "/schedules")]
    assert listing["RequestParameters"] == {"method.request.querystring.userId": True}
    assert "RequestValidatorId" in listing


def test_every_route_goes_to_the_api_function(synthesis: Synthesis, brand_name: str) -> None:
    resources = synthesis.template_json(brand_name)["Resources"]
    # The api function's live alias: routes never invoke its $LATEST.
    api = synthesis.logical_id(brand_name, synthesis.stacks[brand_name].functions.api_alias)
    for route, method in _methods(resources).items():
        integration = method["Integration"]
        assert integration["Type"] == "AWS_PROXY", route
        assert api in json.dumps(integration["Uri"]), route
    permissions = of_type(resources, "AWS::Lambda::Permission")
    for permission in permissions.values():
        if permission["Properties"]["Principal"] == "apigateway.amazonaws.com":
            # Each route may invoke the function from its own method and stage only, never test-invoke.
            assert "/test-invoke-stage/" not in json.dumps(permission["Properties"]["SourceArn"])


def test_requests_are_validated_before_they_reach_lambda(resources: dict[str, dict[str, Any]]) -> None:
    (validator_id, validator) = next(iter(of_type(resources, "AWS::ApiGateway::RequestValidator").items()))
    assert validator["Properties"]["ValidateRequestBody"] is True
    assert validator["Properties"]["ValidateRequestParameters"] is True
    methods = _methods(resources)
    for route, method in methods.items():
        assert method["RequestValidatorId"] == {"Ref": validator_id}, route

    submit = methods[("POST", "/goals")]
    assert submit["RequestParameters"] == {"method.request.header.Idempotency-Key": True}
    model_id = submit["RequestModels"]["application/json"]["Ref"]
    schema = resources[model_id]["Properties"]["Schema"]
    assert schema["required"] == ["userId", "goal"]
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"userId", "goal", "context", "schedule", "mandate"}


def test_gateway_refusals_keep_the_apis_error_shape_and_statuses(
    resources: dict[str, dict[str, Any]],
) -> None:
    responses = {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in of_type(resources, "AWS::ApiGateway::GatewayResponse").values()
    }
    assert responses["BAD_REQUEST_BODY"]["StatusCode"] == "422"
    assert responses["BAD_REQUEST_PARAMETERS"]["StatusCode"] == "400"
    for response_type, response in responses.items():
        rendered = response["ResponseTemplates"]["application/json"]
        rendered = rendered.replace("$context.error.messageString", '"Invalid request body"')
        rendered = rendered.replace("$context.error.responseType", response_type)
        body = json.loads(rendered)
        assert set(body["error"]) == {"code", "message"}, response_type
    assert (
        '"code": "INVALID_REQUEST"' in responses["BAD_REQUEST_BODY"]["ResponseTemplates"]["application/json"]
    )
    assert (
        '"code": "IDEMPOTENCY_KEY_REQUIRED"'
        in responses["BAD_REQUEST_PARAMETERS"]["ResponseTemplates"]["application/json"]
    )


def test_stage_is_traced_throttled_and_logged_without_bodies(
    template: Template, resources: dict[str, dict[str, Any]]
) -> None:
    template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "StageName": "v1",
            "TracingEnabled": True,
            "AccessLogSetting": Match.object_like({"DestinationArn": Match.any_value()}),
        },
    )
    stage = _stage(resources)
    assert stage["StageName"] == "v1"
    assert stage["TracingEnabled"] is True
    settings = {(s["HttpMethod"], s["ResourcePath"]): s for s in stage["MethodSettings"]}
    everything = settings[("*", "/*")]
    assert everything["LoggingLevel"] == "ERROR"
    assert everything["DataTraceEnabled"] is False
    assert everything["MetricsEnabled"] is True
    assert (everything["ThrottlingRateLimit"], everything["ThrottlingBurstLimit"]) == (50, 100)
    for method in ("GET", "POST"):
        approval = settings[(method, "/~1approvals~1{approvalId}")]
        # Above what ten addresses at their WAF limit can send (tests/infra/test_attack_row17_waf.py).
        assert (approval["ThrottlingRateLimit"], approval["ThrottlingBurstLimit"]) == (20, 40)


def test_access_logs_go_to_an_encrypted_log_group_as_json(resources: dict[str, dict[str, Any]]) -> None:
    access = _stage(resources)["AccessLogSetting"]
    log_group_id = next(
        part["Ref"]
        for part in access["DestinationArn"]["Fn::Join"][1]
        if isinstance(part, dict) and "Ref" in part and part["Ref"] in resources
    )
    log_group = resources[log_group_id]["Properties"]
    assert log_group["RetentionInDays"] == 90
    assert "KmsKeyId" in log_group
    fields = json.loads(access["Format"])
    assert {"requestId", "ip", "caller", "httpMethod", "resourcePath", "status"} <= set(fields)


def test_approval_links_point_at_the_stage_without_a_dependency_cycle(
    synthesis: Synthesis, brand_name: str
) -> None:
    resources = synthesis.template_json(brand_name)["Resources"]
    (rest_api_id,) = of_type(resources, "AWS::ApiGateway::RestApi")
    functions = synthesis.stacks[brand_name].functions.by_name
    for name in ("api", "approval"):
        url = resources[synthesis.logical_id(brand_name, functions[name])]["Properties"]["Environment"][
            "Variables"
        ]["APPROVAL_BASE_URL"]
        parts = url["Fn::Join"][1]
        assert parts[0] == "https://"
        assert parts[1] == {"Ref": rest_api_id}
        assert parts[-1] == "/v1"
        referenced = json.dumps(url)
        assert "Stage" not in referenced
        assert "Deployment" not in referenced


def test_stage_is_behind_a_web_acl_that_rate_limits_approval_links(
    template: Template, resources: dict[str, dict[str, Any]]
) -> None:
    (acl_id, acl) = next(iter(of_type(resources, "AWS::WAFv2::WebACL").items()))
    (association,) = of_type(resources, "AWS::WAFv2::WebACLAssociation").values()
    assert association["Properties"]["WebACLArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}
    (stage_id,) = of_type(resources, "AWS::ApiGateway::Stage")
    assert {"Ref": stage_id} in association["Properties"]["ResourceArn"]["Fn::Join"][1]
    rules = {rule["Name"]: rule for rule in acl["Properties"]["Rules"]}
    rate = rules["ApprovalLinksPerIp"]["Statement"]["RateBasedStatement"]
    assert rate["AggregateKeyType"] == "IP"
    assert rate["ScopeDownStatement"]["ByteMatchStatement"]["SearchString"] == "/approvals/"
    assert rules["ApprovalLinksPerIp"]["Action"] == {"Block": {}}
    assert {"AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet"} <= set(rules)
