"""The order flow's three state machines: each ASL file, verbatim, with function ARNs, the nested
state machine's ARN and production retry waits substituted; logged, traced, least privilege. The
local stack runs the same files with short retry waits."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template
from cfnlint.api import ManualArgs, lint

from cartpilot.commerce.breaker import BreakerPolicy
from cartpilot_local.stack import LOCAL_BREAKER_RESET_SECONDS, LOCAL_RETRY_TIMINGS, substitute_definition
from infra.functions import FUNCTIONS
from infra.orchestration import (
    NESTED_INTEGRATION,
    RETRY_TIMINGS,
    DefinitionError,
    check_definition,
    definition_variables,
    nested_starts,
    retriers,
)
from infra.settings import PROJECT_ROOT
from tests.infra.conftest import Synthesis, of_type, resource_refs, statements_of_role

pytestmark = pytest.mark.xdist_group("infra")

STATE_MACHINES_DIR = PROJECT_ROOT / "statemachines"
ASL_FILE = STATE_MACHINES_DIR / "order_flow.asl.json"
STEPS_FILE = STATE_MACHINES_DIR / "order_steps.asl.json"
UNDO_FILE = STATE_MACHINES_DIR / "undo_flow.asl.json"
CHILD_VARIABLE = "OrderStepsStateMachineArn"
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


@dataclass(frozen=True)
class Machine:
    """One state machine as the stack deploys it, written out."""

    attribute: str  # on CartPilotStack
    file: Path
    name: str  # CartPilot-<brand>-<name>
    type: str
    invokes: frozenset[str]  # the functions its role may invoke: exactly those its definition names
    nested: tuple[str, ...] = ()  # substitution variables of the state machines it starts


MACHINES = {
    "order_flow": Machine(
        "order_flow", ASL_FILE, "OrderFlow", "STANDARD",
        frozenset({"planner", "catalog", "validator", "approval", "compensator", "notify"}),
        nested=(CHILD_VARIABLE,),
    ),
    "order_steps": Machine(
        "order_steps", STEPS_FILE, "OrderSteps", "EXPRESS",
        frozenset({"checkout", "fulfillment", "payment", "orders", "compensator", "notify"}),
    ),
    "undo_flow": Machine("undo_flow", UNDO_FILE, "UndoFlow", "STANDARD", frozenset({"compensator", "notify"})),
}  # fmt: skip
LAMBDA_ERRORS = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)
# What AWS runs, written out: every retrier of the three machines is one of these, numbers and all.
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
FAKE_CHILD_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:CartPilot-sandbox-OrderSteps"
FAKE_VALUES = FAKE_ARNS | {CHILD_VARIABLE: FAKE_CHILD_ARN}
# Express runs at most five minutes; neither .sync nor .waitForTaskToken integrations run in it.
EXPRESS_LIMIT_SECONDS = 300


def _machine_resource(synthesis: Synthesis, brand: str, machine: Machine) -> dict[str, Any]:
    construct = getattr(synthesis.stacks[brand], machine.attribute).state_machine
    resource: dict[str, Any] = synthesis.template_json(brand)["Resources"][
        synthesis.logical_id(brand, construct)
    ]
    return resource


def _machine_id(synthesis: Synthesis, brand: str, attribute: str) -> str:
    return synthesis.logical_id(brand, getattr(synthesis.stacks[brand], attribute).state_machine)


def _substitute(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{([A-Za-z0-9_]+)\}", lambda match: values[match.group(1)], text)


def _production(arns: dict[str, str]) -> dict[str, str]:
    return arns | {name: str(value) for name, value in RETRY_TIMINGS.items()}


def _without_waits(definition: dict[str, Any]) -> dict[str, Any]:
    stripped = copy.deepcopy(definition)
    for retrier in retriers(stripped):
        del retrier["IntervalSeconds"], retrier["BackoffRate"]
    for state in stripped["States"].values():
        if state["Type"] == "Wait":
            del state["Seconds"]
    return stripped


def _states(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    states: dict[str, dict[str, Any]] = definition["States"]
    return states


def _definition_errors(definition: str) -> list[str]:
    """What cfn-lint finds in a state machine with this (fully substituted) definition."""
    machine = {"RoleArn": "arn:aws:iam::123456789012:role/flow", "DefinitionString": definition}
    template = {"Resources": {"Flow": {"Type": "AWS::StepFunctions::StateMachine", "Properties": machine}}}
    matches = lint(json.dumps(template), config=ManualArgs(regions=["us-east-1"]))
    return [f"{match.rule.id} {match.message}" for match in matches if match.rule.id.startswith("E")]


def _rendered(value: Any) -> str:
    """A resource ARN as text, with the partition, region and account as the placeholders cdk-nag uses."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(_rendered(part) for part in parts)
    if isinstance(value, dict) and str(value.get("Ref", "")).startswith("AWS::"):
        return f"<{value['Ref']}>"
    return json.dumps(value, sort_keys=True)


