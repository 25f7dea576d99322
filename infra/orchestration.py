"""The order flow's state machines, each loaded from the ASL file the local stack also runs.

Three of them: the order flow (Standard: planning, checks, the approval's task token), the order steps
it starts for the step loop (Express, ``startExecution.sync:2``: billed per request and duration rather
than per transition), and the undo flow the shopper's undo request starts (Standard).
Each definition is taken verbatim from ``statemachines/``; CloudFormation replaces each
``${XFunctionArn}`` with the ARN of the function's ``live`` alias (``infra/functions.py``), each
``${XStateMachineArn}`` with the nested state machine's ARN, and each retry timing placeholder with its
production value at deploy time (definition substitutions), so the files stay the single source.
Every execution's failures are logged to an encrypted log group, without their data (inputs, outputs,
errors' causes: they carry task tokens, which resume the flow, and plans with addresses), and traced
in X-Ray; the state machine's role may invoke exactly the functions the definition names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.nag import acknowledge

STATE_MACHINE_LOG_RETENTION = logs.RetentionDays.THREE_MONTHS
# Failures only (failed, timed-out, aborted tasks and executions), with names, types and times: the
# audit trail records every step of a goal and the execution history keeps each transition for 90 days,
# so logging every event (~63 per auto-approved goal, ~19 KB) would pay to store a third copy; at ERROR
# an auto-approved goal logs nothing (its executions succeed). Never execution data: a
# waitForTaskToken task's input holds its task token, which anyone reading the log could use to approve
# the order.
EXECUTION_LOG_LEVEL = sfn.LogLevel.ERROR
INCLUDE_EXECUTION_DATA = False
# The only task integrations the definition may use: the role grants lambda:InvokeFunction, nothing else.
LAMBDA_INTEGRATIONS = frozenset(
    {"arn:aws:states:::lambda:invoke", "arn:aws:states:::lambda:invoke.waitForTaskToken"}
)
# Starting a nested state machine and waiting for it: granted only on the state machines the stack
# substitutes (``nested`` below), never on an ARN written in the file.
NESTED_INTEGRATION = "arn:aws:states:::states:startExecution.sync:2"
# The nested state machines, beside the order flow's file, and the variable the order flow names the
# step loop by.
ORDER_STEPS_FILE = "order_steps.asl.json"
UNDO_FLOW_FILE = "undo_flow.asl.json"
ORDER_STEPS_VARIABLE = "OrderStepsStateMachineArn"
# The rule Step Functions manages to learn when a nested execution ends (``.sync`` integrations).
SYNC_EVENTS_RULE = "StepFunctionsGetEventsForStepFunctionsExecutionRule"
_VARIABLE = re.compile(r"\$\{([A-Za-z0-9_]+)\}")

# Retry waits per environment. In the ASL file every Retry's IntervalSeconds and BackoffRate is an
# unquoted placeholder, ``${<Kind>RetryIntervalSeconds}`` and ``${<Kind>RetryBackoffRate}`` (unquoted so
# that the substituted value is a JSON number; the file is JSON only once substituted, so everything
# that reads it substitutes before parsing). Error names, retry counts and jitter stay in the file, the
# same everywhere. This mapping is the one source of the production waits: CDK passes them to
# CloudFormation as definition substitutions and the infra tests check the deployed definition against
# them; the local stack substitutes short waits of its own (``LOCAL_RETRY_TIMINGS`` in local/stack.py).
RETRY_TIMINGS: Mapping[str, int] = MappingProxyType(
    {
        # Lambda's own transient errors: 1, 2, 4 s, full jitter.
        "LambdaRetryIntervalSeconds": 1,
        "LambdaRetryBackoffRate": 2,
        # A merchant endpoint's circuit breaker is open: 6, 12, 24 s, each past the breaker's 5 s reset,
        # so the retry meets a half-open breaker (cartpilot.commerce.breaker.BreakerPolicy).
        "CircuitOpenRetryIntervalSeconds": 6,
        "CircuitOpenRetryBackoffRate": 2,
        # The merchant is unavailable or a write's outcome unknown: 3, 6, 12, 24 s, full jitter.
        "MerchantRetryIntervalSeconds": 3,
        "MerchantRetryBackoffRate": 2,
        # A notification or status record that failed: 2, 4, 8 s.
        "NotifyRetryIntervalSeconds": 2,
        "NotifyRetryBackoffRate": 2,
        # Compensation left steps undone: 1, 2 s, full jitter.
        "CompensationRetryIntervalSeconds": 1,
        "CompensationRetryBackoffRate": 2,
        # Not a retry: before undoing a step loop that stopped unfinished, the order flow waits out
        # the longest timeout of the functions the loop invokes (the compensator's 100 s; the
        # mutating connectors' 50 s), so nothing it started is still running at the merchant.
        "StepsSettleSeconds": 120,
    }
)
_RETRY_NUMBERS = ("IntervalSeconds", "MaxAttempts", "BackoffRate", "MaxDelaySeconds")


class DefinitionError(ValueError):
    """The ASL file does not fit the stack: unknown variables or task integrations it cannot grant."""


def definition_variables(definition: str) -> list[str]:
    """The ``${Name}`` substitution variables the definition uses, sorted."""
    return sorted(set(_VARIABLE.findall(definition)))


def substitute(definition: str, values: Mapping[str, object]) -> str:
    """What CloudFormation's definition substitutions do: each ``${Name}`` given becomes its value."""
    return _VARIABLE.sub(
        lambda match: str(values[match.group(1)]) if match.group(1) in values else match.group(0), definition
    )


