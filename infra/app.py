"""The CDK app: ``npx aws-cdk synth`` (or ``python -m infra.app``) from the repository root.

One stack per brand found in ``brands/*/brand.yaml``, or only ``-c brand=NAME``; the other context
keys are described in ``infra/settings.py``. cdk-nag's AwsSolutions pack checks every stack, so a
synth with an unacknowledged finding fails.
"""

from __future__ import annotations

import aws_cdk as cdk

from infra.brands import discover_brands, select_brands
from infra.nag import add_checks
from infra.settings import DeploySettings, SettingsError
from infra.stack import CartPilotStack


def add_brand_stacks(app: cdk.App, settings: DeploySettings) -> list[CartPilotStack]:
    brands = select_brands(discover_brands(settings.paths.brands_dir), settings.brand)
    if settings.public_api_url is not None and len(brands) > 1:
        raise SettingsError("publicApiUrl names one brand's API: build that brand alone (-c brand=NAME)")
    return [CartPilotStack(app, brand.stack_name, brand=brand, settings=settings) for brand in brands]


def build_app(app: cdk.App) -> list[CartPilotStack]:
    context = {
        key: app.node.try_get_context(key)
        for key in (
            "brand",
            "brandsDir",
            "functionsDir",
            "stateMachineFile",
            "layer",
            "mutatingConcurrency",
            "apiGatewayAccountRole",
            "alarmEmail",
            "merchantUrl",
            "publicApiUrl",
        )
        if app.node.try_get_context(key) is not None
    }
    stacks = add_brand_stacks(app, DeploySettings.from_context(context))
    add_checks(app)
    return stacks


def main() -> None:
    app = cdk.App()
    build_app(app)
    app.synth()


if __name__ == "__main__":
    main()