def _grants(resources: dict[str, dict[str, Any]], role_id: str, *services: str) -> set[tuple[str, str]]:
    """(action, rendered resource) of every statement of the role whose actions are of these services."""
    return {
        (action, _rendered(resource))
        for statement in statements_of_role(resources, role_id)
        for action in statement["Action"]
        if action.split(":")[0] in services
        for resource in resource_refs(statement)
    }


def test_the_functions_answer_to_the_contracts_variable_names() -> None:
    assert {spec.asl_variable: spec.name for spec in FUNCTIONS if spec.asl_variable} == CONTRACT_VARIABLES


def test_the_three_machines_share_out_every_function_the_flow_runs() -> None:
    named = {
        name
        for machine in MACHINES.values()
        for variable in definition_variables(machine.file.read_text(encoding="utf-8"))
        if (name := CONTRACT_VARIABLES.get(variable))
    }
    assert named == set(CONTRACT_VARIABLES.values())


@pytest.mark.parametrize("key", MACHINES)
def test_definition_is_the_asl_file_byte_for_byte_after_substitution(
    synthesis: Synthesis, brand_name: str, key: str
) -> None:
    machine = MACHINES[key]
    properties = _machine_resource(synthesis, brand_name, machine)["Properties"]
    source = machine.file.read_text(encoding="utf-8")
    assert properties["DefinitionString"] == source

    # What CloudFormation will store: every ${XFunctionArn} replaced by the ARN of that function's
    # live alias, the child's ${...StateMachineArn} by the child's ARN, every retry timing by its
    # production value.
    aliases = synthesis.stacks[brand_name].functions.live
    refs = {
        variable: {"Ref": synthesis.logical_id(brand_name, aliases[name])}
        for variable, name in CONTRACT_VARIABLES.items()
        if name in machine.invokes
    }
    if machine.nested:
        refs[CHILD_VARIABLE] = {"Ref": _machine_id(synthesis, brand_name, "order_steps")}
    substitutions = properties["DefinitionSubstitutions"]
    assert set(substitutions) == set(refs) | (set(definition_variables(source)) & set(RETRY_TIMINGS))
    assert set(substitutions) == set(definition_variables(source))
    for variable, value in substitutions.items():
        if variable in RETRY_TIMINGS:
            assert value == str(RETRY_TIMINGS[variable]), variable
        else:
            assert value == refs[variable], variable
    arns = {
        variable: ("arn:aws:states:eu-west-1:123456789012:stateMachine:" if variable == CHILD_VARIABLE
                   else "arn:aws:lambda:eu-west-1:123456789012:function:") + ref["Ref"]
        for variable, ref in refs.items()
    }  # fmt: skip
    deployed = _substitute(
        properties["DefinitionString"],
        {name: arns.get(name, value) for name, value in substitutions.items()},
    )
    assert deployed.encode() == _substitute(source, _production(arns)).encode()
    assert "${" not in deployed
    assert json.loads(deployed) == json.loads(_substitute(source, _production(arns)))