def retry_substitutions(definition: str, timings: Mapping[str, int] = RETRY_TIMINGS) -> dict[str, str]:
    """The retry timing placeholders the definition uses, with their values as substitution strings."""
    return {name: str(timings[name]) for name in definition_variables(definition) if name in timings}


def _states(definition: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every state, including those inside Parallel branches and Maps."""
    for state in definition.get("States", {}).values():
        yield state
        for branch in state.get("Branches", []):
            yield from _states(branch)
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                yield from _states(state[key])


def task_resources(definition: Mapping[str, Any]) -> Iterator[str]:
    """The ``Resource`` of every Task state, including those inside Parallel branches and Maps."""
    for state in _states(definition):
        if state.get("Type") == "Task":
            yield state["Resource"]


def retriers(definition: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every entry of every state's ``Retry``, including those inside Parallel branches and Maps."""
    for state in _states(definition):
        yield from state.get("Retry", [])


def nested_starts(definition: Mapping[str, Any]) -> Iterator[object]:
    """The ``StateMachineArn`` of every Task state that starts a nested execution."""
    for state in _states(definition):
        if state.get("Type") == "Task" and state.get("Resource") == NESTED_INTEGRATION:
            parameters = state.get("Parameters", {})
            yield parameters.get("StateMachineArn", parameters.get("StateMachineArn.$"))


def check_definition(
    definition: str,
    functions: Mapping[str, object],
    source: Path,
    retry_timings: Mapping[str, int] = RETRY_TIMINGS,
    nested: Mapping[str, object] = MappingProxyType({}),
) -> list[str]:
    """Returns the function variables (ARNs to substitute, functions to grant); refuses what the stack
    could not deploy or grant. Retry timing placeholders must be ones ``retry_timings`` has a value for;
    a nested start must name one of the ``nested`` state machines by its variable."""
    variables = definition_variables(definition)
    unknown = [
        name
        for name in variables
        if name not in functions and name not in retry_timings and name not in nested
    ]
    if unknown:
        raise DefinitionError(
            f"{source} uses {unknown}; the stack substitutes only {sorted(functions)}, "
            f"the state machines {sorted(nested)} and the retry timings {sorted(retry_timings)}"
        )
    try:
        parsed = json.loads(substitute(definition, retry_timings))
    except json.JSONDecodeError as exc:
        raise DefinitionError(f"{source} is not valid JSON once its retry timings are in: {exc}") from exc
    wrong = sorted(
        {
            field
            for retrier in retriers(parsed)
            for field in _RETRY_NUMBERS
            if field in retrier and not isinstance(retrier[field], int | float)
        }
    )
    if wrong:
        raise DefinitionError(
            f"{source} has retry fields that are not numbers: {wrong}; write their placeholders unquoted"
        )
    functions_used = [name for name in variables if name in functions]
    allowed = LAMBDA_INTEGRATIONS | ({NESTED_INTEGRATION} if nested else set())
    foreign = sorted(
        {resource for resource in task_resources(parsed) if resource not in allowed}
        - {f"${{{name}}}" for name in functions_used}
    )
    if foreign:
        raise DefinitionError(f"{source} uses task resources the state machine role cannot call: {foreign}")
    started = {f"${{{name}}}" for name in nested}
    stray = sorted(str(arn) for arn in nested_starts(parsed) if arn not in started)
    if stray:
        raise DefinitionError(f"{source} starts state machines the stack does not substitute: {stray}")
    return functions_used


class OrderFlow(Construct):
    """One state machine from its ASL file: the order flow itself by default; ``express`` for the step
    loop it nests, ``nested`` the state machines its definition starts, by substitution variable."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        brand: str,
        definition_file: Path,
        functions: Mapping[str, lambda_.IFunction],
        key: kms.IKey,
        name: str = "OrderFlow",
        express: bool = False,
        nested: Mapping[str, OrderFlow] = MappingProxyType({}),
    ) -> None:
        super().__init__(scope, construct_id)
        definition = definition_file.read_text(encoding="utf-8")
        variables = check_definition(definition, functions, definition_file, nested=nested)
        invoked = [functions[name] for name in variables]
        started = {name: machine for name, machine in nested.items() if f"${{{name}}}" in definition}

        self.state_machine_name = f"CartPilot-{brand}-{name}"
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=STATE_MACHINE_LOG_RETENTION,
            encryption_key=key,
        )
        self.state_machine: sfn.StateMachine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=self.state_machine_name,
            state_machine_type=sfn.StateMachineType.EXPRESS if express else sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(definition),
            definition_substitutions={
                **{name: functions[name].function_arn for name in variables},
                **{name: flow.state_machine.state_machine_arn for name, flow in started.items()},
                **retry_substitutions(definition),
            },
            logs=sfn.LogOptions(
                destination=self.log_group,
                level=EXECUTION_LOG_LEVEL,
                include_execution_data=INCLUDE_EXECUTION_DATA,
            ),
            tracing_enabled=True,
        )
        acknowledge(
            self.state_machine,
            "AwsSolutions-SF1",
            "Logs failures only (ERROR), on purpose: the audit trail records every step of a goal, "
            "hash-chained and anchored, and the execution history keeps every transition for 90 days; "
            "logging ALL events would store a third copy at about 19 KB per goal.",
        )
        # The aliases' ARNs only: the definition invokes each function's ``live`` alias, so neither
        # $LATEST nor a ":*" version wildcard is granted.
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"],
                resources=[function.function_arn for function in invoked],
            )
        )
        for flow in started.values():
            self._grant_nested_start(flow)
        acknowledge(
            self.state_machine.role,
            "AwsSolutions-IAM5[Resource::*]",
            "Added by CDK for execution logging and tracing: the CloudWatch Logs delivery actions "
            "(logs:CreateLogDelivery, logs:PutResourcePolicy, ...) and xray:PutTraceSegments support no "
            "resource-level permissions. Lambda invocation is granted on the named functions only.",
        )

    def _grant_nested_start(self, nested: OrderFlow) -> None:
        """What ``startExecution.sync:2`` needs, as Step Functions documents it: start the nested state
        machine, read and stop its executions, and the managed rule that reports their end."""
        stack = Stack.of(self)
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:StartExecution"], resources=[nested.state_machine.state_machine_arn]
            )
        )
        # An execution's ARN is the state machine's with ``execution`` (Standard) or ``express``
        # (Express) in place of ``stateMachine``, followed by the execution's name (and, for Express,
        # its id): executions are named per goal at run time, hence the wildcard after the name.
        name = nested.state_machine_name
        executions = [
            stack.format_arn(
                service="states",
                resource=kind,
                resource_name=f"{name}:*",
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )
            for kind in ("execution", "express")
        ]
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:DescribeExecution", "states:StopExecution"], resources=executions
            )
        )
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[
                    stack.format_arn(service="events", resource="rule", resource_name=SYNC_EVENTS_RULE)
                ],
            )
        )
        # cdk-nag reports each execution wildcard as its own finding, by the ARN it reads.
        for kind in ("execution", "express"):
            acknowledge(
                self.state_machine.role,
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:{kind}:"
                f"{name}:*]",
                f"Describe/StopExecution on the nested {name} executions ({kind} ARNs) only: they are named "
                "per goal at run time, so the wildcard follows that one state machine's name.",
            )
