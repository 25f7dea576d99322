"""One reminder before an approval link expires: the same link, once, and never after a decision."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cartpilot.approvals.model import ApprovalStatus
from cartpilot.approvals.staff import STAFF_APPROVER
from cartpilot.notifications.reminders import ReminderChannels, reminder_due, send_reminders
from tests.fakes import RecordingNotifier
from tests.fakes.merchant import FakeMerchant
from tests.fakes.notices import InMemoryReminderQueue
from tests.unit.stages import Pending, wait_for_approval

BASE_URL = "https://api.example.com/prod"


def at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def sweep(pending: Pending, queue: InMemoryReminderQueue, epoch: int, staff: RecordingNotifier | None = None):
    return send_reminders(
        queue=queue, approvals=pending.approvals, ledger=pending.ledger,
        channels=ReminderChannels(shopper=pending.notifier, staff=staff, keys=pending.keys, base_url=BASE_URL),
        brand=pending.brand, now=lambda: at(epoch),
    )  # fmt: skip


def queued(pending: Pending) -> InMemoryReminderQueue:
    return InMemoryReminderQueue(pending.approvals, {pending.approval_id})


def test_the_reminder_carries_the_same_link_and_is_sent_once(pending: Pending) -> None:
    queue = queued(pending)
    approval = pending.approvals.get(pending.approval_id)
    assert approval is not None
    lead = pending.brand.approvalReminderLeadSeconds
    assert lead > 0

    early = sweep(pending, queue, approval.expiresAt - lead - 60)
    first = sweep(pending, queue, approval.expiresAt - lead + 1)
    second = sweep(pending, queue, approval.expiresAt - 10)

    assert early.reminded == [] and first.reminded == [pending.approval_id] and second.reminded == []
    (reminder,) = pending.notifier.of_kind("approval-reminder")
    (request,) = pending.notifier.of_kind("approval_request")
    assert reminder["link"] == request["link"] and reminder["goalId"] == pending.goal_id
    assert [r.event for r in pending.ledger.audit.records(pending.goal_id)].count("approval.reminded") == 1


def test_a_decided_approval_is_not_reminded(pending: Pending) -> None:
    queue = queued(pending)
    approval = pending.approvals.get(pending.approval_id)
    assert approval is not None
    pending.approvals.decide(
        pending.approval_id, ApprovalStatus.REJECTED, decided_at="2026-01-01T00:00:00Z", decided_by="user-1"
    )
    report = sweep(pending, queue, approval.expiresAt - 60)
    assert report.reminded == [] and report.dropped == [pending.approval_id]
    assert pending.notifier.of_kind("approval-reminder") == []


def test_an_expired_link_is_not_reminded(pending: Pending) -> None:
    queue = queued(pending)
    approval = pending.approvals.get(pending.approval_id)
    assert approval is not None
    report = sweep(pending, queue, approval.expiresAt + 1)
    assert report.reminded == [] and pending.notifier.of_kind("approval-reminder") == []
    assert queue.queued == set()


def test_never_in_the_first_half_of_a_short_link(pending: Pending) -> None:
    approval = pending.approvals.get(pending.approval_id)
    assert approval is not None
    short = approval.model_copy(update={"expiresAt": int(datetime.fromisoformat(
        approval.createdAt.replace("Z", "+00:00")).timestamp()) + 100})  # fmt: skip
    created = short.expiresAt - 100
    assert not reminder_due(short, now=created + 10, lead_seconds=3600)
    assert reminder_due(short, now=created + 50, lead_seconds=3600)
    assert not reminder_due(short, now=created + 100, lead_seconds=3600)


def test_a_reminder_that_could_not_be_sent_is_tried_again(pending: Pending) -> None:
    class Down:
        def send(self, **_: object) -> str:
            raise ConnectionError("down")

    queue = queued(pending)
    approval = pending.approvals.get(pending.approval_id)
    assert approval is not None
    failing = send_reminders(
        queue=queue, approvals=pending.approvals, ledger=pending.ledger,
        channels=ReminderChannels(shopper=Down(), staff=None, keys=pending.keys, base_url=BASE_URL),  # type: ignore[arg-type]
        brand=pending.brand, now=lambda: at(approval.expiresAt - 60),
    )  # fmt: skip
    assert failing.reminded == [] and queue.queued == {pending.approval_id}
    assert sweep(pending, queue, approval.expiresAt - 30).reminded == [pending.approval_id]


@pytest.fixture
def staff_pending(merchant: FakeMerchant, brand, users) -> Pending:
    """A goal whose item is in a category the brand sends to staff (alcohol), waiting for staff."""
    socks = merchant.shop.products[2]
    merchant.shop.products[2] = socks.model_copy(
        update={"variants": [socks.variants[0].model_copy(update={"category": "alcohol"})]}
    )
    return wait_for_approval(merchant, brand, users, "running socks for me")


def test_a_staff_approval_is_reminded_on_the_staff_topic_never_to_the_shopper(staff_pending: Pending) -> None:
    approval = staff_pending.approvals.get(staff_pending.approval_id)
    assert approval is not None and approval.approver == STAFF_APPROVER
    queue = queued(staff_pending)
    told_before = list(staff_pending.notifier.sent)

    # Without the staff channel the reminder is not sent anywhere, and stays queued for the next sweep.
    nowhere = sweep(staff_pending, queue, approval.expiresAt - 60, staff=None)
    assert nowhere.reminded == [] and queue.queued == {staff_pending.approval_id}

    staff = RecordingNotifier()
    report = sweep(staff_pending, queue, approval.expiresAt - 30, staff=staff)
    assert report.reminded == [staff_pending.approval_id]
    (reminder,) = staff.of_kind("approval-reminder")
    (announced,) = staff_pending.staff_notifier.of_kind("approval_request")
    assert reminder["audience"] == "staff" and reminder["link"] == announced["link"]
    assert "/staff/approvals/" in reminder["link"]
    # The shopper hears nothing more: no reminder, and the staff link never reaches them.
    assert staff_pending.notifier.sent == told_before
    assert reminder["link"] not in str(staff_pending.notifier.sent)