def test_the_order_flow_starts_the_deployed_step_loop_and_waits_for_it(
    synthesis: Synthesis, brand_name: str
) -> None:
    properties = _machine_resource(synthesis, brand_name, MACHINES["order_flow"])["Properties"]
    deployed = json.loads(_substitute(properties["DefinitionString"], _production(FAKE_VALUES)))
    assert list(nested_starts(deployed)) == [FAKE_CHILD_ARN]
    assert properties["DefinitionSubstitutions"][CHILD_VARIABLE] == {
        "Ref": _machine_id(synthesis, brand_name, "order_steps")
    }
    # Only the order flow nests; neither the step loop nor the undo flow starts an execution.
    for key in ("order_steps", "undo_flow"):
        other = _machine_resource(synthesis, brand_name, MACHINES[key])["Properties"]
        assert NESTED_INTEGRATION not in other["DefinitionString"], key
        assert "StateMachineArn" not in json.dumps(other["DefinitionSubstitutions"]), key


def test_the_step_loop_fits_what_express_runs() -> None:
    steps = json.loads(_substitute(STEPS_FILE.read_text(encoding="utf-8"), _production(FAKE_VALUES)))
    # Express supports neither waiting for a task token nor .sync jobs, and runs five minutes at most.
    resources = {state.get("Resource") for state in _states(steps).values() if state["Type"] == "Task"}
    assert resources == {"arn:aws:states:::lambda:invoke"}
    assert 0 < steps["TimeoutSeconds"] <= EXPRESS_LIMIT_SECONDS
    # The parent waits longer than the child may run: a child that runs out of time reports
    # TIMED_OUT (States.TaskFailed, undone by the parent) before the parent's task times out.
    flow = json.loads(_substitute(ASL_FILE.read_text(encoding="utf-8"), _production(FAKE_VALUES)))
    run = _states(flow)["RunOrderSteps"]
    assert run["Resource"] == NESTED_INTEGRATION
    assert run["TimeoutSeconds"] > steps["TimeoutSeconds"]
    assert run["Parameters"]["Input"]["AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$"] == "$$.Execution.Id"
    assert [catch["ErrorEquals"] for catch in run["Catch"]] == [["States.TaskFailed"], ["States.ALL"]]


def test_aws_runs_the_production_retry_waits(synthesis: Synthesis, brand_name: str) -> None:
    seen = set()
    for machine in MACHINES.values():
        properties = _machine_resource(synthesis, brand_name, machine)["Properties"]
        values = {
            name: FAKE_VALUES.get(name, value)
            for name, value in properties["DefinitionSubstitutions"].items()
        }
        deployed = json.loads(_substitute(properties["DefinitionString"], values))
        for retrier in retriers(deployed):
            errors = tuple(retrier["ErrorEquals"])
            assert retrier == {"ErrorEquals": list(errors), **PRODUCTION_RETRIES[errors]}, machine.name
            seen.add(errors)
    assert seen == set(PRODUCTION_RETRIES)


def test_the_local_stack_runs_the_same_flows_with_short_retry_waits() -> None:
    assert set(LOCAL_RETRY_TIMINGS) == set(RETRY_TIMINGS)
    count = 0
    for machine in MACHINES.values():
        source = machine.file.read_text(encoding="utf-8")
        local = json.loads(substitute_definition(source, FAKE_VALUES))
        aws = json.loads(_substitute(source, _production(FAKE_VALUES)))
        # The same states, error names, retry counts and jitter; only the waits differ.
        assert _without_waits(local) == _without_waits(aws), machine.name
        assert len(list(retriers(local))) == len(list(retriers(aws))) > 0
        count += len(list(retriers(local)))
        for retrier in retriers(local):
            assert retrier["BackoffRate"] == 1
            if retrier["ErrorEquals"] == ["MerchantCircuitOpen"]:
                # As on AWS, a step that met an open circuit is retried once the breaker may half-open
                # (the local stack's breakers reset after LOCAL_BREAKER_RESET_SECONDS).
                assert (
                    LOCAL_BREAKER_RESET_SECONDS
                    < retrier["IntervalSeconds"]
                    <= LOCAL_BREAKER_RESET_SECONDS + 1
                )
            else:
                assert retrier["IntervalSeconds"] == 1
    assert count > 20
    assert RETRY_TIMINGS["CircuitOpenRetryIntervalSeconds"] > BreakerPolicy().reset_timeout


