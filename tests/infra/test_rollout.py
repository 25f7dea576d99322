"""Rollout on AWS: AppConfig flags in a monitored live and an unmonitored floor environment, the six
anomaly alarms, and the EventBridge rule that sends them to the guard with exactly its grants."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cartpilot.rollout.flags import flags_document
from cartpilot.rollout.model import RolloutSettings
from infra.function_specs import FUNCTIONS
from infra.permissions import Resource, statements_for
from infra.rollout import (
    APPROVAL_REJECTIONS,
    COMPENSATION_RATE_PERCENT,
    DENY_RATE_PERCENT,
    MERCHANT_SERVER_ERRORS,
    NEEDS_ATTENTION_GOALS,
    PRICE_DRIFT_REPLANS,
)
from tests.infra.conftest import Synthesis, of_type, statements_of_role

pytestmark = pytest.mark.xdist_group("infra")

ANOMALIES = {
    "CompensationRate": COMPENSATION_RATE_PERCENT,
    "NeedsAttention": NEEDS_ATTENTION_GOALS,
    "DenyRate": DENY_RATE_PERCENT,
    "PriceDriftReplans": PRICE_DRIFT_REPLANS,
    "MerchantServerErrors": MERCHANT_SERVER_ERRORS,
    "ApprovalRejections": APPROVAL_REJECTIONS,
}


def _one(resources: dict[str, dict[str, Any]], resource_type: str) -> tuple[str, dict[str, Any]]:
    [(logical_id, resource)] = of_type(resources, resource_type).items()
    return logical_id, resource["Properties"]


def _anomaly_alarms(synthesis: Synthesis, brand: str) -> dict[str, tuple[str, dict[str, Any]]]:
    resources = synthesis.template_json(brand)["Resources"]
    prefix = f"CartPilot-{brand}-Anomaly-"
    return {
        props["AlarmName"].removeprefix(prefix): (logical_id, props)
        for logical_id, alarm in of_type(resources, "AWS::CloudWatch::Alarm").items()
        if (props := alarm["Properties"])["AlarmName"].startswith(prefix)
    }


def test_six_anomaly_alarms_on_the_metrics_the_functions_emit(synthesis: Synthesis, brand_name: str) -> None:
    stack = synthesis.stacks[brand_name]
    alarms = _anomaly_alarms(synthesis, brand_name)
    assert set(alarms) == set(ANOMALIES)
    topic = synthesis.logical_id(brand_name, stack.monitoring.alarm_topic)
    for name, (_, alarm) in alarms.items():
        assert alarm["Threshold"] == ANOMALIES[name], name
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["AlarmActions"] == [{"Ref": topic}], name
    for name, metric in (
        ("NeedsAttention", "NeedsAttention"),
        ("PriceDriftReplans", "PriceDriftReplans"),
        ("MerchantServerErrors", "MerchantServerErrors"),
        ("ApprovalRejections", "ApprovalRejections"),
    ):
        alarm = alarms[name][1]
        assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (
            stack.brand.metrics_namespace, metric, "Sum",
        )  # fmt: skip
        assert alarm["Dimensions"] == [{"Name": "service", "Value": stack.brand.service_name}]
    machine_arn = stack.resolve(stack.order_flow.state_machine.state_machine_arn)
    for name, numerator in (("CompensationRate", "Compensations"), ("DenyRate", "GoalsDenied")):
        queries = {q["Id"]: q for q in alarms[name][1]["Metrics"]}
        assert "100 * FILL(events, 0) / started" in queries["expr_1"]["Expression"] or any(
            "100 * FILL(events, 0) / started" in q.get("Expression", "") for q in queries.values()
        )
        events = queries["events"]["MetricStat"]["Metric"]
        started = queries["started"]["MetricStat"]["Metric"]
        assert events["MetricName"] == numerator and events["Namespace"] == stack.brand.metrics_namespace
        assert started["MetricName"] == "ExecutionsStarted" and started["Namespace"] == "AWS/States"
        [dimension] = started["Dimensions"]
        assert dimension["Name"] == "StateMachineArn"
        # The ARN from the machine's fixed name: the same machine the Ref names.
        assert machine_arn == {"Ref": synthesis.logical_id(brand_name, stack.order_flow.state_machine)}
        assert f":stateMachine:{stack.order_flow.state_machine_name}" in json.dumps(dimension["Value"])


def test_appconfig_has_a_feature_flags_profile_in_a_monitored_live_and_an_unmonitored_floor_environment(
    synthesis: Synthesis, brand_name: str
) -> None:
    stack = synthesis.stacks[brand_name]
    resources = synthesis.template_json(brand_name)["Resources"]
    application, props = _one(resources, "AWS::AppConfig::Application")
    assert props["Name"] == f"CartPilot-{brand_name}"
    _, profile = _one(resources, "AWS::AppConfig::ConfigurationProfile")
    assert profile["Type"] == "AWS.AppConfig.FeatureFlags"
    assert profile["LocationUri"] == "hosted"
    assert profile["ApplicationId"] == {"Ref": application}

    environments = {
        e["Properties"]["Name"]: e["Properties"]
        for e in of_type(resources, "AWS::AppConfig::Environment").values()
    }
    assert set(environments) == {"live", "floor"}
    assert "Monitors" not in environments["floor"]  # nothing can roll a restriction back
    [monitor] = environments["live"]["Monitors"]
    composite = synthesis.logical_id(brand_name, stack.rollout.anomaly)
    assert monitor["AlarmArn"] == {"Fn::GetAtt": [composite, "Arn"]}
    role = resources[monitor["AlarmRoleArn"]["Fn::GetAtt"][0]]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "appconfig.amazonaws.com"
    }
    [policy] = role["Policies"]
    assert policy["PolicyDocument"]["Statement"] == [
        {
            "Action": "cloudwatch:DescribeAlarms",
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [composite, "Arn"]},
        }
    ]

    # The composite (AppConfig takes at most five monitors) names each of the six alarms.
    rule = resources[composite]["Properties"]["AlarmRule"]
    rule_text = json.dumps(rule)
    for logical_id, _ in _anomaly_alarms(synthesis, brand_name).values():
        assert logical_id in rule_text
    assert rule_text.count("ALARM(") == len(ANOMALIES)


def test_the_first_flags_version_is_stage_all_and_deploys_to_both_environments(
    synthesis: Synthesis, brand_name: str
) -> None:
    stack = synthesis.stacks[brand_name]
    resources = synthesis.template_json(brand_name)["Resources"]
    _, version = _one(resources, "AWS::AppConfig::HostedConfigurationVersion")
    assert version["ContentType"] == "application/json"
    assert json.loads(version["Content"]) == flags_document(RolloutSettings())
    deployments = [d["Properties"] for d in of_type(resources, "AWS::AppConfig::Deployment").values()]
    restrictions = synthesis.logical_id(brand_name, stack.rollout.restrictions)
    assert sorted(d["EnvironmentId"]["Ref"] for d in deployments) == sorted(
        synthesis.logical_id(brand_name, env) for env in (stack.rollout.live, stack.rollout.floor)
    )
    assert all(d["DeploymentStrategyId"] == {"Ref": restrictions} for d in deployments)


def test_flag_changes_deploy_gradually_with_a_bake_and_restrictions_at_once(
    synthesis: Synthesis, brand_name: str
) -> None:
    resources = synthesis.template_json(brand_name)["Resources"]
    strategies = {
        s["Properties"]["Name"]: s["Properties"]
        for s in of_type(resources, "AWS::AppConfig::DeploymentStrategy").values()
    }
    changes = strategies[f"CartPilot-{brand_name}-FlagChanges"]
    assert (changes["GrowthType"], changes["GrowthFactor"]) == ("LINEAR", 20)
    assert (changes["DeploymentDurationInMinutes"], changes["FinalBakeTimeInMinutes"]) == (5, 5)
    restrictions = strategies[f"CartPilot-{brand_name}-Restrictions"]
    assert (restrictions["GrowthFactor"], restrictions["DeploymentDurationInMinutes"]) == (100, 0)
    assert restrictions["FinalBakeTimeInMinutes"] == 0


def test_exactly_the_six_alarms_entering_alarm_invoke_the_guard(
    synthesis: Synthesis, brand_name: str
) -> None:
    stack = synthesis.stacks[brand_name]
    resources = synthesis.template_json(brand_name)["Resources"]
    rules = [
        r["Properties"]
        for r in of_type(resources, "AWS::Events::Rule").values()
        if r["Properties"].get("EventPattern", {}).get("source") == ["aws.cloudwatch"]
    ]
    [rule] = rules
    pattern = rule["EventPattern"]
    assert pattern["detail-type"] == ["CloudWatch Alarm State Change"]
    assert pattern["detail"]["state"] == {"value": ["ALARM"]}
    assert sorted(pattern["detail"]["alarmName"]) == sorted(
        f"CartPilot-{brand_name}-Anomaly-{name}" for name in ANOMALIES
    )
    [target] = rule["Targets"]
    assert target["Arn"] == {"Ref": synthesis.logical_id(brand_name, stack.functions.live["guard"])}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2


def _role_id(synthesis: Synthesis, brand: str, name: str) -> str:
    resources = synthesis.template_json(brand)["Resources"]
    function = synthesis.stacks[brand].functions.by_name[name]
    role: str = resources[synthesis.logical_id(brand, function)]["Properties"]["Role"]["Fn::GetAtt"][0]
    return role


def _pairs(actions: Any, resources: Any) -> set[tuple[str, str]]:
    """(action, resource) pairs, however CDK merged the statements."""
    actions = actions if isinstance(actions, list) else [actions]
    resources = resources if isinstance(resources, list) else [resources]
    return {(action, json.dumps(resource, sort_keys=True)) for action in actions for resource in resources}


def _rollout_grants(synthesis: Synthesis, brand: str, name: str) -> set[tuple[str, str]]:
    resources = synthesis.template_json(brand)["Resources"]
    granted: set[tuple[str, str]] = set()
    for statement in statements_of_role(resources, _role_id(synthesis, brand, name)):
        granted |= {
            pair
            for pair in _pairs(statement["Action"], statement.get("Resource", []))
            if pair[0].startswith("appconfig:")
        }
    return granted


def test_every_function_holds_exactly_the_rollout_grants_its_spec_declares(
    synthesis: Synthesis, brand_name: str
) -> None:
    stack = synthesis.stacks[brand_name]
    rollout = stack.rollout
    arns = rollout.arns(stack.monitoring.alarm_topic)
    read = {
        Resource.ROLLOUT_LIVE: rollout.configuration_arn(rollout.live),
        Resource.ROLLOUT_FLOOR: rollout.configuration_arn(rollout.floor),
    }
    reading = {"appconfig:StartConfigurationSession", "appconfig:GetLatestConfiguration"}
    readers = 0
    for spec in FUNCTIONS:
        expected: set[tuple[str, str]] = set()
        for s in statements_for(spec):
            if s.resource.value.startswith("rollout-"):
                arn = read[s.resource] if s.actions <= reading else arns[s.resource]
                expected |= _pairs(sorted(s.actions), stack.resolve(arn))
        assert _rollout_grants(synthesis, brand_name, spec.name) == expected, spec.name
        readers += bool(expected)
    # The intake (api, occurrences), the validator, the four mutating connectors and the guard.
    assert readers == 8


def test_the_guard_may_deploy_flags_audit_and_tell_the_operators_and_nothing_else(
    synthesis: Synthesis, brand_name: str
) -> None:
    stack = synthesis.stacks[brand_name]
    resources = synthesis.template_json(brand_name)["Resources"]
    statements = statements_of_role(resources, _role_id(synthesis, brand_name, "guard"))
    actions = {a for s in statements for a in s["Action"]}
    assert {a for a in actions if a.startswith("appconfig:")} == {
        "appconfig:StartConfigurationSession", "appconfig:GetLatestConfiguration",
        "appconfig:CreateHostedConfigurationVersion", "appconfig:StartDeployment",
    }  # fmt: skip
    assert not {
        a for a in actions if a.startswith(("appconfig:Delete", "appconfig:Update", "appconfig:Stop"))
    }
    topic = synthesis.logical_id(brand_name, stack.monitoring.alarm_topic)
    publish = [s for s in statements if "sns:Publish" in s["Action"]]
    assert [s["Resource"] for s in publish] == [{"Ref": topic}]
    goals = synthesis.logical_id(brand_name, stack.data.goals)
    assert goals not in json.dumps(statements)  # it never reads or writes a goal
    function = resources[synthesis.logical_id(brand_name, stack.functions.by_name["guard"])]["Properties"]
    environment = function["Environment"]["Variables"]
    assert environment["OPS_TOPIC_ARN"] == {"Ref": topic}
    assert environment["ROLLOUT_APPCONFIG_FLOOR_DEPLOYMENT_STRATEGY"] == {
        "Ref": synthesis.logical_id(brand_name, stack.rollout.restrictions)
    }
