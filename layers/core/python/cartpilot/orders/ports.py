"""What order events need from storage: which goal an order is, and what was already received."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

OrderListing = Literal["poll", "pending"]


@dataclass(frozen=True)
class OrderLink:
    """An order placed for a goal at one of the brand's merchants."""

    merchantId: str
    orderId: str
    goalId: str


class OrderEventStore(Protocol):
    """Order links, received-event claims and notice claims; every write is conditional."""

    def link_order(self, link: OrderLink, *, polled: bool) -> None:
        """Records which goal the merchant's order is (when the receipt records the order). A
        ``polled`` link is listed by ``open_orders`` until ``close_polling``. Linking again
        changes nothing; an order already linked to another goal is left as it is."""
        ...

    def goal_for_order(self, merchant_id: str, order_id: str) -> str | None: ...

    def claim_event(self, merchant_id: str, event_id: str, goal_id: str, received_at: str) -> bool:
        """Records a received event once: False when the same event id of this merchant was recorded."""
        ...

    def release_event(self, merchant_id: str, event_id: str) -> None:
        """Forgets a claim whose processing failed, so the merchant's retry is processed."""
        ...

    def claim_notice(self, goal_id: str, kind: str, sent_at: str) -> bool:
        """Records that the shopper is told ``kind`` about this goal; False when they already were."""
        ...

    def release_notice(self, goal_id: str, kind: str) -> None: ...

    def queue_snapshot(self, link: OrderLink, event_id: str, order_json: str, queued_at: str) -> None:
        """Keeps the order's newest accepted snapshot for the tracking sweep to apply, and lists the
        order for it (a polled order stays listed as polled)."""
        ...

    def pending_snapshot(self, merchant_id: str, order_id: str) -> tuple[str, str] | None:
        """The snapshot waiting to be applied (order JSON, when it was queued), if any."""
        ...

    def clear_pending(self, merchant_id: str, order_id: str, queued_at: str) -> None:
        """Forgets the applied snapshot unless a newer one was queued meanwhile (it stays listed)."""
        ...

    def open_orders(self, limit: int) -> list[tuple[OrderLink, OrderListing]]:
        """Orders the tracking sweep must look at, from a sparse index (no scan): ``poll`` ones to read
        at the merchant, ``pending`` ones with a pushed snapshot to apply."""
        ...

    def close_polling(self, merchant_id: str, order_id: str) -> None:
        """Takes the order off the sweep's list (its shipment will not move again)."""
        ...
