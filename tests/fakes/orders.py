"""An in-memory OrderEventStore with the DynamoDB adapter's conditional-write behaviour."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from cartpilot.orders.merchant_keys import MerchantSigner
from cartpilot.orders.ports import OrderLink, OrderListing


@dataclass
class InMemoryOrderEventStore:
    links: dict[tuple[str, str], OrderLink] = field(default_factory=dict)
    polled: set[tuple[str, str]] = field(default_factory=set)
    events: dict[tuple[str, str], str] = field(default_factory=dict)
    notices: set[tuple[str, str]] = field(default_factory=set)
    pending: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def link_order(self, link: OrderLink, *, polled: bool) -> None:
        with self._lock:
            key = (link.merchantId, link.orderId)
            existing = self.links.get(key)
            if existing is not None and existing.goalId != link.goalId:
                return
            self.links[key] = link
            if polled:
                self.polled.add(key)

    def goal_for_order(self, merchant_id: str, order_id: str) -> str | None:
        link = self.links.get((merchant_id, order_id))
        return link.goalId if link else None

    def claim_event(self, merchant_id: str, event_id: str, goal_id: str, received_at: str) -> bool:
        with self._lock:
            if (merchant_id, event_id) in self.events:
                return False
            self.events[(merchant_id, event_id)] = goal_id
            return True

    def release_event(self, merchant_id: str, event_id: str) -> None:
        with self._lock:
            self.events.pop((merchant_id, event_id), None)

    def claim_notice(self, goal_id: str, kind: str, sent_at: str) -> bool:
        with self._lock:
            if (goal_id, kind) in self.notices:
                return False
            self.notices.add((goal_id, kind))
            return True

    def release_notice(self, goal_id: str, kind: str) -> None:
        with self._lock:
            self.notices.discard((goal_id, kind))

    def queue_snapshot(self, link: OrderLink, event_id: str, order_json: str, queued_at: str) -> None:
        with self._lock:
            key = (link.merchantId, link.orderId)
            assert self.links[key].goalId == link.goalId
            self.pending[key] = (order_json, queued_at)

    def pending_snapshot(self, merchant_id: str, order_id: str) -> tuple[str, str] | None:
        return self.pending.get((merchant_id, order_id))

    def clear_pending(self, merchant_id: str, order_id: str, queued_at: str) -> None:
        with self._lock:
            key = (merchant_id, order_id)
            if key in self.pending and self.pending[key][1] == queued_at:
                del self.pending[key]

    def open_orders(self, limit: int) -> list[tuple[OrderLink, OrderListing]]:
        pending: list[tuple[OrderLink, OrderListing]] = [
            (self.links[key], "pending") for key in sorted(self.pending) if key not in self.polled
        ]
        polled: list[tuple[OrderLink, OrderListing]] = [
            (self.links[key], "poll") for key in sorted(self.polled)
        ]
        return (pending + polled)[:limit]

    def close_polling(self, merchant_id: str, order_id: str) -> None:
        with self._lock:
            self.polled.discard((merchant_id, order_id))


@dataclass
class StaticMerchantKeys:
    """Each merchant's signer as given; ``refreshed`` counts refresh requests."""

    signers: dict[str, MerchantSigner]
    refreshed: int = 0

    def signer(self, merchant_id: str, *, refresh: bool = False) -> MerchantSigner:
        if refresh:
            self.refreshed += 1
        return self.signers[merchant_id]
