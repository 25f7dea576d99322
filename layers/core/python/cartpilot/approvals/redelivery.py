"""The sweep that gets recorded-but-undelivered decisions to their flows without anyone.

The desk sends a decision right after recording it, and again whenever the approver opens or posts
the link; an approver who closes the page after a failed send never does. This sweep, run on a
schedule, sends every decision that has waited longer than ``GRACE_SECONDS`` (the desk's own
attempts come first) through the same courier the desk uses: the flow takes one result per token
and the courier marks the decision delivered with a conditional write, so a sweep racing the desk,
or another sweep, sends twice at worst and changes nothing twice. A decision leaves the sweep when
it is delivered or when the flow's timeout closes it as expired (``close_on_expiry``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cartpilot.approvals.delivery import DecisionCourier, Delivered
from cartpilot.approvals.ports import ApprovalStore
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.ports import Workflow
from cartpilot.kernel.clock import utc_now
from cartpilot.kernel.observability import logger

GRACE_SECONDS = 5


@dataclass
class SweepReport:
    delivered: list[str] = field(default_factory=list)
    undelivered: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)


def redeliver(
    *,
    approvals: ApprovalStore,
    workflow: Workflow,
    ledger: GoalLedger,
    now: Callable[[], datetime] = utc_now,
    grace: timedelta = timedelta(seconds=GRACE_SECONDS),
    sleep: Callable[[float], None] = time.sleep,
) -> SweepReport:
    """Sends every decision recorded before ``now - grace`` and not yet delivered, once each."""
    courier = DecisionCourier(approvals=approvals, workflow=workflow, goals=ledger.store, sleep=sleep)
    report = SweepReport()
    # The format decisions are stamped in (``utc_now_iso``), so the index compares them in order.
    cutoff = (now() - grace).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    for approval_id in approvals.undelivered(decided_before=cutoff):
        approval = approvals.get(approval_id)
        if approval is None or not approval.undelivered:
            continue  # delivered or closed since the index was read
        outcome = courier.deliver(approval)
        if outcome is Delivered.DELIVERED:
            report.delivered.append(approval_id)
            ledger.note(
                approval.goalId,
                actor="redelivery",
                event="approval.redelivered",
                plan_hash=approval.approvedPlanHash or approval.planHash,
                detail={"approvalId": approval_id, "decision": approval.status.value},
            )
        elif outcome is Delivered.TOKEN_GONE:
            # Said only once the goal is EXPIRED: the flow's timeout path, which ended it, closes the
            # approval and tells the approver (``close_on_expiry``); closing it here too would race it.
            report.expired.append(approval_id)
        else:
            report.undelivered.append(approval_id)
    if report.undelivered:
        logger.warning("approval decisions still undelivered", extra={"approvalIds": report.undelivered})
    return report