def test_an_unfinished_step_loop_is_undone_only_after_its_steps_functions_have_timed_out() -> None:
    """A stopped Express child's Lambda invocations run on to their own timeout: the order flow waits
    longer than the longest connector's before it reads the merchant to undo."""
    steps = MACHINES["order_steps"]
    timeouts = {spec.name: spec.timeout_seconds for spec in FUNCTIONS if spec.name in steps.invokes}
    flow = json.loads(_substitute(MACHINES["order_flow"].file.read_text(), _production(FAKE_VALUES)))
    settle = flow["States"]["LetStepsSettle"]
    assert settle["Type"] == "Wait" and settle["Next"] == "UndoExecutedSteps"
    assert settle["Seconds"] == RETRY_TIMINGS["StepsSettleSeconds"] > max(timeouts.values())
    assert set(timeouts) == steps.invokes


@pytest.mark.parametrize("key", MACHINES)
def test_cfn_lint_checks_the_definition_with_its_retry_waits_in_place(key: str) -> None:
    # cfn-lint cannot parse the file itself (its placeholders are unquoted), so it gets it substituted.
    source = MACHINES[key].file.read_text(encoding="utf-8")
    assert _definition_errors(_substitute(source, _production(FAKE_VALUES))) == []
    assert _definition_errors(substitute_definition(source, FAKE_VALUES)) == []
    # The linter does read the definition it is given.
    misspelt = _substitute(source, _production(FAKE_VALUES)).replace('"Type": "Task"', '"Type": "Taks"', 1)
    assert [error.split(" ")[0] for error in _definition_errors(misspelt)] == ["E3601"]


def test_a_quoted_retry_placeholder_is_refused_before_deploying() -> None:
    # "${X}" would become the string "6", which Step Functions refuses (and cfn-lint lets through).
    nested = {CHILD_VARIABLE: object()}
    source = ASL_FILE.read_text(encoding="utf-8")
    assert check_definition(source, FAKE_ARNS, ASL_FILE, nested=nested)
    quoted = re.sub(r"\$\{(\w+RetryIntervalSeconds)\}", r'"${\1}"', source)
    with pytest.raises(DefinitionError, match="IntervalSeconds"):
        check_definition(quoted, FAKE_ARNS, ASL_FILE, nested=nested)
    with pytest.raises(DefinitionError, match="NoSuchRetryBackoffRate"):
        check_definition(
            source.replace("${LambdaRetryBackoffRate}", "${NoSuchRetryBackoffRate}"),
            FAKE_ARNS,
            ASL_FILE,
            nested=nested,
        )


def test_check_definition_returns_the_functions_each_file_names() -> None:
    for machine in MACHINES.values():
        nested = {variable: object() for variable in machine.nested}
        used = check_definition(
            machine.file.read_text(encoding="utf-8"), FAKE_ARNS, machine.file, nested=nested
        )
        assert {CONTRACT_VARIABLES[variable] for variable in used} == machine.invokes, machine.name


def _with_start_of(arn_field: dict[str, str], resource: str = NESTED_INTEGRATION) -> str:
    """The order flow's file with RunOrderSteps starting another state machine."""
    flow = json.loads(_substitute(ASL_FILE.read_text(encoding="utf-8"), _production(FAKE_VALUES)))
    run = _states(flow)["RunOrderSteps"]
    run["Resource"] = resource
    parameters = {k: v for k, v in run["Parameters"].items() if not k.startswith("StateMachineArn")}
    run["Parameters"] = arn_field | parameters
    text = json.dumps(flow, indent=2)
    # Back to the file's form: functions by their variables (as in the file).
    for variable, arn in FAKE_ARNS.items():
        text = text.replace(f'"{arn}"', f'"${{{variable}}}"')
    return text


