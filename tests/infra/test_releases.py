"""Issue 12 row 3 (safe code releases): every function runs as a published version behind its
``live`` alias, whatever invokes it invokes the alias, the mutating functions' new versions go out
by a CodeDeploy canary watched by their alarms, and the api and the validator start from SnapStart."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.function_specs import FUNCTIONS
from infra.functions import LIVE_ALIAS
from infra.releases import canaried_functions
from tests.infra.conftest import Synthesis, iter_refs, of_type

pytestmark = pytest.mark.xdist_group("infra")

MUTATING = {"checkout", "payment", "fulfillment", "orders", "compensator"}
CANARY_CONFIG = "CodeDeployDefault.LambdaCanary10Percent5Minutes"
ROLLBACK_EVENTS = {"DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_REQUEST", "DEPLOYMENT_STOP_ON_ALARM"}


def _ids(synthesis: Synthesis, brand: str) -> dict[str, tuple[str, str]]:
    """Function name -> (function logical id, its live alias's logical id)."""
    functions = synthesis.stacks[brand].functions
    return {
        spec.name: (
            synthesis.logical_id(brand, functions.by_name[spec.name]),
            synthesis.logical_id(brand, functions.live[spec.name]),
        )
        for spec in FUNCTIONS
    }


def _unqualified(function_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [function_id, "Arn"]}


def test_every_function_runs_a_retained_version_behind_its_live_alias(
    synthesis: Synthesis, brand_name: str, resources: dict[str, dict[str, Any]]
) -> None:
    aliases = of_type(resources, "AWS::Lambda::Alias")
    versions = of_type(resources, "AWS::Lambda::Version")
    for name, (function_id, alias_id) in _ids(synthesis, brand_name).items():
        alias = aliases[alias_id]["Properties"]
        assert alias["Name"] == LIVE_ALIAS, name
        assert alias["FunctionName"] == {"Ref": function_id}, name
        version_id, attribute = alias["FunctionVersion"]["Fn::GetAtt"]
        assert attribute == "Version"
        assert versions[version_id]["Properties"]["FunctionName"] == {"Ref": function_id}, name
        # The canary and a rollback still send traffic to the version a deploy replaced.
        assert versions[version_id]["DeletionPolicy"] == "Retain", name
    assert len(aliases) == len(FUNCTIONS)


def test_the_order_flow_invokes_the_aliases_and_may_invoke_nothing_else(
    synthesis: Synthesis, brand_name: str, resources: dict[str, dict[str, Any]]
) -> None:
    ids = _ids(synthesis, brand_name)
    stack = synthesis.stacks[brand_name]
    # The order flow, the step loop it nests and the undo flow: each function of the flow is named by one
    # of them at least, always by its live alias.
    machines = [
        resources[synthesis.logical_id(brand_name, flow.state_machine)]
        for flow in (stack.order_flow, stack.order_steps, stack.undo_flow)
    ]
    named = set()
    for machine in machines:
        for variable, value in machine["Properties"]["DefinitionSubstitutions"].items():
            spec = next((spec for spec in FUNCTIONS if spec.asl_variable == variable), None)
            if spec is not None:
                assert value == {"Ref": ids[spec.name][1]}, spec.name
                named.add(spec.name)
    assert named == {spec.name for spec in FUNCTIONS if spec.asl_variable}
    invoked = json.dumps([machine["Properties"] for machine in machines]) + json.dumps(
        [
            p
            for p in of_type(resources, "AWS::IAM::Policy").values()
            if "StateMachine" in json.dumps(p["Properties"]["Roles"])
        ]
    )
    for name, (function_id, _) in ids.items():
        assert json.dumps(_unqualified(function_id)) not in invoked, name


def test_every_api_route_invokes_the_api_alias(
    synthesis: Synthesis, brand_name: str, resources: dict[str, dict[str, Any]]
) -> None:
    function_id, alias_id = _ids(synthesis, brand_name)["api"]
    methods = [
        m for m in of_type(resources, "AWS::ApiGateway::Method").values() if "Integration" in m["Properties"]
    ]
    assert methods
    for method in methods:
        uri = json.dumps(method["Properties"]["Integration"]["Uri"])
        assert json.dumps({"Ref": alias_id}) in uri
        assert json.dumps(_unqualified(function_id)) not in uri
    permissions = [
        p["Properties"]
        for p in of_type(resources, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]
    assert permissions
    assert all(p["FunctionName"] == {"Ref": alias_id} for p in permissions)


def test_the_schedules_invoke_the_aliases(
    synthesis: Synthesis, brand_name: str, resources: dict[str, dict[str, Any]]
) -> None:
    ids = _ids(synthesis, brand_name)
    alias_refs = {json.dumps({"Ref": alias_id}) for _, alias_id in ids.values()}
    lambdas = set(of_type(resources, "AWS::Lambda::Function")) | set(of_type(resources, "AWS::Lambda::Alias"))
    # Every rule target that is a function, however it is named.
    targets = [
        target["Arn"]
        for rule in of_type(resources, "AWS::Events::Rule").values()
        for target in rule["Properties"].get("Targets", [])
        if set(iter_refs(target["Arn"])) & lambdas
    ]
    scheduled = [spec.name for spec in FUNCTIONS if spec.schedule_minutes is not None]
    assert scheduled
    for name in scheduled:
        assert {"Ref": ids[name][1]} in targets, name
    for target in targets:
        assert json.dumps(target) in alias_refs, target
    (schedule,) = of_type(resources, "AWS::Scheduler::Schedule").values()
    assert schedule["Properties"]["Target"]["Arn"] == {"Ref": ids["occurrences"][1]}
    # Nothing but Secrets Manager's rotation may invoke a function's $LATEST.
    for permission in of_type(resources, "AWS::Lambda::Permission").values():
        properties = permission["Properties"]
        if properties["Principal"] != "secretsmanager.amazonaws.com":
            assert json.dumps(properties["FunctionName"]) in alias_refs, properties


def test_the_mutating_functions_deploy_by_canary_watched_by_their_alarms(
    synthesis: Synthesis, brand_name: str, resources: dict[str, dict[str, Any]]
) -> None:
    stack = synthesis.stacks[brand_name]
    assert set(canaried_functions()) == MUTATING
    ids = _ids(synthesis, brand_name)
    groups = of_type(resources, "AWS::CodeDeploy::DeploymentGroup")
    assert len(groups) == len(MUTATING)
    aliases = of_type(resources, "AWS::Lambda::Alias")
    anomaly = [synthesis.logical_id(brand_name, alarm) for alarm in stack.rollout.alarms.values()]
    assert len(anomaly) == 6
    for name in MUTATING:
        group_id = synthesis.logical_id(brand_name, stack.releases.deployment_groups[name])
        group = groups[group_id]["Properties"]
        assert group["DeploymentConfigName"] == CANARY_CONFIG
        assert group["AutoRollbackConfiguration"]["Enabled"] is True
        assert set(group["AutoRollbackConfiguration"]["Events"]) == ROLLBACK_EVENTS
        assert group["AlarmConfiguration"]["Enabled"] is True
        watched = [alarm["Name"]["Ref"] for alarm in group["AlarmConfiguration"]["Alarms"]]
        label = name.capitalize()
        own = [
            synthesis.logical_id(brand_name, stack.monitoring.node.find_child(f"{label}{kind}"))
            for kind in ("Errors", "Throttles")
        ]
        assert watched == own + anomaly, name
        # The alias moves through this group: CloudFormation hands each new version to CodeDeploy.
        update = aliases[ids[name][1]]["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
        assert update["DeploymentGroupName"] == {"Ref": group_id}
    for name, (_, alias_id) in ids.items():
        if name not in MUTATING:
            assert "UpdatePolicy" not in aliases[alias_id], name


def test_the_mutating_functions_keep_their_reserved_concurrency(
    synthesis: Synthesis, brand_name: str, resources: dict[str, dict[str, Any]]
) -> None:
    for name, (function_id, _) in _ids(synthesis, brand_name).items():
        reserved = resources[function_id]["Properties"].get("ReservedConcurrentExecutions")
        assert (reserved is not None) == (name in MUTATING), name


def test_snap_start_is_on_for_the_api_and_the_validator_only(
    synthesis: Synthesis, brand_name: str, resources: dict[str, dict[str, Any]]
) -> None:
    snapped = {
        name
        for name, (function_id, _) in _ids(synthesis, brand_name).items()
        if resources[function_id]["Properties"].get("SnapStart") == {"ApplyOn": "PublishedVersions"}
    }
    assert snapped == {"api", "validator"}
    for function in of_type(resources, "AWS::Lambda::Function").values():
        if "SnapStart" in function["Properties"]:
            # SnapStart resumes published versions of Python 3.12 and later; nothing it cannot use.
            assert function["Properties"]["Runtime"] >= "python3.12"
            assert "EphemeralStorage" not in function["Properties"]
