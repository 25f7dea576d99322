"""The rollout flags in AWS AppConfig: read through Powertools, written as a hosted version + deployment.

Reads go through ``FeatureFlags`` over ``AppConfigStore`` (AppConfigData sessions), cached for
``max_age`` seconds per warm container: that bound is how long a flipped kill switch may take to
reach a running function. Writes create a hosted configuration version and deploy it with the
stack's deployment strategy (all-at-once for the kill switch to mean "at once"); the deployment's
alarms (the anomaly monitors) can roll it back.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.feature_flags import AppConfigStore
from aws_lambda_powertools.utilities.feature_flags.base import StoreProvider

from cartpilot.rollout.flags import flags_document, settings_from_document
from cartpilot.rollout.model import RolloutSettings

# AppConfig's limit on a version's and a deployment's description.
_DESCRIPTION_LIMIT = 1024
DEFAULT_MAX_AGE_SECONDS = 5


class AppConfigRolloutStore:
    """``RolloutStore`` on AppConfig. ``application``, ``environment`` and ``profile`` are the
    resources' ids (the CloudFormation refs), which both the AppConfig and AppConfigData APIs take."""

    def __init__(
        self,
        *,
        application: str,
        environment: str,
        profile: str,
        deployment_strategy: str | None = None,
        max_age: int = DEFAULT_MAX_AGE_SECONDS,
        appconfig_client: Any | None = None,
        appconfigdata_client: Any | None = None,
    ) -> None:
        self._application = application
        self._environment = environment
        self._profile = profile
        self._deployment_strategy = deployment_strategy
        self._appconfig = appconfig_client
        self.flags: StoreProvider = AppConfigStore(
            environment=environment,
            application=application,
            name=profile,
            max_age=max_age,
            boto3_client=appconfigdata_client,
        )

    def read(self) -> RolloutSettings:
        return settings_from_document(self.flags.get_configuration())

    def write(self, settings: RolloutSettings, *, actor: str, reason: str) -> None:
        if self._appconfig is None or self._deployment_strategy is None:
            raise RuntimeError(
                "this store was built to read only: no AppConfig client or deployment strategy"
            )
        description = f"{actor}: {reason}"[:_DESCRIPTION_LIMIT]
        version = self._appconfig.create_hosted_configuration_version(
            ApplicationId=self._application,
            ConfigurationProfileId=self._profile,
            Content=json.dumps(flags_document(settings), sort_keys=True).encode("utf-8"),
            ContentType="application/json",
            Description=description,
        )["VersionNumber"]
        self._appconfig.start_deployment(
            ApplicationId=self._application,
            EnvironmentId=self._environment,
            DeploymentStrategyId=self._deployment_strategy,
            ConfigurationProfileId=self._profile,
            ConfigurationVersion=str(version),
            Description=description,
        )
