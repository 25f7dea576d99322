"""One reminder to the approver before an approval link expires.

Every approval is queued when it is created; a scheduled sweep (the ``notices`` function) reminds
those within ``approvalReminderLeadSeconds`` of their expiry, never in the first half of the link's
life, and only while the approval is still pending and its link alive. Each reminder is claimed with
a conditional write on the approval (taking it out of the queue while it is pending), so it is sent
once; a decided or expired approval leaves the queue without one. The reminder carries the same
signed link, to the same place: the shopper, or the staff channel for a staff approval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cartpilot.approvals.links import LinkClaims, sign_approval_link
from cartpilot.approvals.model import Approval, ApprovalStatus, confirmation_phrase
from cartpilot.approvals.ports import ApprovalStore
from cartpilot.approvals.staff import is_staff_approval, staff_base_url
from cartpilot.brands.config import BrandConfig
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.ports import Notifier
from cartpilot.kernel.clock import utc_now
from cartpilot.kernel.keyring import KeySource
from cartpilot.kernel.observability import logger
from cartpilot.notifications.ports import ReminderQueue
from cartpilot.plans.verdicts import RiskTier


@dataclass
class ReminderReport:
    reminded: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def _created_epoch(approval: Approval) -> int:
    return int(datetime.fromisoformat(approval.createdAt.replace("Z", "+00:00")).timestamp())


def reminder_due(approval: Approval, *, now: int, lead_seconds: int) -> bool:
    """Inside the lead time before expiry, past the link's half-life, and not yet expired."""
    halfway = _created_epoch(approval) + (approval.expiresAt - _created_epoch(approval)) // 2
    return approval.expiresAt - lead_seconds <= now < approval.expiresAt and now >= halfway


@dataclass(frozen=True)
class ReminderChannels:
    shopper: Notifier
    staff: Notifier | None
    keys: KeySource
    base_url: str


def send_reminders(
    *,
    queue: ReminderQueue,
    approvals: ApprovalStore,
    ledger: GoalLedger,
    channels: ReminderChannels,
    brand: BrandConfig,
    now: Callable[[], datetime] = utc_now,
) -> ReminderReport:
    report = ReminderReport()
    lead = brand.approvalReminderLeadSeconds
    at = now()
    epoch = int(at.timestamp())
    # Everything expiring within the lead is a candidate; those past expiry leave the queue here.
    for approval_id in queue.expiring_before(epoch + lead):
        approval = approvals.get(approval_id)
        if approval is None or approval.status is not ApprovalStatus.PENDING or approval.expiresAt <= epoch:
            queue.drop(approval_id)
            report.dropped.append(approval_id)
            continue
        if lead == 0 or not reminder_due(approval, now=epoch, lead_seconds=lead):
            continue
        goal = ledger.store.get(approval.goalId)
        if goal is None:
            queue.drop(approval_id)
            continue
        if not queue.claim(approval_id, at=at.isoformat()):
            continue  # decided, or reminded by another sweep, since the index was read
        try:
            _remind(approval, goal.userId, channels)
        except Exception:
            queue.release(approval_id)
            logger.exception("approval reminder not sent", extra={"approvalId": approval_id})
            continue
        ledger.note(
            approval.goalId,
            actor="notices",
            event="approval.reminded",
            plan_hash=approval.planHash,
            detail={"approvalId": approval_id, "linkExpiresAt": approval.expiresAt},
        )
        report.reminded.append(approval_id)
    return report


def _remind(approval: Approval, user_id: str, channels: ReminderChannels) -> None:
    staff = is_staff_approval(approval)
    link = sign_approval_link(
        staff_base_url(channels.base_url) if staff else channels.base_url,
        LinkClaims(
            approval_id=approval.approvalId,
            expires_at=approval.expiresAt,
            plan_hash=approval.planHash,
            approver=approval.approver,
            tier=approval.tier.value,
        ),
        channels.keys.keyring(),
    )
    body: dict[str, Any] = {
        "link": link,
        "total": approval.total.format(),
        "tier": approval.tier.value,
        "linkExpiresAt": approval.expiresAt,
    }
    if approval.tier is RiskTier.STRONG_APPROVAL:
        body["phrase"] = confirmation_phrase(approval.total)
    if staff:
        if channels.staff is None:
            raise RuntimeError("a staff approval's reminder needs the staff channel (STAFF_TOPIC_ARN)")
        channels.staff.send(
            kind="approval-reminder",
            goal_id=approval.goalId,
            user_id=user_id,
            subject=f"Reminder: staff review of an order of {approval.total.format()}",
            body={**body, "audience": "staff"},
        )
        return
    channels.shopper.send(
        kind="approval-reminder",
        goal_id=approval.goalId,
        user_id=user_id,
        subject=f"Reminder: approve your order of {approval.total.format()} before the link expires",
        body=body,
    )
