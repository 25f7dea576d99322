"""What a shopper's view link can do: show the goal (never changing anything) and ask to undo it.

The link is the only credential, as with approval links: it is verified before the goal is read
for anything else, an unknown goal looks exactly like a forged link, and no link part is logged.
Undo goes through the one undo entry point (``goals.undo.request_undo``), which decides between
cancelling and returning and is idempotent, so pressing the button twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from cartpilot.audit.privacy import scrub_text
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.model import GoalRecord, GoalStatus
from cartpilot.goals.ports import Workflow
from cartpilot.goals.undo import UndoAccepted, UndoRefused, offers_return, offers_undo, request_undo
from cartpilot.goals.views import reason_of
from cartpilot.kernel.clock import utc_now
from cartpilot.kernel.errors import Refusal
from cartpilot.kernel.keyring import KeySource
from cartpilot.kernel.observability import logger
from cartpilot.plans.model import Plan
from cartpilot.shopper_view.links import (
    ViewClaims,
    ViewLinkExpired,
    ViewLinkInvalid,
    ViewLinkParams,
    verify_view_link,
)
from cartpilot.shopper_view.timeline import STATUS_WORDS, TimelineEntry, shopper_timeline

# Tracking statuses after which undo means a return, not a cancellation.
SHIPPED_STATUSES = frozenset({"shipped", "in_transit", "failed_attempt", "out_for_delivery", "delivered"})
# What the confirmation form must send: a second, deliberate step, never the first click.
CONFIRM_UNDO = "undo"
NO_UNDO_SENTENCE = "This shop offers no way to take an order back here; its return policy applies."
NO_RETURN_SENTENCE = "The order has shipped and this shop takes no returns here; its return policy applies."


class ViewRefused(Refusal):
    """Refused by the shopper's view (shown as the HTML error page)."""


@dataclass(frozen=True)
class TrackingEvent:
    at: str
    status: str
    detail: str


@dataclass(frozen=True)
class TrackingView:
    status: str
    carrier: str | None
    tracking_number: str | None
    events: list[TrackingEvent]

    @property
    def shipped(self) -> bool:
        return self.status.lower() in SHIPPED_STATUSES


@dataclass(frozen=True)
class ScheduleLine:
    """One of the shopper's schedules, as the page lists it."""

    schedule_id: str
    status: str
    goal: str
    next_occurrences: list[str]


class ScheduleSource(Protocol):
    """The shopper's schedules (the schedule store), for the page's list."""

    def schedules_of(self, goal: GoalRecord) -> list[ScheduleLine]: ...


@dataclass(frozen=True)
class UndoOffer:
    """Whether the page offers the undo button, and in which words."""

    available: bool = False
    # Shipped: undo files a return with the merchant instead of cancelling.
    returns: bool = False
    until: str | None = None
    # Asked for already; the flow is carrying it out.
    pending: bool = False
    closed_sentence: str | None = None


@dataclass(frozen=True)
class ShopperView:
    goal: GoalRecord
    plan: Plan | None
    link: ViewLinkParams
    status_words: str
    reason: str | None
    timeline: list[TimelineEntry]
    tracking: TrackingView | None
    undo: UndoOffer
    schedules: list[ScheduleLine] = field(default_factory=list)
    # After a press of the confirmed undo button: what happened.
    outcome: str | None = None
    # The page asks "are you sure?" (opened with ?step=confirm-undo).
    confirming: bool = False


def _text(value: Any, limit: int = 200) -> str:
    return scrub_text(str(value))[:limit] if value not in (None, "") else ""


def tracking_of(goal: GoalRecord) -> TrackingView | None:
    """The goal's tracking, where the order events recorded any; merchant text masked and bounded."""
    raw = getattr(goal, "tracking", None)
    if raw is None:
        return None
    data: Any = raw.model_dump(mode="json") if hasattr(raw, "model_dump") else raw
    if not isinstance(data, dict) or not data.get("status"):
        return None
    events = [
        TrackingEvent(at=_text(event.get("at"), 40), status=_text(event.get("status"), 40),
                      detail=_text(event.get("detail")))
        for event in data.get("events") or []
        if isinstance(event, dict)
    ]  # fmt: skip
    return TrackingView(
        status=_text(data["status"], 40),
        carrier=_text(data.get("carrier"), 80) or None,
        tracking_number=_text(data.get("trackingNumber"), 80) or None,
        events=events[-50:],
    )


