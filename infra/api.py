"""The REST API: IAM-signed goal routes, public signed-link approval routes, the public UCP profile,
and their guard rails.

``/goals*`` and ``/openapi.json`` need SigV4 (the callers are brand backends with AWS credentials; the
API function serves only the principals brand.yaml lists as API clients, each for its own goals).
``/staff/approvals/{approvalId}`` needs SigV4 too: only the brand's listed staff decide staff-only
approvals.
``/approvals/{approvalId}`` is public because shoppers open it from an email; the link itself is the
credential (HMAC signature with an expiry, checked by the API function), GET never changes anything,
and the approval routes get their own throttle. ``/shoppers/goals/{goalId}`` (the shopper's page of
a goal, linked from receipts) is public the same way, behind the same kind of signed, expiring link.
Every public route has a per-address WAF rate limit (against link guessing and floods), set so that
the shared route throttle stays above what ten addresses at their limits can send: a handful of
addresses is blocked by WAF before approvers see 429.
``/webhooks/merchants/{merchantId}`` is public: merchants POST order events there, authenticated by
their signature (checked by the API function against the keys of the merchant's profile).
``/.well-known/ucp`` (and its 2026-01-11 leaf) is public as UCP requires: merchants fetch our platform
profile, which holds nothing secret, to learn our capabilities and the public keys of our signatures.
Requests are validated before they reach Lambda, errors keep the API's ``{"error": {...}}`` shape,
and the stage is traced, throttled, execution-logged (errors only, no bodies) and access-logged.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from infra.nag import acknowledge

STAGE_NAME = "v1"
ACCESS_LOG_RETENTION = logs.RetentionDays.THREE_MONTHS
STAGE_RATE_LIMIT = 50  # requests per second, steady state
STAGE_BURST_LIMIT = 100
APPROVAL_ROUTES = ("/approvals/{approvalId}/GET", "/approvals/{approvalId}/POST")
SHOPPER_VIEW_ROUTES = ("/shoppers/goals/{goalId}/GET", "/shoppers/goals/{goalId}/POST")


@dataclass(frozen=True)
class PerAddressLimit:
    """A WAF rate-based rule: requests one address may send to the public paths containing ``path``."""

    name: str
    path: str
    requests: int
    window_seconds: int

    @property
    def per_second(self) -> float:
        return self.requests / self.window_seconds


# Every public route has one (tests/infra/test_attack_row17_waf.py checks that a new one does too).
# An approver opens a link and posts a decision; a merchant fetches the profile every few minutes.
APPROVAL_LINKS_PER_ADDRESS = PerAddressLimit(
    "ApprovalLinksPerIp", "/approvals/", requests=100, window_seconds=300
)
PLATFORM_PROFILE_PER_ADDRESS = PerAddressLimit(
    "PlatformProfilePerIp", "/.well-known/ucp", requests=300, window_seconds=300
)
# A shopper opens their order's page now and then, and presses undo once.
SHOPPER_VIEW_PER_ADDRESS = PerAddressLimit("ShopperViewPerIp", "/shoppers/", requests=100, window_seconds=300)
# A merchant's servers send one event per order change, and retry; a few addresses send them all.
ORDER_WEBHOOKS_PER_ADDRESS = PerAddressLimit(
    "OrderWebhooksPerIp", "/webhooks/", requests=1000, window_seconds=300
)
PER_ADDRESS_LIMITS = (
    APPROVAL_LINKS_PER_ADDRESS,
    PLATFORM_PROFILE_PER_ADDRESS,
    SHOPPER_VIEW_PER_ADDRESS,
    ORDER_WEBHOOKS_PER_ADDRESS,
)
# The route throttle is shared by every caller, so it must stay above what ten addresses, each at its
# WAF limit, can send: otherwise a few addresses keep every approver at 429 without being blocked.
# 10 addresses x 100 requests / 300 s = 3.3 requests a second, far below 20. (A burst sent before
# WAF's rule takes effect, which counts within seconds, meets the burst limit for seconds.)
APPROVAL_RATE_LIMIT = 20
APPROVAL_BURST_LIMIT = 40

# Mirrors the top level of the application's GoalRequest; the function still validates the rest.
GOAL_REQUEST_SCHEMA = apigw.JsonSchema(
    schema=apigw.JsonSchemaVersion.DRAFT4,
    title="GoalRequest",
    type=apigw.JsonSchemaType.OBJECT,
    required=["userId", "goal"],
    additional_properties=False,
    properties={
        "userId": apigw.JsonSchema(type=apigw.JsonSchemaType.STRING, pattern=r"^[A-Za-z0-9_\-]{1,64}$"),
        "goal": apigw.JsonSchema(type=apigw.JsonSchemaType.STRING, min_length=3, max_length=2000),
        "context": apigw.JsonSchema(type=apigw.JsonSchemaType.OBJECT),
        # A scheduled or recurring goal, and its standing mandate (schedules/model.py).
        "schedule": apigw.JsonSchema(type=apigw.JsonSchemaType.OBJECT),
        "mandate": apigw.JsonSchema(type=apigw.JsonSchemaType.OBJECT),
    },
)


GOAL_ROUTE_REASON = (
    "Goal routes are called by the brand's backend, which holds AWS credentials and signs with "
    "SigV4 (IAM authorization); shoppers never call them directly, so a Cognito user pool would "
    "add a second identity store without protecting anything more."
)
STAFF_ROUTE_REASON = (
    "Staff approval routes are called by the brand's staff with their own IAM credentials (SigV4); "
    "the API function accepts only the principals brand.yaml lists as staff and records which one "
    "decided, so the staff's existing AWS identities are the one identity store."
)

ORDER_WEBHOOK_REASON = (
    "Merchants push order events (UCP order_event_webhook) from their own servers, without AWS credentials: "
    "the merchant's signature is the credential (RFC 9421 or a detached JWS, by the merchant's UCP version, "
    "with a key from its published profile, verified by the API function before anything is recorded), "
    "the signer must be the merchant the order was placed with, stale timestamps are refused, a repeated "
    "event id changes nothing, and the route has a per-IP WAF rate limit."
)

SHOPPER_VIEW_REASON = (
    "The shopper's page of an order is opened from a receipt, without AWS credentials or an account: the "
    "link is the credential (HMAC-SHA256 over goal id, shopper and expiry, verified in constant time by the "
    "API function), GET changes nothing, undo needs a confirmed POST carrying the link and is idempotent, "
    "and the route has its own throttle and a per-IP WAF rate limit."
)


def _error_body(code: str, message: str) -> dict[str, str]:
    """The API's error shape for responses the gateway makes itself; ``message`` is a JSON string."""
    return {"application/json": f'{{"error": {{"code": "{code}", "message": {message}}}}}'}


