"""AppConfig as the rollout stores use it, inside a moto account.

moto keeps applications, profiles and hosted configuration versions, but runs no deployments and
has no AppConfigData: here a deployment makes its version the environment's configuration at once,
and an AppConfigData session answers the configuration deployed to its environment now.
"""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
from botocore.exceptions import ClientError
from botocore.response import StreamingBody

from cartpilot.rollout.flags import flags_document, settings_from_document
from cartpilot.rollout.model import RolloutSettings


class AppConfigService:
    def __init__(self, region: str = "us-east-1") -> None:
        self._control = boto3.client("appconfig", region_name=region)
        self.application = self._control.create_application(Name="cartpilot-sandbox")["Id"]
        self.profile = self._control.create_configuration_profile(
            ApplicationId=self.application,
            Name="rollout",
            LocationUri="hosted",
            Type="AWS.AppConfig.FeatureFlags",
        )["Id"]
        # Environment id -> the content deployed there.
        self.deployed: dict[str, bytes] = {}
        # StartDeployment's parameters, in the order the deployments were started.
        self.deployments: list[dict[str, Any]] = []
        # The descriptions of the hosted versions created through a served client, in order.
        self.versions: list[str] = []

    def deploy(self, environment: str, settings: RolloutSettings) -> None:
        """What an earlier deployment left in force in ``environment``."""
        self.deployed[environment] = json.dumps(flags_document(settings)).encode()

    def settings(self, environment: str) -> RolloutSettings:
        return settings_from_document(json.loads(self.deployed[environment]))

    def serve(self, client: Any) -> Any:
        """Routes ``client``'s deployments and AppConfigData calls here; the rest go to moto."""
        original = client._make_api_call

        def make_api_call(operation: str, params: dict[str, Any]) -> Any:
            if operation == "CreateHostedConfigurationVersion":
                self.versions.append(params.get("Description", ""))
            if operation == "StartDeployment":
                return self._start_deployment(original, params)
            if operation == "StartConfigurationSession":
                return {"InitialConfigurationToken": f"{params['EnvironmentIdentifier']}#0"}
            if operation == "GetLatestConfiguration":
                return self._latest(params["ConfigurationToken"])
            return original(operation, params)

        client._make_api_call = make_api_call
        return client

    def _start_deployment(self, original: Any, params: dict[str, Any]) -> dict[str, Any]:
        version = original(
            "GetHostedConfigurationVersion",
            {
                "ApplicationId": params["ApplicationId"],
                "ConfigurationProfileId": params["ConfigurationProfileId"],
                "VersionNumber": int(params["ConfigurationVersion"]),
            },
        )
        self.deployments.append(params)
        self.deployed[params["EnvironmentId"]] = version["Content"].read()
        return {"DeploymentNumber": len(self.deployments), "State": "COMPLETE"}

    def _latest(self, token: str) -> dict[str, Any]:
        environment, _, n = token.rpartition("#")
        if environment not in self.deployed:
            raise ClientError(
                {"Error": {"Code": "ResourceNotFoundException", "Message": "nothing deployed"}},
                "GetLatestConfiguration",
            )
        content = self.deployed[environment]
        return {
            "NextPollConfigurationToken": f"{environment}#{int(n) + 1}",
            "ContentType": "application/json",
            "Configuration": StreamingBody(io.BytesIO(content), len(content)),
        }
