"""The merchant connector of each warm container, built from the settings and kept warm."""

from __future__ import annotations

import threading
from contextvars import ContextVar

from cartpilot.commerce.breaker import BreakerPolicy
from cartpilot.commerce.http import MerchantClient, Timeouts
from cartpilot.commerce.ucp import UcpMerchant
from cartpilot.wiring.settings import merchant_settings

_merchants: dict[tuple[str, str, float, float, float], UcpMerchant] = {}
_merchants_lock = threading.Lock()

# On Lambda a process is one warm container. The local stack hosts many containers in one
# process and names the one running here, so each keeps its own clients and circuit breakers,
# as separate containers would (a breaker shared by all of them half-opens for one caller).
container_scope: ContextVar[str] = ContextVar("container_scope", default="")


def merchant_from_env() -> UcpMerchant:
    """The merchant named by MERCHANT_URL, one per warm container (and per URL, for the local stack)."""
    defaults = Timeouts()
    config = merchant_settings(defaults.connect, defaults.read, BreakerPolicy().reset_timeout)
    key = (
        container_scope.get(),
        config.url,
        config.connect_timeout,
        config.read_timeout,
        config.breaker_reset,
    )
    with _merchants_lock:
        merchant = _merchants.get(key)
        if merchant is None:
            client = MerchantClient(
                config.url,
                timeouts=Timeouts(connect=config.connect_timeout, read=config.read_timeout),
                breakers=BreakerPolicy(reset_timeout=config.breaker_reset),
            )
            merchant = _merchants[key] = UcpMerchant.over(client)
        return merchant


def reset_merchant_cache() -> None:
    """Closes and forgets cached merchants; for tests and local stacks that restart the merchant."""
    with _merchants_lock:
        for merchant in _merchants.values():
            merchant.close()
        _merchants.clear()
