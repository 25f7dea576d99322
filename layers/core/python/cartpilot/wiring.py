"""The composition root: real adapters built from the environment, once per warm container."""

from __future__ import annotations

import functools

from cartpilot import aws
from cartpilot.approvals import ApprovalStore
from cartpilot.brands import BrandConfig, current_brand
from cartpilot.commerce import Merchant
from cartpilot.notifications import Notifier, SnsNotifier
from cartpilot.planning.rules import RulesPlanner
from cartpilot.planning.service import Planner
from cartpilot.settings import MissingSetting, settings
from cartpilot.signing import SecretsManagerKeySource
from cartpilot.users import UserDirectory, directory_for


def brand() -> BrandConfig:
    return current_brand()


def users() -> UserDirectory:
    return directory_for(current_brand())


@functools.cache
def approvals() -> ApprovalStore:
    return ApprovalStore(aws.dynamodb().Table(settings().goals_table))


@functools.cache
def link_keys() -> SecretsManagerKeySource:
    return SecretsManagerKeySource(settings().link_signing_secret_id)


@functools.cache
def notifier() -> Notifier:
    topic = settings().notify_topic_arn
    if topic is None:
        raise MissingSetting("environment variable NOTIFY_TOPIC_ARN is not set")
    return SnsNotifier(topic)


def merchant() -> Merchant:
    from cartpilot.connectors.ucp import merchant_from_env

    return merchant_from_env()


def planner() -> Planner:
    shop = merchant()
    return RulesPlanner(shop.catalog, shop.fulfillment)


def reset_wiring() -> None:
    """Forget every cached adapter (the local stack builds a fresh emulated account per run)."""
    for factory in (approvals, link_keys, notifier):
        factory.cache_clear()
