"""Every ending is told: each terminal status (and a return request) reaches the shopper and the
brand's topic once per status change.

The ledger marks a notice due on the goal's own item whenever it moves a goal to one of these
statuses (``GoalLedger.transition``), so no path that ends a goal can forget to tell; a scheduled
relay (the ``notices`` function) sends what is due. It leases each notice with a conditional write
before sending (two sweeps racing tell a change once) and marks it sent only after the send, so a
relay that dies in between loses nothing: the lease runs out and the next sweep sends it. That makes
delivery at least once; each message carries a stable ``noticeId`` (goal and status), so a consumer
can drop the rare repeat (a send that went out but whose mark did not).

Two messages per change, on the brand's notification topic:

- ``kind="goal-status"`` with ``"audience": "brand"``: the brand's own systems learn of every
  ending without polling (subscribe with a filter policy on the ``audience`` attribute).
- the shopper's notice, unless the step that set the status already sent the shopper its own message
  (the receipt, the flow's outcome notice, the hand-off link, the return notices).

Both carry the reason sentence from ``goals.reasons`` only: never an exception's or merchant's words.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from cartpilot.goals.lifecycle import FINAL_STATUSES
from cartpilot.goals.model import GoalRecord, GoalStatus
from cartpilot.goals.ports import GoalStore, Notifier
from cartpilot.goals.reasons import ReasonCode, shopper_reason
from cartpilot.kernel.clock import utc_now
from cartpilot.kernel.observability import logger
from cartpilot.notifications.ports import NoticeOutbox
from cartpilot.shopper_view.links import ViewLinks

# Longer than the notices function's timeout (50 s): a live relay keeps its claim to the end of its run.
NOTICE_LEASE_SECONDS = 120

# The statuses that are told: every final one, the completed order, and a return on its way.
TOLD_STATUSES = FINAL_STATUSES | {GoalStatus.COMPLETED, GoalStatus.RETURN_REQUESTED}

# Where the step that sets a status tells the shopper itself, the kind of that message. The relay
# then tells only the brand. NEEDS_ATTENTION is told by the flow's RecordNeedsAttention state except
# when compensation gives up (``compensation.incomplete``), which the relay tells the shopper.
SHOPPER_TOLD_BY_STEP: dict[GoalStatus, str] = {
    GoalStatus.COMPLETED: "receipt",
    GoalStatus.DENIED: "outcome",
    GoalStatus.REJECTED: "outcome",
    GoalStatus.EXPIRED: "outcome",
    GoalStatus.FAILED: "outcome",
    GoalStatus.NEEDS_ATTENTION: "outcome",
    GoalStatus.HANDED_OFF: "handed_off",
    GoalStatus.PLANNED_ONLY: "outcome",
    GoalStatus.RETURN_REQUESTED: "return-requested",
    GoalStatus.RETURNED: "returned",
}
# Audit events that set a told status without a message to the shopper from their own step.
SHOPPER_TOLD_BY_RELAY_EVENTS = frozenset(
    {"compensation.completed", "order.undone", "compensation.incomplete"}
)

SHOPPER_SUBJECTS: dict[GoalStatus, str] = {
    GoalStatus.COMPENSATED: "We could not complete your order; nothing was charged",
    GoalStatus.UNDONE: "Your order was cancelled and refunded",
    GoalStatus.NEEDS_ATTENTION: "Your order needs our attention",
}

# The reason for a status when the goal holds none (or has moved on to another status since).
_DEFAULT_REASONS: dict[GoalStatus, ReasonCode | None] = {
    GoalStatus.COMPLETED: None,
    GoalStatus.DENIED: ReasonCode.POLICY_DENIED,
    GoalStatus.REJECTED: ReasonCode.APPROVAL_REJECTED,
    GoalStatus.EXPIRED: ReasonCode.APPROVAL_EXPIRED,
    GoalStatus.COMPENSATED: ReasonCode.ORDER_UNDONE,
    GoalStatus.UNDONE: None,
    GoalStatus.FAILED: ReasonCode.INTERNAL_ERROR,
    GoalStatus.NEEDS_ATTENTION: ReasonCode.NEEDS_ATTENTION,
    GoalStatus.HANDED_OFF: ReasonCode.FINISH_AT_MERCHANT,
    GoalStatus.PLANNED_ONLY: ReasonCode.ROLLOUT_READ_ONLY,
    GoalStatus.RETURN_REQUESTED: None,
    GoalStatus.RETURNED: None,
}

# What the shopper reads for the endings that are not failures.
_PLAIN_MESSAGES: dict[GoalStatus, str] = {
    GoalStatus.COMPLETED: "Your order was placed.",
    GoalStatus.UNDONE: "Your order was cancelled as you asked, and the payment refunded.",
    GoalStatus.RETURN_REQUESTED: "Your return was filed with the shop; the refund follows when it arrives.",
    GoalStatus.RETURNED: "Your return arrived at the shop and the payment was refunded.",
}


def relay_tells_shopper(status: GoalStatus, event: str) -> bool:
    """Whether the relay sends the shopper's notice of this change (the step sends none itself)."""
    return status not in SHOPPER_TOLD_BY_STEP or event in SHOPPER_TOLD_BY_RELAY_EVENTS


