"""The order flow: the ASL file, verbatim, with function ARNs and production retry waits substituted;
logged, traced, least privilege. The local stack runs the same file with short retry waits."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template
from cfnlint.api import ManualArgs, lint

from cartpilot.commerce.breaker import BreakerPolicy
from cartpilot_local.stack import LOCAL_BREAKER_RESET_SECONDS, LOCAL_RETRY_TIMINGS, substitute_definition
from infra.functions import FUNCTIONS
from infra.orchestration import RETRY_TIMINGS, DefinitionError, check_definition, retriers
from infra.settings import PROJECT_ROOT
from tests.infra.conftest import Synthesis, of_type, resource_refs, statements_of_role

pytestmark = pytest.mark.xdist_group("infra")

ASL_FILE = PROJECT_ROOT / "statemachines" / "order_flow.asl.json"
CONTRACT_VARIABLES = {
    "PlannerFunctionArn": "planner",
    "CatalogFunctionArn": "catalog",
    "ValidatorFunctionArn": "validator",
    "ApprovalFunctionArn": "approval",
    "CheckoutFunctionArn": "checkout",
    "FulfillmentFunctionArn": "fulfillment",
    "PaymentFunctionArn": "payment",
    "OrdersFunctionArn": "orders",
    "NotifyFunctionArn": "notify",
    "CompensatorFunctionArn": "compensator",
}
LAMBDA_ERRORS = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)
# What AWS runs, written out: every retrier of the flow is one of these, numbers and all.
PRODUCTION_RETRIES: dict[tuple[str, ...], dict[str, Any]] = {
    LAMBDA_ERRORS: {"IntervalSeconds": 1, "MaxAttempts": 3, "BackoffRate": 2, "JitterStrategy": "FULL"},
    ("MerchantCircuitOpen",): {"IntervalSeconds": 6, "MaxAttempts": 3, "BackoffRate": 2},
    ("MerchantUnavailable", "MerchantOutcomeUnknown"): {
        "IntervalSeconds": 3, "MaxAttempts": 4, "BackoffRate": 2, "JitterStrategy": "FULL",
    },
    ("States.TaskFailed",): {"IntervalSeconds": 2, "MaxAttempts": 3, "BackoffRate": 2},
    ("CompensationIncomplete",): {"IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 2, "JitterStrategy": "FULL"},
}  # fmt: skip
FAKE_ARNS = {
    variable: f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
    for variable, name in CONTRACT_VARIABLES.items()
}


def _state_machine(synthesis: Synthesis, brand: str) -> dict[str, Any]:
    machine = synthesis.stacks[brand].order_flow.state_machine
    resource: dict[str, Any] = synthesis.template_json(brand)["Resources"][
        synthesis.logical_id(brand, machine)
    ]
    return resource


def _substitute(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{([A-Za-z0-9_]+)\}", lambda match: values[match.group(1)], text)


def _production(arns: dict[str, str]) -> dict[str, str]:
    return arns | {name: str(value) for name, value in RETRY_TIMINGS.items()}


def _without_waits(definition: dict[str, Any]) -> dict[str, Any]:
    stripped = copy.deepcopy(definition)
    for retrier in retriers(stripped):
        del retrier["IntervalSeconds"], retrier["BackoffRate"]
    return stripped


def _definition_errors(definition: str) -> list[str]:
    """What cfn-lint finds in a state machine with this (fully substituted) definition."""
    machine = {"RoleArn": "arn:aws:iam::123456789012:role/flow", "DefinitionString": definition}
    template = {"Resources": {"Flow": {"Type": "AWS::StepFunctions::StateMachine", "Properties": machine}}}
    matches = lint(json.dumps(template), config=ManualArgs(regions=["us-east-1"]))
    return [f"{match.rule.id} {match.message}" for match in matches if match.rule.id.startswith("E")]


def test_the_functions_answer_to_the_contracts_variable_names() -> None:
    assert {spec.asl_variable: spec.name for spec in FUNCTIONS if spec.asl_variable} == CONTRACT_VARIABLES


def test_definition_is_the_asl_file_byte_for_byte_after_substitution(
    synthesis: Synthesis, brand_name: str
) -> None:
    properties = _state_machine(synthesis, brand_name)["Properties"]
    source = ASL_FILE.read_text(encoding="utf-8")
    assert properties["DefinitionString"] == source

    # What CloudFormation will store: every ${XFunctionArn} replaced by the ARN of that function's
    # live alias, every retry timing by its production value.
    aliases = synthesis.stacks[brand_name].functions.live
    arns = {
        variable: "arn:aws:lambda:eu-west-1:123456789012:function:"
        + synthesis.logical_id(brand_name, aliases[name])
        for variable, name in CONTRACT_VARIABLES.items()
    }
    substitutions = properties["DefinitionSubstitutions"]
    assert set(substitutions) == set(CONTRACT_VARIABLES) | set(RETRY_TIMINGS)
    for variable, value in substitutions.items():
        if variable in RETRY_TIMINGS:
            assert value == str(RETRY_TIMINGS[variable]), variable
        else:
            assert value == {"Ref": arns[variable].rsplit(":", 1)[1]}, variable
    deployed = _substitute(
        properties["DefinitionString"],
        {name: arns.get(name, value) for name, value in substitutions.items()},
    )
    assert deployed.encode() == _substitute(source, _production(arns)).encode()
    assert "${" not in deployed
    assert json.loads(deployed) == json.loads(_substitute(source, _production(arns)))


def test_aws_runs_the_production_retry_waits(synthesis: Synthesis, brand_name: str) -> None:
    properties = _state_machine(synthesis, brand_name)["Properties"]
    values = {
        name: FAKE_ARNS.get(name, value) for name, value in properties["DefinitionSubstitutions"].items()
    }
    deployed = json.loads(_substitute(properties["DefinitionString"], values))
    seen = set()
    for retrier in retriers(deployed):
        errors = tuple(retrier["ErrorEquals"])
        assert retrier == {"ErrorEquals": list(errors), **PRODUCTION_RETRIES[errors]}
        seen.add(errors)
    assert seen == set(PRODUCTION_RETRIES)


def test_the_local_stack_runs_the_same_flow_with_short_retry_waits() -> None:
    source = ASL_FILE.read_text(encoding="utf-8")
    local = json.loads(substitute_definition(source, FAKE_ARNS))
    aws = json.loads(_substitute(source, _production(FAKE_ARNS)))
    assert set(LOCAL_RETRY_TIMINGS) == set(RETRY_TIMINGS)
    # The same states, error names, retry counts and jitter; only the waits differ.
    assert _without_waits(local) == _without_waits(aws)
    assert len(list(retriers(local))) == len(list(retriers(aws))) > 20
    for retrier in retriers(local):
        assert retrier["BackoffRate"] == 1
        if retrier["ErrorEquals"] == ["MerchantCircuitOpen"]:
            # As on AWS, a step that met an open circuit is retried once the breaker may half-open
            # (the local stack's breakers reset after LOCAL_BREAKER_RESET_SECONDS).
            assert LOCAL_BREAKER_RESET_SECONDS < retrier["IntervalSeconds"] <= LOCAL_BREAKER_RESET_SECONDS + 1
        else:
            assert retrier["IntervalSeconds"] == 1
    assert RETRY_TIMINGS["CircuitOpenRetryIntervalSeconds"] > BreakerPolicy().reset_timeout


def test_cfn_lint_checks_the_definition_with_its_retry_waits_in_place() -> None:
    # cfn-lint cannot parse the file itself (its placeholders are unquoted), so it gets it substituted.
    source = ASL_FILE.read_text(encoding="utf-8")
    assert _definition_errors(_substitute(source, _production(FAKE_ARNS))) == []
    assert _definition_errors(substitute_definition(source, FAKE_ARNS)) == []
    # The linter does read the definition it is given.
    misspelt = _substitute(source, _production(FAKE_ARNS)).replace('"Type": "Task"', '"Type": "Taks"', 1)
    assert [error.split(" ")[0] for error in _definition_errors(misspelt)] == ["E3601"]


def test_a_quoted_retry_placeholder_is_refused_before_deploying() -> None:
    # "${X}" would become the string "6", which Step Functions refuses (and cfn-lint lets through).
    quoted = re.sub(r"\$\{(\w+RetryIntervalSeconds)\}", r'"${\1}"', ASL_FILE.read_text(encoding="utf-8"))
    with pytest.raises(DefinitionError, match="IntervalSeconds"):
        check_definition(quoted, FAKE_ARNS, ASL_FILE)
    with pytest.raises(DefinitionError, match="NoSuchRetryBackoffRate"):
        check_definition(
            ASL_FILE.read_text(encoding="utf-8").replace(
                "${LambdaRetryBackoffRate}", "${NoSuchRetryBackoffRate}"
            ),
            FAKE_ARNS,
            ASL_FILE,
        )


def test_state_machine_is_standard_logs_failures_and_is_traced(
    template: Template, synthesis: Synthesis, brand_name: str
) -> None:
    template.resource_count_is("AWS::StepFunctions::StateMachine", 1)
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "StateMachineType": "STANDARD",
            "TracingConfiguration": {"Enabled": True},
            "LoggingConfiguration": Match.object_like({"Level": "ERROR", "IncludeExecutionData": False}),
        },
    )
    properties = _state_machine(synthesis, brand_name)["Properties"]
    assert properties["StateMachineType"] == "STANDARD"
    assert properties["StateMachineName"] == f"CartPilot-{brand_name}-OrderFlow"
    assert properties["TracingConfiguration"] == {"Enabled": True}
    logging = properties["LoggingConfiguration"]
    assert logging["Level"] == "ERROR"  # failures; every step is in the audit trail and the history
    assert logging["IncludeExecutionData"] is False  # task tokens (row 15 of issue 11)
    (destination,) = logging["Destinations"]
    log_group_id = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    log_group = synthesis.template_json(brand_name)["Resources"][log_group_id]["Properties"]
    assert log_group["RetentionInDays"] == 90
    assert "KmsKeyId" in log_group  # error names and state names still tell what a goal went through


def test_state_machine_role_may_invoke_exactly_its_functions(synthesis: Synthesis, brand_name: str) -> None:
    resources = synthesis.template_json(brand_name)["Resources"]
    properties = _state_machine(synthesis, brand_name)["Properties"]
    role_id = properties["RoleArn"]["Fn::GetAtt"][0]
    assert resources[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "states.amazonaws.com"
    }
    statements = statements_of_role(resources, role_id)
    invoke = [s for s in statements if any(a.startswith("lambda:") for a in s["Action"])]
    assert [s["Action"] for s in invoke] == [["lambda:InvokeFunction"]]
    # Exactly the live aliases the definition names: no $LATEST, no version wildcard.
    invoked = {ref["Ref"] for ref in resource_refs(invoke[0])}
    arns = [value for value in properties["DefinitionSubstitutions"].values() if isinstance(value, dict)]
    assert invoked == {ref["Ref"] for ref in arns}
    assert set(of_type(resources, "AWS::Lambda::Alias")) >= invoked
    aliases = synthesis.stacks[brand_name].functions.live
    api = synthesis.logical_id(brand_name, aliases["api"])
    assert api in of_type(resources, "AWS::Lambda::Alias")
    assert api not in invoked
    for statement in statements:
        if statement not in invoke:
            assert statement["Resource"] == "*"
            assert {action.split(":")[0] for action in statement["Action"]} <= {"logs", "xray"}
