"""Whether CartPilot can learn of a merchant's shipments: pushed order events, or Get Order polls.

A merchant set to ``orderEvents: poll`` is told of no webhook, so its orders are only ever read with
Get Order; UCP 2026-01-11 defines no Get Order (order.md: its orders reach the platform by webhook
only). Such a merchant neither pushes nor can be polled: it is refused where discovery shows it
(planning, before anything is bought), and an order already listed for polling leaves the sweep.
"""

from __future__ import annotations

from typing import Final

from cartpilot.brands.config import MerchantConfig
from cartpilot.commerce.codecs import codec_for
from cartpilot.commerce.errors import MerchantRejected

# ``MerchantRejected.code`` of Get Order at a version without the route (commerce/ucp.py).
ORDER_LOOKUP_UNSUPPORTED: Final = "order_lookup_unsupported"
# ``MerchantRejected.code`` of a merchant set to be polled at such a version.
ORDER_EVENTS_UNREACHABLE: Final = "order_events_unreachable"
UNREACHABLE: Final = "this merchant neither pushes order events nor can be polled"


def can_be_polled(version: str) -> bool:
    """Whether the negotiated UCP ``version`` has a Get Order route to poll."""
    return codec_for(version).has_order_route


def refuse_unreachable(merchant: MerchantConfig, version: str) -> None:
    """Raises ``MerchantRejected`` when ``merchant`` is set to be polled but speaks ``version``,
    which cannot be polled: its orders could never be tracked, nor a return's refund seen."""
    if merchant.orderEvents == "poll" and not can_be_polled(version):
        raise MerchantRejected(
            f"{UNREACHABLE}: it is set to orderEvents: poll and speaks UCP {version}, which has no "
            "Get Order (set orderEvents: webhook for it in brand.yaml)",
            code=ORDER_EVENTS_UNREACHABLE,
        )


def lookup_unsupported(error: Exception) -> bool:
    """A Get Order the merchant's version cannot answer (no retry can help)."""
    return isinstance(error, MerchantRejected) and error.code == ORDER_LOOKUP_UNSUPPORTED
