"""Alarms and dashboard: failures, timeouts, compensations, goals needing a person, errors, throttles."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Template

from tests.infra.conftest import Synthesis, brand_key, of_type

pytestmark = pytest.mark.xdist_group("infra")


def _alarms(resources: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in of_type(resources, "AWS::CloudWatch::Alarm").values()
    }


def test_order_flow_failures_and_timeouts_alarm(synthesis: Synthesis, brand_name: str) -> None:
    resources = synthesis.template_json(brand_name)["Resources"]
    alarms = _alarms(resources)
    machine = synthesis.logical_id(brand_name, synthesis.stacks[brand_name].order_flow.state_machine)
    for name, metric in (
        ("OrderFlowFailed", "ExecutionsFailed"),
        ("OrderFlowTimedOut", "ExecutionsTimedOut"),
    ):
        alarm = alarms[f"CartPilot-{brand_name}-{name}"]
        assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/States", metric)
        assert alarm["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": machine}}]
        assert alarm["Threshold"] == 1
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_a_step_loop_that_times_out_alarms(synthesis: Synthesis, brand_name: str) -> None:
    """The Express child's timeouts (its own ExecutionsTimedOut); its failures are the outcomes it
    records, reported by the order flow and the business metrics, so they raise no alarm of their own."""
    resources = synthesis.template_json(brand_name)["Resources"]
    alarms = _alarms(resources)
    stack = synthesis.stacks[brand_name]
    steps = synthesis.logical_id(brand_name, stack.order_steps.state_machine)
    alarm = alarms[f"CartPilot-{brand_name}-OrderStepsTimedOut"]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (
        "AWS/States",
        "ExecutionsTimedOut",
        "Sum",
    )
    assert alarm["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": steps}}]
    assert alarm["Threshold"] == 1
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"
    topic = synthesis.logical_id(brand_name, stack.monitoring.alarm_topic)
    assert alarm["AlarmActions"] == [{"Ref": topic}]
    on_steps = {
        a["MetricName"]
        for a in alarms.values()
        if a.get("Dimensions") == [{"Name": "StateMachineArn", "Value": {"Ref": steps}}]
    }
    assert on_steps == {"ExecutionsTimedOut"}


def test_business_metrics_alarm_where_the_functions_emit_them(synthesis: Synthesis, brand_name: str) -> None:
    resources = synthesis.template_json(brand_name)["Resources"]
    alarms = _alarms(resources)
    api = resources[synthesis.logical_id(brand_name, synthesis.stacks[brand_name].functions.api)]
    environment = api["Properties"]["Environment"]["Variables"]
    for metric in ("Compensations", "NeedsAttention"):
        alarm = alarms[f"CartPilot-{brand_name}-{metric}"]
        assert alarm["Namespace"] == environment["POWERTOOLS_METRICS_NAMESPACE"]
        assert alarm["MetricName"] == metric
        assert alarm["Dimensions"] == [{"Name": "service", "Value": environment["POWERTOOLS_SERVICE_NAME"]}]
        assert alarm["Statistic"] == "Sum"
        assert alarm["Threshold"] == 1
        assert alarm["TreatMissingData"] == "notBreaching"


def test_every_function_alarms_on_errors_and_throttles(synthesis: Synthesis, brand_name: str) -> None:
    resources = synthesis.template_json(brand_name)["Resources"]
    watched = {
        (alarm["MetricName"], alarm["Dimensions"][0]["Value"]["Ref"])
        for alarm in _alarms(resources).values()
        if alarm.get("Namespace") == "AWS/Lambda"
    }
    for function_id in of_type(resources, "AWS::Lambda::Function"):
        assert ("Errors", function_id) in watched
        assert ("Throttles", function_id) in watched


def test_every_alarm_notifies_the_encrypted_alarm_topic(synthesis: Synthesis, brand_name: str) -> None:
    resources = synthesis.template_json(brand_name)["Resources"]
    topic = synthesis.logical_id(brand_name, synthesis.stacks[brand_name].monitoring.alarm_topic)
    assert "KmsMasterKeyId" in resources[topic]["Properties"]
    for name, alarm in _alarms(resources).items():
        assert alarm["AlarmActions"] == [{"Ref": topic}], name
    _, key = brand_key(resources)
    cloudwatch = [
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert cloudwatch
    assert set(cloudwatch[0]["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}


def test_api_server_errors_alarm_and_a_dashboard_exists(
    template: Template, resources: dict[str, dict[str, Any]], brand_name: str
) -> None:
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "AlarmName": f"CartPilot-{brand_name}-ApiServerErrors",
            "Namespace": "AWS/ApiGateway",
            "Threshold": 5,
        },
    )
    template.resource_count_is("AWS::CloudWatch::Dashboard", 1)
    alarms = _alarms(resources)
    assert alarms[f"CartPilot-{brand_name}-ApiServerErrors"]["MetricName"] == "5XXError"
    (dashboard,) = of_type(resources, "AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == f"CartPilot-{brand_name}"