class ShopperDesk:
    def __init__(
        self,
        *,
        ledger: GoalLedger,
        keys: KeySource,
        workflow: Workflow,
        schedules: ScheduleSource | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._ledger = ledger
        self._keys = keys
        self._workflow = workflow
        self._schedules = schedules
        self._clock = clock

    def open(self, goal_id: str, link: ViewLinkParams, *, confirming: bool = False) -> ShopperView:
        """GET: verifies the link and shows the goal. Reads only; mail scanners open links."""
        goal = self._verified(goal_id, link)
        return self._view(goal, link, confirming=confirming)

    def undo(self, goal_id: str, link: ViewLinkParams, confirm: str | None) -> ShopperView:
        """POST from the confirmation step: asks for the undo once; a repeat changes nothing."""
        goal = self._verified(goal_id, link)
        if confirm != CONFIRM_UNDO:
            raise ViewRefused(422, "CONFIRMATION_REQUIRED", "confirm the undo on the page before sending it")
        try:
            accepted = request_undo(
                goal_id, ledger=self._ledger, workflow=self._workflow, actor=f"shopper:{goal.userId}"
            )
        except UndoRefused as exc:
            raise ViewRefused(exc.status, exc.code, exc.message) from exc
        logger.info("shopper asked for undo", extra={"goalId": goal_id, "undo": accepted.undo})
        return self._view(self._ledger.store.require(goal_id), link, outcome=_outcome_words(accepted))

    def _verified(self, goal_id: str, link: ViewLinkParams) -> GoalRecord:
        goal = self._ledger.store.get(goal_id) if _plausible_goal_id(goal_id) else None
        expires_at = link.expires_at()
        if goal is None or expires_at is None:
            # An unknown goal looks exactly like a forged link: nothing to learn from probing.
            logger.warning("shopper view link refused", extra={"reason": "unknown"})
            raise ViewRefused(403, "LINK_INVALID", "this link is not valid")
        claims = ViewClaims(goal_id=goal.goalId, user_id=goal.userId, expires_at=expires_at)
        try:
            verify_view_link(
                claims, kid=link.kid, sig=link.sig, keyring=self._keys.keyring(),
                now=int(self._clock().timestamp()),
            )  # fmt: skip
        except ViewLinkInvalid as exc:
            logger.warning("shopper view link refused", extra={"goalId": goal_id, "reason": "invalid"})
            raise ViewRefused(403, "LINK_INVALID", "this link is not valid") from exc
        except ViewLinkExpired as exc:
            logger.warning("shopper view link refused", extra={"goalId": goal_id, "reason": "expired"})
            raise ViewRefused(410, "LINK_EXPIRED", "this link has expired; ask for a new one") from exc
        return goal

    def _view(
        self, goal: GoalRecord, link: ViewLinkParams, *, outcome: str | None = None, confirming: bool = False
    ) -> ShopperView:
        records = self._ledger.audit.records(goal.goalId)
        timeline = shopper_timeline(records)
        plan = goal.plan if isinstance(goal.plan, Plan) else None
        tracking = tracking_of(goal)
        undo = self._undo_offer(
            goal, plan, tracking, pending=any(r.event == "undo.requested" for r in records)
        )
        reason = reason_of(goal)
        schedules = [
            replace(line, goal=scrub_text(line.goal)[:200])
            for line in (self._schedules.schedules_of(goal) if self._schedules else [])
        ]
        return ShopperView(
            goal=goal,
            plan=plan,
            link=link,
            status_words=STATUS_WORDS.get(goal.status, goal.status.value),
            reason=reason.message if reason else None,
            timeline=timeline,
            tracking=tracking,
            undo=undo,
            schedules=schedules,
            outcome=outcome,
            confirming=confirming and undo.available,
        )

    def _undo_offer(
        self, goal: GoalRecord, plan: Plan | None, tracking: TrackingView | None, *, pending: bool
    ) -> UndoOffer:
        returns = tracking is not None and tracking.shipped
        if goal.status is not GoalStatus.COMPLETED or plan is None:
            return UndoOffer(returns=returns)
        if not offers_undo(plan):
            return UndoOffer(returns=returns, closed_sentence=NO_UNDO_SENTENCE)
        if returns and not offers_return(plan):
            return UndoOffer(returns=returns, closed_sentence=NO_RETURN_SENTENCE)
        until = goal.undoUntil
        if until is None:
            return UndoOffer(
                returns=returns, closed_sentence="The order is being finalised; undo opens in a moment."
            )
        if self._clock() >= datetime.fromisoformat(until):
            closed = f"The undo window closed on {_minute(until)}: the order is final. The shop's return policy applies."
            return UndoOffer(returns=returns, until=_minute(until), closed_sentence=closed)
        return UndoOffer(available=not pending, pending=pending, returns=returns, until=_minute(until))


def _outcome_words(accepted: UndoAccepted) -> str:
    if accepted.undo == "done":
        return "This order was already undone. Nothing more was changed."
    if "return" in str(accepted.undo).lower() or accepted.status is GoalStatus.RETURN_REQUESTED:
        return "Return requested: the shop refunds you when it receives the items."
    return "Undo requested: the order is being cancelled and refunded. You will be told when it is done."


def _minute(at: str) -> str:
    """An ISO timestamp as a person reads it, in UTC."""
    try:
        moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        return at
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _plausible_goal_id(goal_id: str) -> bool:
    """Goal ids are ``g-`` and hex; anything else is never looked up."""
    return 3 <= len(goal_id) <= 64 and goal_id.isascii() and goal_id.replace("-", "").isalnum()
