"""The composition root: real adapters built from the environment, once per warm container.

Each factory imports its adapter when first called, so a function's cold start loads only
the adapters that function uses (the orders connector never loads the planner).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from cartpilot import aws
from cartpilot.brands import BrandConfig, current_brand
from cartpilot.settings import MissingSetting, settings

if TYPE_CHECKING:
    from cartpilot.approvals import ApprovalStore
    from cartpilot.commerce import Merchant
    from cartpilot.notifications import Notifier
    from cartpilot.planning.service import Planner
    from cartpilot.signing import SecretsManagerKeySource
    from cartpilot.users import UserDirectory


def brand() -> BrandConfig:
    return current_brand()


def users() -> UserDirectory:
    from cartpilot.users import directory_for

    return directory_for(current_brand())


@functools.cache
def approvals() -> ApprovalStore:
    from cartpilot.approvals import ApprovalStore

    return ApprovalStore(aws.dynamodb().Table(settings().goals_table))


@functools.cache
def link_keys() -> SecretsManagerKeySource:
    from cartpilot.signing import SecretsManagerKeySource

    return SecretsManagerKeySource(settings().link_signing_secret_id)


@functools.cache
def notifier() -> Notifier:
    from cartpilot.notifications import SnsNotifier

    topic = settings().notify_topic_arn
    if topic is None:
        raise MissingSetting("environment variable NOTIFY_TOPIC_ARN is not set")
    return SnsNotifier(topic)


def merchant() -> Merchant:
    from cartpilot.connectors.ucp import merchant_from_env

    return merchant_from_env()


def planner() -> Planner:
    """The brand's configured planner (rules, or a model with the rules planner as fallback)."""
    from cartpilot.planning.setup import configured_planner

    shop = merchant()
    return configured_planner(current_brand(), shop.catalog, shop.fulfillment)


def reset_wiring() -> None:
    """Forget every cached adapter (the local stack builds a fresh emulated account per run)."""
    for factory in (approvals, link_keys, notifier):
        factory.cache_clear()
