"""Handing a checkout to the shopper when the merchant needs the buyer.

checkout.md ("Continue URL"): a checkout with ``status: requires_escalation`` carries a
``continue_url``, and the platform MUST hand the buyer over through it. The connector step that
met it records the URL on the goal (``GoalLedger.hand_off``), which ends ``HANDED_OFF``; the flow
then tells the shopper where to finish. Nothing was charged, and the checkout session is left
open: it is the session the shopper continues in, so nothing compensates it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from cartpilot.goals.model import GoalStatus
from cartpilot.goals.ports import Notifier

if TYPE_CHECKING:
    from cartpilot.goals.ledger import GoalLedger

# A continue URL on these hosts may be plain http: the sandbox merchant on a developer's machine.
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_CONTINUE_URL_LENGTH = 2048


class UnusableContinueUrl(ValueError):
    """The merchant's continue URL is not one a shopper can safely be sent to."""


class HandOffNotRecorded(RuntimeError):
    """The flow caught an escalation, but no continue URL was recorded on the goal: nothing to hand over."""


class HandOffAnnounced(BaseModel):
    """What the flow's hand-off state answers."""

    model_config = ConfigDict(defer_build=True)

    status: GoalStatus
    continueUrl: str


def checked_continue_url(url: str) -> str:
    """The URL as given, when it is an absolute https URL (checkout.md: "MUST be an absolute HTTPS
    URL"); http only on a loopback host. Anything else (``javascript:``, a relative path, a URL with
    credentials in it) is refused: a client app shows it to the shopper as a link."""
    if len(url) > MAX_CONTINUE_URL_LENGTH:
        raise UnusableContinueUrl(f"the continue URL is longer than {MAX_CONTINUE_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise UnusableContinueUrl("the continue URL does not parse") from exc
    if not host or parts.username is not None or parts.password is not None:
        raise UnusableContinueUrl("the continue URL is not an absolute URL of a merchant page")
    if parts.scheme == "https" or (parts.scheme == "http" and host in _LOOPBACK_HOSTS):
        return url
    raise UnusableContinueUrl(f"the continue URL must be https, not {parts.scheme or 'relative'}")


def origin_of(url: str) -> str:
    """Scheme and host only: what the audit trail keeps (a permalink's path and query may carry
    the checkout's contents, checkout.md "Checkout Permalink")."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def announce_hand_off(goal_id: str, *, ledger: GoalLedger, notifier: Notifier) -> HandOffAnnounced:
    """Tells the shopper where to finish the checkout; the goal already holds the URL."""
    goal = ledger.store.require(goal_id)
    if goal.status is not GoalStatus.HANDED_OFF or not goal.continueUrl:
        raise HandOffNotRecorded(
            "the merchant asked for the shopper, but no continue URL was recorded: nothing was handed over"
        )
    notifier.send(
        kind="handed_off",
        goal_id=goal_id,
        user_id=goal.userId,
        subject="Finish your order on the merchant's site",
        body={
            "status": goal.status.value,
            "continueUrl": goal.continueUrl,
            "reason": goal.failure,
            "reasonCode": goal.reasonCode,
        },
    )
    ledger.note(
        goal_id,
        actor="notify",
        event="handoff.announced",
        status=GoalStatus.HANDED_OFF,
        plan_hash=goal.planHash,
        detail={"merchant": origin_of(goal.continueUrl)},
    )
    return HandOffAnnounced(status=goal.status, continueUrl=goal.continueUrl)
