"""One brand's CartPilot: data, secrets, notifications, functions, order flow, API and monitoring."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from infra.api import Api
from infra.brands import Brand
from infra.data import DataTables
from infra.encryption import BrandKey
from infra.functions import Functions
from infra.monitoring import Monitoring
from infra.notifications import Notifications
from infra.orchestration import ORDER_STEPS_FILE, ORDER_STEPS_VARIABLE, UNDO_FLOW_FILE, OrderFlow
from infra.releases import Releases
from infra.rollout import Rollout
from infra.secrets import BrandSecrets
from infra.settings import DeploySettings


class CartPilotStack(cdk.Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, brand: Brand, settings: DeploySettings, **kwargs: Any
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            stack_name=brand.stack_name,
            description=f"CartPilot for brand {brand.name}: plan, approve and execute purchases",
            **kwargs,
        )
        self.brand = brand
        cdk.Tags.of(self).add("Application", "CartPilot")
        cdk.Tags.of(self).add("Brand", brand.name)

        key = BrandKey(self, "Encryption", brand=brand.name).key
        self.data = DataTables(self, "Data", key=key, brand=brand.name)
        self.secrets = BrandSecrets(self, "Secrets", brand=brand.name, key=key)
        self.notifications = Notifications(
            self, "Notifications", brand=brand.name, key=key, ses_identity=brand.ses_identity
        )
        self.api = Api(
            self, "Api", brand=brand.name, key=key, account_cloudwatch_role=settings.api_gateway_account_role
        )
        self.functions = Functions(
            self,
            "Functions",
            brand=brand,
            settings=settings,
            key=key,
            tables=self.data,
            secrets=self.secrets,
            notifications=self.notifications,
            approval_base_url=self.api.base_url,
        )
        # The step loop runs as an Express child of the order flow (billed per request and duration, not
        # per transition); undo is a short flow of its own, started only when a shopper undoes.
        machines_dir = settings.paths.state_machine_file.parent
        self.order_steps = OrderFlow(
            self,
            "OrderSteps",
            brand=brand.name,
            name="OrderSteps",
            express=True,
            definition_file=machines_dir / ORDER_STEPS_FILE,
            functions=self.functions.by_asl_variable,
            key=key,
        )
        self.order_flow = OrderFlow(
            self,
            "OrderFlow",
            brand=brand.name,
            definition_file=settings.paths.state_machine_file,
            functions=self.functions.by_asl_variable,
            key=key,
            nested={ORDER_STEPS_VARIABLE: self.order_steps},
        )
        self.undo_flow = OrderFlow(
            self,
            "UndoFlow",
            brand=brand.name,
            name="UndoFlow",
            definition_file=machines_dir / UNDO_FLOW_FILE,
            functions=self.functions.by_asl_variable,
            key=key,
        )
        self.functions.connect_state_machine(self.order_flow.state_machine, self.undo_flow.state_machine)
        self.api.add_routes(self.functions.api_alias)
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            brand=brand.name,
            key=key,
            metrics_namespace=brand.metrics_namespace,
            service_name=brand.service_name,
            state_machine=self.order_flow.state_machine,
            order_steps=self.order_steps.state_machine,
            functions=self.functions.everything,
            rest_api=self.api.rest_api,
            alarm_email=settings.alarm_email,
            # The occurrence sweep's invocations EventBridge Scheduler could not deliver.
            dead_letter_queues={"OccurrenceSweep": self.functions.scheduler.dead_letters},
        )
        # Rollout flags in AppConfig, the anomaly alarms that roll flag changes back, and the guard
        # that drops the brand to read-only when one fires.
        self.rollout = Rollout(
            self,
            "Rollout",
            brand=brand.name,
            metrics_namespace=brand.metrics_namespace,
            service_name=brand.service_name,
            state_machine_name=self.order_flow.state_machine_name,
            functions=self.functions.by_name,
            guard=self.functions.live["guard"],
            alarm_topic=self.monitoring.alarm_topic,
        )
        # New versions of the mutating functions go out by canary, watched by their own alarms and
        # by the anomaly alarms: a release that starts compensating orders rolls back by itself.
        self.releases = Releases(
            self,
            "Releases",
            brand=brand.name,
            aliases=self.functions.live,
            monitoring=self.monitoring,
            anomaly_alarms=list(self.rollout.alarms.values()),
        )

        cdk.CfnOutput(self, "ApiUrl", value=self.api.rest_api.url, description="Base URL of the REST API")
        cdk.CfnOutput(self, "ApprovalBaseUrl", value=self.api.base_url)
        cdk.CfnOutput(self, "StateMachineArn", value=self.order_flow.state_machine.state_machine_arn)
        cdk.CfnOutput(self, "UndoStateMachineArn", value=self.undo_flow.state_machine.state_machine_arn)
        cdk.CfnOutput(self, "NotificationTopicArn", value=self.notifications.topic.topic_arn)
        cdk.CfnOutput(self, "StaffTopicArn", value=self.notifications.staff_topic.topic_arn)
        cdk.CfnOutput(self, "AlarmTopicArn", value=self.monitoring.alarm_topic.topic_arn)
        cdk.CfnOutput(self, "RolloutApplicationId", value=self.rollout.application.application_id)
        cdk.CfnOutput(self, "RolloutLiveEnvironmentId", value=self.rollout.live.environment_id)
        cdk.CfnOutput(self, "RolloutFloorEnvironmentId", value=self.rollout.floor.environment_id)
        cdk.CfnOutput(self, "RolloutProfileId", value=self.rollout.flags.configuration_profile_id)
        cdk.CfnOutput(self, "LinkSigningSecretArn", value=self.secrets.link_signing_key.secret_arn)
        cdk.CfnOutput(self, "ViewLinkSecretArn", value=self.secrets.view_link_key.secret_arn)
        cdk.CfnOutput(
            self,
            "UcpSigningKeysSecretArn",
            value=self.secrets.ucp_signing_keys.secret_arn,
            description="Run 'cartpilot keys rotate --secret <this>' after the first deploy and every 90 days",
        )
        cdk.CfnOutput(
            self,
            "UcpProfileUrl",
            value=f"{settings.public_api_url or self.api.base_url}/.well-known/ucp",
            description="CartPilot's UCP platform profile, the URL its UCP-Agent header names",
        )
        cdk.CfnOutput(
            self, "MerchantCredentialsSecretArn", value=self.secrets.merchant_credentials.secret_arn
        )
        cdk.CfnOutput(self, "LlmApiKeySecretArn", value=self.secrets.llm_api_key.secret_arn)
