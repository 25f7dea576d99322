"""Contract of the rollout stores: the local file and AppConfig (moto for hosted versions; AppConfig
deployments and AppConfigData sessions, which moto does not emulate, through botocore's Stubber)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from moto import mock_aws

from cartpilot.adapters.aws.rollout_appconfig import AppConfigRolloutStore
from cartpilot.rollout.file_store import FileRolloutStore
from cartpilot.rollout.flags import flags_document
from cartpilot.rollout.model import RolloutSettings, RolloutStage

PILOT = RolloutSettings(stage=RolloutStage.PILOT, pilotUsers=["user-1"], pilotPercent=10)


def test_the_file_store_round_trips_and_never_leaves_half_a_file(tmp_path: Path) -> None:
    store = FileRolloutStore(tmp_path / "state" / "flags.json")
    store.write(PILOT, actor="a", reason="r")
    assert store.read() == PILOT
    assert json.loads(store.path.read_text()) == flags_document(PILOT)
    assert [p.name for p in store.path.parent.iterdir()] == ["flags.json"]


def _body(document: dict[str, Any]) -> StreamingBody:
    raw = json.dumps(document).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


@mock_aws
def test_the_appconfig_store_writes_a_hosted_version_and_deploys_it() -> None:
    client = boto3.client("appconfig", region_name="us-east-1")
    app = client.create_application(Name="cartpilot-sandbox")["Id"]
    profile = client.create_configuration_profile(
        ApplicationId=app, Name="rollout", LocationUri="hosted", Type="AWS.AppConfig.FeatureFlags"
    )["Id"]
    deployments: list[dict[str, Any]] = []
    # moto keeps hosted versions but has no deployments: record the call the store makes.
    original = client._make_api_call

    def make_api_call(operation: str, params: dict[str, Any]) -> Any:
        if operation == "StartDeployment":
            deployments.append(params)
            return {"DeploymentNumber": 1, "State": "DEPLOYING"}
        return original(operation, params)

    client._make_api_call = make_api_call  # type: ignore[method-assign]
    store = AppConfigRolloutStore(
        application=app, environment="env-1", profile=profile, deployment_strategy="AppConfig.AllAtOnce",
        appconfig_client=client, appconfigdata_client=boto3.client("appconfigdata", region_name="us-east-1"),
    )  # fmt: skip
    store.write(PILOT, actor="operator:ana", reason="pilot week 1")
    version = client.get_hosted_configuration_version(
        ApplicationId=app, ConfigurationProfileId=profile, VersionNumber=1
    )
    assert json.loads(version["Content"].read()) == flags_document(PILOT)
    assert version["Description"] == "operator:ana: pilot week 1"
    assert deployments == [
        {
            "ApplicationId": app,
            "EnvironmentId": "env-1",
            "DeploymentStrategyId": "AppConfig.AllAtOnce",
            "ConfigurationProfileId": profile,
            "ConfigurationVersion": "1",
            "Description": "operator:ana: pilot week 1",
        }
    ]


def test_the_appconfig_store_reads_through_powertools_and_caches_for_max_age() -> None:
    data = boto3.client(
        "appconfigdata", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(data)
    stubber.add_response(
        "start_configuration_session",
        {"InitialConfigurationToken": "t0"},
        {
            "ApplicationIdentifier": "app",
            "EnvironmentIdentifier": "env",
            "ConfigurationProfileIdentifier": "prof",
        },
    )
    stubber.add_response(
        "get_latest_configuration",
        {"NextPollConfigurationToken": "t1", "Configuration": _body(flags_document(PILOT))},
        {"ConfigurationToken": ANY},
    )
    with stubber:
        store = AppConfigRolloutStore(
            application="app", environment="env", profile="prof", max_age=60, appconfigdata_client=data
        )
        assert store.read() == PILOT
        # Within max_age the cached document answers: no second AppConfigData call (the stub has none).
        assert store.read() == PILOT
        stubber.assert_no_pending_responses()
    with pytest.raises(RuntimeError, match="read only"):
        store.write(PILOT, actor="a", reason="r")
