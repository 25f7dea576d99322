"""Where the shipment is: a goal's ``tracking``, derived from the merchant's order entity.

UCP's order entity is a current-state snapshot (order.md, "Operations") whose ``fulfillment.events``
is an append-only log of what happened to the shipment (``fulfillment_event.json``: ``type`` is an
open string; common values are processing, shipped, in_transit, delivered, failed_attempt, canceled,
undeliverable, returned_to_sender). Every event or poll brings the whole log, so tracking is
recomputed from it each time: a replayed or reordered event yields the same tracking.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

# Shown to the shopper as they come; an unknown type keeps the merchant's word, capped.
_MAX_WORD = 40
_MAX_DETAIL = 300
_MAX_EVENTS = 50
# Event types after which the shipment will not move again: polling stops there.
FINAL_STATUSES: Final = frozenset({"delivered", "canceled", "undeliverable", "returned_to_sender"})
# The shipment notices the shopper gets, once each, when tracking first reaches them.
NOTICE_KINDS: Final = {"shipped": "shipped", "delivered": "delivered"}
# Statuses that mean the parcel left the merchant (a "shipped" notice is due even if a later event
# arrived first, for instance when the merchant only reported in_transit).
_LEFT_THE_MERCHANT: Final = frozenset({"shipped", "in_transit", "failed_attempt", "delivered"})


class TrackingEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    at: str
    status: str
    detail: str | None = None


class Tracking(BaseModel):
    """``GET /goals/{id}`` ``tracking``: the latest status and the shipment's events, oldest first."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    status: str
    carrier: str | None = None
    trackingNumber: str | None = None
    trackingUrl: str | None = None
    events: list[TrackingEvent] = Field(default_factory=list)

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


def _text(value: Any, limit: int) -> str | None:
    return value.strip()[:limit] or None if isinstance(value, str) else None


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def derive_tracking(order: Mapping[str, Any]) -> Tracking | None:
    """The tracking of ``order``'s fulfilment events; None while the order reports none.

    Events without a readable ``occurred_at`` (RFC 3339 with an offset) or ``type`` are skipped, as
    are repeats of an event id. The newest event gives the status; the newest carrier and tracking
    number seen (spec: required once the type is past processing) are the shipment's.
    """
    fulfillment = order.get("fulfillment")
    raw = fulfillment.get("events") if isinstance(fulfillment, Mapping) else None
    if not isinstance(raw, list):
        return None
    seen: set[str] = set()
    dated: list[tuple[datetime, int, Mapping[str, Any]]] = []
    for position, event in enumerate(raw):
        if not isinstance(event, Mapping):
            continue
        event_id = event.get("id")
        moment = _instant(event.get("occurred_at"))
        kind = _text(event.get("type"), _MAX_WORD)
        if not isinstance(event_id, str) or event_id in seen or moment is None or kind is None:
            continue
        seen.add(event_id)
        dated.append((moment, position, event))
    if not dated:
        return None
    dated.sort(key=lambda entry: (entry[0], entry[1]))
    carrier = tracking_number = tracking_url = None
    events: list[TrackingEvent] = []
    for moment, _, event in dated:
        carrier = _text(event.get("carrier"), _MAX_WORD) or carrier
        tracking_number = _text(event.get("tracking_number"), _MAX_WORD) or tracking_number
        tracking_url = _text(event.get("tracking_url"), 2000) or tracking_url
        events.append(
            TrackingEvent(
                at=moment.isoformat().replace("+00:00", "Z"),
                status=str(_text(event.get("type"), _MAX_WORD)),
                detail=_text(event.get("description"), _MAX_DETAIL),
            )
        )
    return Tracking(
        status=events[-1].status,
        carrier=carrier,
        trackingNumber=tracking_number,
        trackingUrl=tracking_url,
        events=events[-_MAX_EVENTS:],
    )


def notices_reached(tracking: Tracking) -> list[str]:
    """The shipment notices ``tracking`` calls for, in order: shipped (once the parcel left the
    merchant, whichever event said so first), then delivered. Who already got which is the caller's."""
    statuses = {event.status for event in tracking.events} | {tracking.status}
    kinds = {NOTICE_KINDS[status] for status in statuses if status in NOTICE_KINDS}
    if statuses & _LEFT_THE_MERCHANT:
        kinds.add("shipped")
    return [kind for kind in ("shipped", "delivered") if kind in kinds]