@pytest.mark.parametrize(
    ("arn_field", "refused"),
    [
        # An ARN written in the file: the stack would grant nothing on it (or something it does not own).
        ({"StateMachineArn": FAKE_CHILD_ARN}, FAKE_CHILD_ARN),
        # A machine chosen at run time from the execution's input.
        ({"StateMachineArn.$": "$.machine"}, "$.machine"),
        # A substituted ARN that is not a nested state machine of the stack: a function's.
        ({"StateMachineArn": "${PlannerFunctionArn}"}, "${PlannerFunctionArn}"),
    ],
)
def test_a_nested_start_of_anything_but_a_given_machine_is_refused(
    arn_field: dict[str, str], refused: str
) -> None:
    definition = _with_start_of(arn_field)
    with pytest.raises(
        DefinitionError, match="starts state machines the stack does not substitute"
    ) as raised:
        check_definition(definition, FAKE_ARNS, ASL_FILE, nested={CHILD_VARIABLE: object()})
    assert refused in str(raised.value)


def test_a_nested_start_of_a_machine_the_stack_was_not_given_is_refused() -> None:
    definition = _with_start_of({"StateMachineArn": "${OtherStateMachineArn}"})
    with pytest.raises(DefinitionError, match="OtherStateMachineArn"):
        check_definition(definition, FAKE_ARNS, ASL_FILE, nested={CHILD_VARIABLE: object()})
    # The file as it is, given no nested machine: its child's variable is unknown.
    with pytest.raises(DefinitionError, match=CHILD_VARIABLE):
        check_definition(ASL_FILE.read_text(encoding="utf-8"), FAKE_ARNS, ASL_FILE)


def test_start_execution_sync_is_refused_when_no_nested_machine_is_given() -> None:
    # The child's ARN written in (so that no variable is unknown): the integration itself is refused.
    definition = _with_start_of({"StateMachineArn": FAKE_CHILD_ARN})
    with pytest.raises(DefinitionError, match=re.escape(f"cannot call: ['{NESTED_INTEGRATION}']")):
        check_definition(definition, FAKE_ARNS, ASL_FILE)


@pytest.mark.parametrize(
    "resource",
    [
        "arn:aws:states:::states:startExecution",  # fire and forget: a failed child goes unseen
        "arn:aws:states:::states:startExecution.sync",  # output as text, not what the flow reads
        "arn:aws:states:::states:startExecution.waitForTaskToken",
    ],
)
def test_only_start_execution_sync_2_is_granted_for_a_nested_machine(resource: str) -> None:
    definition = _with_start_of({"StateMachineArn": f"${{{CHILD_VARIABLE}}}"}, resource)
    with pytest.raises(DefinitionError, match="cannot call"):
        check_definition(definition, FAKE_ARNS, ASL_FILE, nested={CHILD_VARIABLE: object()})


def test_the_three_machines_log_failures_only_and_are_traced(
    template: Template, synthesis: Synthesis, brand_name: str
) -> None:
    template.resource_count_is("AWS::StepFunctions::StateMachine", len(MACHINES))
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "StateMachineType": "EXPRESS",
            "TracingConfiguration": {"Enabled": True},
            "LoggingConfiguration": Match.object_like({"Level": "ERROR", "IncludeExecutionData": False}),
        },
    )
    resources = synthesis.template_json(brand_name)["Resources"]
    log_groups = set()
    for machine in MACHINES.values():
        properties = _machine_resource(synthesis, brand_name, machine)["Properties"]
        assert properties["StateMachineType"] == machine.type, machine.name
        assert properties["StateMachineName"] == f"CartPilot-{brand_name}-{machine.name}"
        assert properties["TracingConfiguration"] == {"Enabled": True}
        logging = properties["LoggingConfiguration"]
        assert logging["Level"] == "ERROR"  # failures; every step is in the audit trail and the history
        assert logging["IncludeExecutionData"] is False  # task tokens (row 15 of issue 11), addresses
        (destination,) = logging["Destinations"]
        log_group_id = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
        log_group = resources[log_group_id]["Properties"]
        assert log_group["RetentionInDays"] == 90
        assert "KmsKeyId" in log_group  # error names and state names still tell what a goal went through
        log_groups.add(log_group_id)
    assert len(log_groups) == len(MACHINES)