def notice_token(status: GoalStatus, *, shopper: bool) -> str:
    """What the outbox holds for one change: the status, marked when the shopper is the relay's to tell."""
    return f"{status.value}+shopper" if shopper else status.value


def parse_token(token: str) -> tuple[GoalStatus, bool] | None:
    name, _, audience = token.partition("+")
    try:
        return GoalStatus(name), audience == "shopper"
    except ValueError:
        return None


@dataclass(frozen=True)
class StatusNotice:
    """What both messages say about one change."""

    status: GoalStatus
    reason_code: str | None
    message: str


def notice_for(goal: GoalRecord, status: GoalStatus) -> StatusNotice:
    """The reason sentence for ``status``: the goal's own when it still holds that status, else the
    status's usual one."""
    code: ReasonCode | None = None
    if goal.status is status and goal.reasonCode:
        try:
            code = ReasonCode(goal.reasonCode)
        except ValueError:
            code = None
    code = code or _DEFAULT_REASONS.get(status)
    if code is not None:
        reason = shopper_reason(code)
        return StatusNotice(status=status, reason_code=reason.code.value, message=reason.message)
    return StatusNotice(status=status, reason_code=None, message=_PLAIN_MESSAGES.get(status, ""))


@dataclass
class RelayReport:
    told: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


# The order in which changes of one goal are told when several are due (a sweep that missed a few).
_TELLING_ORDER = (
    GoalStatus.COMPLETED,
    GoalStatus.HANDED_OFF,
    GoalStatus.RETURN_REQUESTED,
    GoalStatus.UNDONE,
    GoalStatus.RETURNED,
)


def _telling_order(token: str) -> tuple[int, str]:
    parsed = parse_token(token)
    rank = _TELLING_ORDER.index(parsed[0]) if parsed and parsed[0] in _TELLING_ORDER else len(_TELLING_ORDER)
    return rank, token


def notice_id(goal_id: str, status: GoalStatus) -> str:
    """The same for every send of one change, so a consumer can tell a repeat from a new notice."""
    return f"{goal_id}:{status.value}"


def relay_status_notices(
    *,
    outbox: NoticeOutbox,
    goals: GoalStore,
    shopper: Notifier,
    brand: Notifier,
    view_links: ViewLinks | None = None,
    now: Callable[[], datetime] = utc_now,
    lease_seconds: int = NOTICE_LEASE_SECONDS,
) -> RelayReport:
    """Sends every due notice: leased first, marked sent after the send, the lease given up when the
    send fails.

    ``brand`` is the topic alone; ``shopper`` the shopper's channel (the topic, then email);
    ``view_links`` signs the ``viewUrl`` the shopper's notice carries."""
    report = RelayReport()
    for goal_id in outbox.due_goals():
        goal = goals.get(goal_id)
        for token in sorted(outbox.due(goal_id), key=_telling_order):
            parsed = parse_token(token)
            if goal is None or parsed is None:
                outbox.mark_sent(goal_id, token)  # nothing to tell about: leave it told
                continue
            epoch = int(now().timestamp())
            until = epoch + lease_seconds
            if not outbox.claim(goal_id, token, now=epoch, until=until):
                continue
            try:
                tell(
                    goal,
                    parsed[0],
                    tell_shopper=parsed[1],
                    shopper=shopper,
                    brand=brand,
                    view_links=view_links,
                )
            except Exception:
                outbox.release(goal_id, token, until=until)
                report.failed.append(f"{goal_id}:{parsed[0].value}")
                logger.exception(
                    "status notice not sent", extra={"goalId": goal_id, "status": parsed[0].value}
                )
                continue
            outbox.mark_sent(goal_id, token)
            report.told.append(f"{goal_id}:{parsed[0].value}")
        outbox.settle(goal_id)
    return report


def tell(
    goal: GoalRecord,
    status: GoalStatus,
    *,
    tell_shopper: bool,
    shopper: Notifier,
    brand: Notifier,
    view_links: ViewLinks | None = None,
) -> None:
    """The brand's message first: it is the one no other step sends. Both carry the change's
    ``noticeId``; the shopper's also a link to their view of the goal, as the receipt does."""
    notice = notice_for(goal, status)
    body = {
        "status": status.value,
        "reason": notice.message,
        "reasonCode": notice.reason_code,
        "noticeId": notice_id(goal.goalId, status),
    }
    brand.send(
        kind="goal-status",
        goal_id=goal.goalId,
        user_id=goal.userId,
        subject=f"Goal {goal.goalId}: {status.value}",
        body={**body, "audience": "brand"},
    )
    if tell_shopper:
        shopper_body = dict(body)
        if view_links is not None:
            shopper_body["viewUrl"] = view_links.url_for(goal.goalId, goal.userId)
        shopper.send(
            kind="outcome",
            goal_id=goal.goalId,
            user_id=goal.userId,
            subject=SHOPPER_SUBJECTS.get(status, "About your order"),
            body=shopper_body,
        )