class Api(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        brand: str,
        key: kms.IKey,
        account_cloudwatch_role: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.access_logs = logs.LogGroup(
            self, "AccessLogs", retention=ACCESS_LOG_RETENTION, encryption_key=key
        )
        self.rest_api = apigw.RestApi(
            self,
            "RestApi",
            rest_api_name=f"cartpilot-{brand}",
            description=f"CartPilot {brand}: goals, approvals and audit",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=account_cloudwatch_role,
            deploy_options=apigw.StageOptions(
                stage_name=STAGE_NAME,
                tracing_enabled=True,
                metrics_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                # Bodies hold recipients and addresses: execution logs record errors, never payloads.
                data_trace_enabled=False,
                throttling_rate_limit=STAGE_RATE_LIMIT,
                throttling_burst_limit=STAGE_BURST_LIMIT,
                method_options={
                    route: apigw.MethodDeploymentOptions(
                        throttling_rate_limit=APPROVAL_RATE_LIMIT,
                        throttling_burst_limit=APPROVAL_BURST_LIMIT,
                    )
                    for route in (*APPROVAL_ROUTES, *SHOPPER_VIEW_ROUTES)
                },
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
            ),
        )
        cloudwatch_role = self.rest_api.node.try_find_child("CloudWatchRole")
        if cloudwatch_role is not None:
            acknowledge(
                cloudwatch_role,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonAPIGatewayPushToCloudWatchLogs]",
                "The account-level role API Gateway needs to write this stage's access and execution logs; "
                "AWS maintains this managed policy for exactly that purpose and it grants logs actions only. "
                "Accounts that already have the role deploy with -c apiGatewayAccountRole=false.",
            )
        # Built from the API id, not from the stage: the stage depends on the methods, the methods on
        # the API function, and the API function on this URL, which would be a cycle.
        self.base_url = (
            f"https://{self.rest_api.rest_api_id}.execute-api.{stack.region}.{stack.url_suffix}/{STAGE_NAME}"
        )
        self.validator = self.rest_api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True
        )
        self.goal_request = self.rest_api.add_model(
            "GoalRequest",
            content_type="application/json",
            model_name="GoalRequest",
            schema=GOAL_REQUEST_SCHEMA,
        )
        self._error_responses()
        self._web_acl(brand)

    def add_routes(self, handler: lambda_.IFunction) -> None:
        """Every route to ``handler``: the API function's ``live`` alias, never its $LATEST."""
        integration = apigw.LambdaIntegration(handler, allow_test_invoke=False)
        root = self.rest_api.root

        goals = root.add_resource("goals")
        self._signed(
            goals,
            "POST",
            integration,
            parameters={"method.request.header.Idempotency-Key": True},
            models={"application/json": self.goal_request},
        )
        goal = goals.add_resource("{goalId}")
        goal_id = {"method.request.path.goalId": True}
        self._signed(goal, "GET", integration, parameters=goal_id)
        self._signed(goal.add_resource("undo"), "POST", integration, parameters=goal_id)
        self._signed(goal.add_resource("audit"), "GET", integration, parameters=goal_id)
        self._signed(root.add_resource("openapi.json"), "GET", integration)
        # The public keys of plan signatures, for clients that verify audit trails themselves.
        self._signed(root.add_resource("audit").add_resource("keys"), "GET", integration)

        # Scheduled and recurring goals, for the client that created them (POST /goals with a schedule).
        schedules = root.add_resource("schedules")
        # A shopper's schedules made through this client (GET /schedules?userId=).
        self._signed(schedules, "GET", integration, parameters={"method.request.querystring.userId": True})
        schedule = schedules.add_resource("{scheduleId}")
        schedule_id = {"method.request.path.scheduleId": True}
        self._signed(schedule, "GET", integration, parameters=schedule_id)
        self._signed(schedule, "DELETE", integration, parameters=schedule_id)
        self._signed(schedule.add_resource("pause"), "POST", integration, parameters=schedule_id)
        self._signed(schedule.add_resource("resume"), "POST", integration, parameters=schedule_id)
        self._signed(schedule.add_resource("audit"), "GET", integration, parameters=schedule_id)
        # The standing mandate as an AP2 open mandate SD-JWT.
        self._signed(schedule.add_resource("mandate"), "GET", integration, parameters=schedule_id)

        # A link with missing or mangled parameters gets the function's HTML error page, not JSON.
        approval = root.add_resource("approvals").add_resource("{approvalId}")
        approval_id = {"method.request.path.approvalId": True}
        self._public(approval, "GET", integration, parameters=approval_id)
        self._public(approval, "POST", integration, parameters=approval_id)

        # The shopper's own page of a goal (receipts link to it): the signed link is the credential.
        shopper_view = root.add_resource("shoppers").add_resource("goals").add_resource("{goalId}")
        for http_method in ("GET", "POST"):
            self._public(
                shopper_view, http_method, integration, parameters=goal_id, reason=SHOPPER_VIEW_REASON
            )

        # Staff-only approvals: the signed link is not enough, the caller signs with SigV4 too and the
        # API function requires a principal brand.yaml lists under ``staff``, whom the audit names.
        staff_approval = root.add_resource("staff").add_resource("approvals").add_resource("{approvalId}")
        for http_method in ("GET", "POST"):
            self._signed(
                staff_approval, http_method, integration, parameters=approval_id, reason=STAFF_ROUTE_REASON
            )

        # Merchants' order events (UCP order_event_webhook): the merchant's signature is the credential.
        webhook = root.add_resource("webhooks").add_resource("merchants").add_resource("{merchantId}")
        self._public(
            webhook,
            "POST",
            integration,
            parameters={"method.request.path.merchantId": True},
            reason=ORDER_WEBHOOK_REASON,
        )

        profile = root.add_resource(".well-known").add_resource("ucp")
        self._platform_profile(profile, integration)
        self._platform_profile(profile.add_resource("2026-01-11"), integration)

    def _signed(
        self,
        resource: apigw.IResource,
        http_method: str,
        integration: apigw.Integration,
        *,
        parameters: dict[str, bool] | None = None,
        models: dict[str, apigw.IModel] | None = None,
        reason: str = GOAL_ROUTE_REASON,
    ) -> apigw.Method:
        method = resource.add_method(
            http_method,
            integration,
            authorization_type=apigw.AuthorizationType.IAM,
            request_validator=self.validator,
            request_parameters=parameters,
            request_models=models,
        )
        acknowledge(method.node.default_child or method, "AwsSolutions-COG4", reason)
        return method

    def _public(
        self,
        resource: apigw.IResource,
        http_method: str,
        integration: apigw.Integration,
        *,
        parameters: dict[str, bool],
        reason: str | None = None,
    ) -> apigw.Method:
        method = resource.add_method(
            http_method,
            integration,
            authorization_type=apigw.AuthorizationType.NONE,
            request_validator=self.validator,
            request_parameters=parameters,
        )
        reason = reason or (
            "Approval links are opened by shoppers from an email or chat, without AWS credentials or an "
            "account: the link is the credential (HMAC-SHA256 over approval id, expiry, plan hash, tier and "
            "approver, verified in constant time by the API function), GET changes nothing, a decision is "
            "recorded once, and the route has its own throttle and a per-IP WAF rate limit."
        )
        resource_node = method.node.default_child or method
        acknowledge(resource_node, "AwsSolutions-APIG4", reason)
        acknowledge(resource_node, "AwsSolutions-COG4", reason)
        return method

    def _platform_profile(self, resource: apigw.IResource, integration: apigw.Integration) -> apigw.Method:
        method = resource.add_method(
            "GET",
            integration,
            authorization_type=apigw.AuthorizationType.NONE,
            request_validator=self.validator,
        )
        reason = (
            "CartPilot's UCP platform profile: merchants fetch it, unauthenticated, from the URL in our "
            "UCP-Agent header (UCP overview.md, 'Profile Requirements'). It holds public facts only "
            "(versions, capabilities, payment handlers, public signing keys), changes nothing, and is "
            "served with Cache-Control public, max-age=300."
        )
        resource_node = method.node.default_child or method
        acknowledge(resource_node, "AwsSolutions-APIG4", reason)
        acknowledge(resource_node, "AwsSolutions-COG4", reason)
        return method

    def _error_responses(self) -> None:
        """Requests the gateway refuses get the status and code the API function would have given."""
        self.rest_api.add_gateway_response(
            "InvalidBody",
            type=apigw.ResponseType.BAD_REQUEST_BODY,
            status_code="422",
            templates=_error_body("INVALID_REQUEST", "$context.error.messageString"),
        )
        # Path parameters are always present once a route matches, so the one required parameter a
        # request can lack is POST /goals' Idempotency-Key header.
        self.rest_api.add_gateway_response(
            "MissingIdempotencyKey",
            type=apigw.ResponseType.BAD_REQUEST_PARAMETERS,
            status_code="400",
            templates=_error_body(
                "IDEMPOTENCY_KEY_REQUIRED", '"send an Idempotency-Key header (1-255 characters)"'
            ),
        )
        gateway_error = _error_body("$context.error.responseType", "$context.error.messageString")
        self.rest_api.add_gateway_response(
            "Default4xx", type=apigw.ResponseType.DEFAULT_4_XX, templates=gateway_error
        )
        self.rest_api.add_gateway_response(
            "Default5xx", type=apigw.ResponseType.DEFAULT_5_XX, templates=gateway_error
        )

    def _web_acl(self, brand: str) -> None:
        def visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
            return wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True
            )

        def managed(name: str, priority: int) -> wafv2.CfnWebACL.RuleProperty:
            return wafv2.CfnWebACL.RuleProperty(
                name=name,
                priority=priority,
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS", name=name
                    )
                ),
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                visibility_config=visibility(name),
            )

        def per_address(limit: PerAddressLimit, priority: int) -> wafv2.CfnWebACL.RuleProperty:
            return wafv2.CfnWebACL.RuleProperty(
                name=limit.name,
                priority=priority,
                action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                        limit=limit.requests,
                        aggregate_key_type="IP",
                        evaluation_window_sec=limit.window_seconds,
                        scope_down_statement=wafv2.CfnWebACL.StatementProperty(
                            byte_match_statement=wafv2.CfnWebACL.ByteMatchStatementProperty(
                                field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(uri_path={}),
                                positional_constraint="CONTAINS",
                                search_string=limit.path,
                                # Decoded first: /v1/%61pprovals/… is the same route to API Gateway.
                                text_transformations=[
                                    wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="URL_DECODE"),
                                    wafv2.CfnWebACL.TextTransformationProperty(priority=1, type="LOWERCASE"),
                                ],
                            )
                        ),
                    )
                ),
                visibility_config=visibility(limit.name),
            )

        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            description=f"CartPilot {brand}: common exploits, known bad inputs, per-address limits on public routes",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=visibility(f"cartpilot-{brand}"),
            rules=[
                *(per_address(limit, priority) for priority, limit in enumerate(PER_ADDRESS_LIMITS)),
                managed("AWSManagedRulesCommonRuleSet", len(PER_ADDRESS_LIMITS)),
                managed("AWSManagedRulesKnownBadInputsRuleSet", len(PER_ADDRESS_LIMITS) + 1),
            ],
        )
        wafv2.CfnWebACLAssociation(
            self,
            "WebAclAssociation",
            resource_arn=self.rest_api.deployment_stage.stage_arn,
            web_acl_arn=self.web_acl.attr_arn,
        )
