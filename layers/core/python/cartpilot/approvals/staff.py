"""Staff-only approvals: decided by a listed member of the brand's staff, never by the shopper.

An approval a staff rule asked for (a restricted category marked ``staff``) is announced on the
brand's staff channel, and its link opens on the staff route (``/staff/approvals/{id}``), which API
Gateway serves only to IAM-signed callers; the API function then requires the caller to be one of
the brand's ``staff``. The public route refuses such an approval outright (its page too), so a staff
link that leaks to the shopper decides nothing. The decision records the member (``staff:<id>``).
Shopper approvals stay on the public route: the staff route refuses them.
"""

from __future__ import annotations

from typing import Any

from cartpilot.approvals.model import Approval
from cartpilot.brands.config import BrandConfig
from cartpilot.goals.ports import Notifier
from cartpilot.kernel.money import Money

# The approver a staff approval's link is signed for (``Approval.approver``).
STAFF_APPROVER = "staff"
# Where staff links point, under the API's base URL.
STAFF_ROUTE_PREFIX = "/staff"


class WrongApprovalRoute(Exception):
    """The approval is decided elsewhere: a staff approval on the public route, or the reverse."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def is_staff_approval(approval: Approval) -> bool:
    return approval.approver == STAFF_APPROVER


def check_route(approval: Approval, staff_member: str | None) -> None:
    """Raises unless this route decides this approval: staff approvals only with a staff member
    (the staff route), shopper approvals only without one (the public route)."""
    if is_staff_approval(approval) and staff_member is None:
        raise WrongApprovalRoute("STAFF_ONLY", "This order awaits review by the brand's staff.")
    if not is_staff_approval(approval) and staff_member is not None:
        raise WrongApprovalRoute("NOT_A_STAFF_APPROVAL", "This approval is the shopper's to decide.")


def decided_by(approval: Approval, staff_member: str | None) -> str:
    """Who a decision is recorded as: the staff member by id, or the shopper the link was sent to."""
    return f"{STAFF_APPROVER}:{staff_member}" if staff_member is not None else approval.approver


def staff_base_url(base_url: str) -> str:
    """The base URL staff links are signed under."""
    return f"{base_url.rstrip('/')}{STAFF_ROUTE_PREFIX}"


class StaffChannelMissing(RuntimeError):
    """A staff approval was asked for where no staff channel is configured."""


def announce_staff_approval(
    goal_id: str,
    user_id: str,
    total: Money,
    request: dict[str, Any],
    *,
    staff_notifier: Notifier | None,
    shopper_notifier: Notifier,
    brand: BrandConfig,
) -> None:
    """Sends the staff link to the staff channel only; the shopper hears that staff will review the
    order, with nothing that could decide it."""
    if staff_notifier is None:
        raise StaffChannelMissing("a staff approval needs the brand's staff channel (STAFF_TOPIC_ARN)")
    staff_notifier.send(
        kind="approval_request",
        goal_id=goal_id,
        user_id=user_id,
        subject=f"Staff review: an order of {total.format()}",
        body={**request, "audience": "staff"},
    )
    shopper_notifier.send(
        kind="approval_pending",
        goal_id=goal_id,
        user_id=user_id,
        subject=f"Your order of {total.format()} awaits staff review",
        body={
            "total": total.format(),
            "message": f"{brand.displayName} staff review orders like this one; "
            "we will tell you when they have decided.",
        },
    )
