"""The order flow: the ASL file, verbatim, with function ARNs substituted; logged, traced, least privilege."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from infra.functions import FUNCTIONS
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


def _state_machine(synthesis: Synthesis, brand: str) -> dict[str, Any]:
    machine = synthesis.stacks[brand].order_flow.state_machine
    resource: dict[str, Any] = synthesis.template_json(brand)["Resources"][
        synthesis.logical_id(brand, machine)
    ]
    return resource


def _substitute(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{([A-Za-z0-9_]+)\}", lambda match: values[match.group(1)], text)


def test_the_functions_answer_to_the_contracts_variable_names() -> None:
    assert {spec.asl_variable: spec.name for spec in FUNCTIONS if spec.asl_variable} == CONTRACT_VARIABLES


def test_definition_is_the_asl_file_byte_for_byte_after_substitution(
    synthesis: Synthesis, brand_name: str
) -> None:
    properties = _state_machine(synthesis, brand_name)["Properties"]
    source = ASL_FILE.read_text(encoding="utf-8")
    assert properties["DefinitionString"] == source

    # What CloudFormation will store: every ${XFunctionArn} replaced by that function's ARN.
    functions = synthesis.stacks[brand_name].functions.by_name
    arns = {
        variable: "arn:aws:lambda:eu-west-1:123456789012:function:"
        + synthesis.logical_id(brand_name, functions[name])
        for variable, name in CONTRACT_VARIABLES.items()
    }
    substitutions = properties["DefinitionSubstitutions"]
    for variable, value in substitutions.items():
        assert value == {"Fn::GetAtt": [arns[variable].rsplit(":", 1)[1], "Arn"]}, variable
    deployed = _substitute(properties["DefinitionString"], {name: arns[name] for name in substitutions})
    assert deployed.encode() == _substitute(source, arns).encode()
    assert "${" not in deployed
    assert json.loads(deployed) == json.loads(_substitute(source, arns))


def test_state_machine_is_standard_fully_logged_and_traced(
    template: Template, synthesis: Synthesis, brand_name: str
) -> None:
    template.resource_count_is("AWS::StepFunctions::StateMachine", 1)
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "StateMachineType": "STANDARD",
            "TracingConfiguration": {"Enabled": True},
            "LoggingConfiguration": Match.object_like({"Level": "ALL", "IncludeExecutionData": True}),
        },
    )
    properties = _state_machine(synthesis, brand_name)["Properties"]
    assert properties["StateMachineType"] == "STANDARD"
    assert properties["StateMachineName"] == f"CartPilot-{brand_name}-OrderFlow"
    assert properties["TracingConfiguration"] == {"Enabled": True}
    logging = properties["LoggingConfiguration"]
    assert logging["Level"] == "ALL"
    assert logging["IncludeExecutionData"] is True
    (destination,) = logging["Destinations"]
    log_group_id = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    log_group = synthesis.template_json(brand_name)["Resources"][log_group_id]["Properties"]
    assert log_group["RetentionInDays"] == 90
    assert "KmsKeyId" in log_group  # execution data includes recipients' addresses


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
    invoked = {ref["Fn::GetAtt"][0] for ref in resource_refs(invoke[0])}
    assert invoked == {ref["Fn::GetAtt"][0] for ref in properties["DefinitionSubstitutions"].values()}
    functions = of_type(resources, "AWS::Lambda::Function")
    api = synthesis.logical_id(brand_name, synthesis.stacks[brand_name].functions.api)
    assert api in functions
    assert api not in invoked
    for statement in statements:
        if statement not in invoke:
            assert statement["Resource"] == "*"
            assert {action.split(":")[0] for action in statement["Action"]} <= {"logs", "xray"}
