"""The order flow: a Standard state machine loaded from the ASL file the local stack also runs.

The definition is taken verbatim from ``statemachines/order_flow.asl.json``; CloudFormation replaces
each ``${XFunctionArn}`` with the function's ARN at deploy time (definition substitutions), so the
file stays the single source of the flow. Every execution is logged with its data to an encrypted
log group and traced in X-Ray, and the state machine's role may invoke exactly the functions the
definition names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.nag import acknowledge

STATE_MACHINE_LOG_RETENTION = logs.RetentionDays.THREE_MONTHS
# The only task integrations the definition may use: the role grants lambda:InvokeFunction, nothing else.
LAMBDA_INTEGRATIONS = frozenset(
    {"arn:aws:states:::lambda:invoke", "arn:aws:states:::lambda:invoke.waitForTaskToken"}
)
_VARIABLE = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


class DefinitionError(ValueError):
    """The ASL file does not fit the stack: unknown variables or task integrations it cannot grant."""


def definition_variables(definition: str) -> list[str]:
    """The ``${Name}`` substitution variables the definition uses, sorted."""
    return sorted(set(_VARIABLE.findall(definition)))


def task_resources(definition: Mapping[str, Any]) -> Iterator[str]:
    """The ``Resource`` of every Task state, including those inside Parallel branches and Maps."""
    for state in definition.get("States", {}).values():
        if state.get("Type") == "Task":
            yield state["Resource"]
        for branch in state.get("Branches", []):
            yield from task_resources(branch)
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                yield from task_resources(state[key])


def check_definition(definition: str, functions: Mapping[str, object], source: Path) -> list[str]:
    """Returns the variables to substitute; refuses what the stack could not deploy or grant."""
    try:
        parsed = json.loads(definition)
    except json.JSONDecodeError as exc:
        raise DefinitionError(f"{source} is not valid JSON: {exc}") from exc
    variables = definition_variables(definition)
    unknown = [name for name in variables if name not in functions]
    if unknown:
        raise DefinitionError(f"{source} uses {unknown}; the stack substitutes only {sorted(functions)}")
    foreign = sorted(
        {resource for resource in task_resources(parsed) if resource not in LAMBDA_INTEGRATIONS}
        - {f"${{{name}}}" for name in variables}
    )
    if foreign:
        raise DefinitionError(f"{source} uses task resources the state machine role cannot call: {foreign}")
    return variables


class OrderFlow(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        brand: str,
        definition_file: Path,
        functions: Mapping[str, lambda_.IFunction],
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        definition = definition_file.read_text(encoding="utf-8")
        variables = check_definition(definition, functions, definition_file)
        invoked = [functions[name] for name in variables]

        self.state_machine_name = f"CartPilot-{brand}-OrderFlow"
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=STATE_MACHINE_LOG_RETENTION,
            encryption_key=key,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=self.state_machine_name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(definition),
            definition_substitutions={name: functions[name].function_arn for name in variables},
            logs=sfn.LogOptions(
                destination=self.log_group,
                level=sfn.LogLevel.ALL,
                include_execution_data=True,
            ),
            tracing_enabled=True,
        )
        # Unqualified ARNs only: the definition invokes $LATEST, so no ":*" version wildcard is granted.
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"],
                resources=[function.function_arn for function in invoked],
            )
        )
        acknowledge(
            self.state_machine.role,
            "AwsSolutions-IAM5[Resource::*]",
            "Added by CDK for execution logging and tracing: the CloudWatch Logs delivery actions "
            "(logs:CreateLogDelivery, logs:PutResourcePolicy, ...) and xray:PutTraceSegments support no "
            "resource-level permissions. Lambda invocation is granted on the named functions only.",
        )

        stack = cdk.Stack.of(self)
        self.execution_arn_pattern = stack.format_arn(
            service="states",
            resource="execution",
            resource_name=f"{self.state_machine_name}:*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        # The same pattern as cdk-nag prints it, pseudo parameters in angle brackets.
        self.execution_arn_finding = (
            "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"
            f"{self.state_machine_name}:*"
        )
