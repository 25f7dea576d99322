"""Order events: the store of order links and event claims, merchants' signing keys, and Get Order."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cartpilot.wiring import settings as config

if TYPE_CHECKING:
    from cartpilot.commerce.discovery import MerchantDiscovery
    from cartpilot.orders.merchant_keys import MerchantKeys
    from cartpilot.orders.ports import OrderEventStore


@functools.cache
def order_events() -> OrderEventStore:
    """Order links, event and notice claims: items of the goals table."""
    from cartpilot.adapters.aws import clients
    from cartpilot.adapters.aws.order_events_table import DynamoDBOrderEventStore

    return DynamoDBOrderEventStore(clients.dynamodb().Table(config.settings().goals_table))


@functools.cache
def _discovery() -> MerchantDiscovery:
    from cartpilot.commerce.discovery import MerchantDiscovery

    return MerchantDiscovery()


def merchant_urls() -> dict[str, str]:
    """The brand's merchants, id -> URL (the default one's as the deployment overrides it)."""
    from cartpilot import wiring

    return {merchant.id: wiring.merchant_config(merchant.id).url for merchant in wiring.brand().merchants}


@functools.cache
def merchant_keys() -> MerchantKeys:
    """Merchants' webhook signers, from their profiles; the version is the one negotiated with each."""
    from cartpilot.orders.merchant_keys import ProfileKeys

    def url_of(merchant_id: str) -> str:
        return merchant_urls()[merchant_id]

    def version_of(merchant_id: str) -> str:
        return _discovery().profile(url_of(merchant_id)).version

    return ProfileKeys(url_of, version_of)


def fetch_order(merchant_id: str, order_id: str) -> Mapping[str, Any]:
    """The merchant's order entity (Get Order), signed and credentialed as every call to it."""
    from cartpilot import wiring
    from cartpilot.wiring.merchants import merchant_for

    return merchant_for(wiring.brand(), merchant_id).orders.entity(order_id)


def reset_orders() -> None:
    for factory in (order_events, _discovery, merchant_keys):
        factory.cache_clear()