@pytest.mark.parametrize("key", MACHINES)
def test_each_role_may_invoke_exactly_the_functions_its_definition_names(
    synthesis: Synthesis, brand_name: str, key: str
) -> None:
    machine = MACHINES[key]
    resources = synthesis.template_json(brand_name)["Resources"]
    properties = _machine_resource(synthesis, brand_name, machine)["Properties"]
    role_id = properties["RoleArn"]["Fn::GetAtt"][0]
    assert resources[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "states.amazonaws.com"
    }
    statements = statements_of_role(resources, role_id)
    invoke = [s for s in statements if any(a.startswith("lambda:") for a in s["Action"])]
    assert [s["Action"] for s in invoke] == [["lambda:InvokeFunction"]]
    # Exactly the live aliases the definition names: no $LATEST, no version wildcard.
    invoked = {ref["Ref"] for ref in resource_refs(invoke[0])}
    aliases = synthesis.stacks[brand_name].functions.live
    assert invoked == {synthesis.logical_id(brand_name, aliases[name]) for name in machine.invokes}
    assert set(of_type(resources, "AWS::Lambda::Alias")) >= invoked
    assert synthesis.logical_id(brand_name, aliases["api"]) not in invoked
    for statement in statements:
        if statement in invoke or any(a.split(":")[0] in {"states", "events"} for a in statement["Action"]):
            continue
        assert statement["Resource"] == "*"
        assert {action.split(":")[0] for action in statement["Action"]} <= {"logs", "xray"}
    if not machine.nested:
        assert _grants(resources, role_id, "states", "events") == set(), machine.name


def test_the_order_flow_may_start_and_watch_its_step_loop_only(synthesis: Synthesis, brand_name: str) -> None:
    resources = synthesis.template_json(brand_name)["Resources"]
    properties = _machine_resource(synthesis, brand_name, MACHINES["order_flow"])["Properties"]
    role_id = properties["RoleArn"]["Fn::GetAtt"][0]
    child = _machine_id(synthesis, brand_name, "order_steps")
    prefix = "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>"
    executions = {f"{prefix}:{kind}:CartPilot-{brand_name}-OrderSteps:*" for kind in ("execution", "express")}
    rule = "arn:<AWS::Partition>:events:<AWS::Region>:<AWS::AccountId>:rule/"
    assert _grants(resources, role_id, "states", "events") == {
        # Starts the step loop, and nothing else: not itself, not the undo flow.
        ("states:StartExecution", json.dumps({"Ref": child})),
        # Reads and stops the step loop's executions (a timed-out task stops its child), no others'.
        *{
            (action, arn)
            for action in ("states:DescribeExecution", "states:StopExecution")
            for arn in executions
        },
        # The rule Step Functions manages to hear when a .sync child ends.
        *{
            (action, rule + "StepFunctionsGetEventsForStepFunctionsExecutionRule")
            for action in ("events:PutTargets", "events:PutRule", "events:DescribeRule")
        },
    }


def test_the_execution_wildcards_are_acknowledged_by_their_own_findings(synthesis: Synthesis) -> None:
    for brand in synthesis.stacks:
        path = f"CartPilot-{brand}/OrderFlow/StateMachine/Role"
        acknowledged = {finding for where, finding, _ in synthesis.acknowledgments if where == path}
        for kind in ("execution", "express"):
            assert (
                "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:"
                f"{kind}:CartPilot-{brand}-OrderSteps:*]"
            ) in acknowledged, (brand, kind)
