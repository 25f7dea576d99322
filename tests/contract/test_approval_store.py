"""ApprovalStore: an approval is decided exactly once, and its task token stays with it."""

from __future__ import annotations

import functools

import pytest

from cartpilot.approvals.model import AlreadyDecided, Approval, ApprovalStatus, Delivery, DroppedStep
from cartpilot.approvals.ports import ApprovalAlreadyExists, ApprovalStore
from tests.contract.backends import ApprovalStoreBackend
from tests.contract.racing import race
from tests.contract.samples import LATER, approval
from tests.fakes import cny

DECIDED = "2026-11-25T08:20:00+00:00"


def test_an_approval_round_trips(approvals: ApprovalStoreBackend):
    created = approval("a-1")
    approvals.store.create(created, "task-token-1")
    assert approvals.store.get("a-1") == created
    assert approvals.store.task_token("a-1") == "task-token-1"


def test_an_unknown_approval_is_none_and_has_no_task_token(approvals: ApprovalStoreBackend):
    approvals.store.create(approval("a-1"), "task-token-1")
    assert approvals.store.get("a-unknown") is None
    with pytest.raises(LookupError):
        approvals.store.task_token("a-unknown")


def test_an_approval_is_never_overwritten(approvals: ApprovalStoreBackend):
    approvals.store.create(approval("a-1"), "task-token-1")
    with pytest.raises(ApprovalAlreadyExists):
        approvals.store.create(approval("a-1", approver="someone-else"), "task-token-2")
    assert approvals.store.get("a-1") == approval("a-1")
    assert approvals.store.task_token("a-1") == "task-token-1"


def test_a_decision_is_recorded_and_returned(approvals: ApprovalStoreBackend):
    approvals.store.create(approval("a-1"), "task-token-1")
    dropped = [DroppedStep(stepId="s2", items=["Gift Wrap"], cost=cny("20.00"))]
    decided = approvals.store.decide(
        "a-1",
        ApprovalStatus.APPROVED,
        decided_at=DECIDED,
        decided_by="user-1",
        approved_plan_hash="sha256:reduced",
        dropped=dropped,
    )
    expected = approval(
        "a-1",
        status=ApprovalStatus.APPROVED,
        decidedAt=DECIDED,
        decidedBy="user-1",
        approvedPlanHash="sha256:reduced",
        dropped=dropped,
        delivery=Delivery.PENDING,
    )
    assert decided == expected
    assert approvals.store.get("a-1") == expected
    assert approvals.store.task_token("a-1") == "task-token-1"


def test_a_second_decision_raises_already_decided_with_the_first(approvals: ApprovalStoreBackend):
    approvals.store.create(approval("a-1"), "task-token-1")
    first = approvals.store.decide("a-1", ApprovalStatus.REJECTED, decided_at=DECIDED, decided_by="user-1")
    with pytest.raises(AlreadyDecided) as refused:
        approvals.store.decide(
            "a-1",
            ApprovalStatus.APPROVED,
            decided_at=LATER,
            decided_by="user-1",
            approved_plan_hash="sha256:p",
        )
    assert refused.value.approval == first
    assert approvals.store.get("a-1") == first


def test_deciding_an_unknown_approval_raises_lookup_error(approvals: ApprovalStoreBackend):
    with pytest.raises(LookupError):
        approvals.store.decide("a-unknown", ApprovalStatus.APPROVED, decided_at=DECIDED, decided_by="user-1")
    assert approvals.store.get("a-unknown") is None


def test_racing_decisions_record_exactly_one(approvals: ApprovalStoreBackend):
    approvals.store.create(approval("a-race"), "task-token-1")
    choices = [ApprovalStatus.APPROVED, ApprovalStatus.REJECTED] * 4

    def decide(store: ApprovalStore, n: int) -> Approval | AlreadyDecided:
        try:
            return store.decide("a-race", choices[n], decided_at=DECIDED, decided_by=f"tab-{n}")
        except AlreadyDecided as refused:
            return refused

    outcomes = race([functools.partial(decide, approvals.another(), n) for n in range(len(choices))])

    won = [outcome for outcome in outcomes if isinstance(outcome, Approval)]
    refused = [outcome for outcome in outcomes if isinstance(outcome, AlreadyDecided)]
    assert len(won) == 1 and len(refused) == len(choices) - 1
    recorded = approvals.store.get("a-race")
    assert recorded == won[0]
    assert all(refusal.approval == recorded for refusal in refused)


@pytest.mark.parametrize("decided", [None, ApprovalStatus.APPROVED, ApprovalStatus.REJECTED])
def test_an_expired_approval_is_dead_whatever_was_recorded(
    approvals: ApprovalStoreBackend, decided: ApprovalStatus | None
):
    approvals.store.create(approval("a-1"), "task-token-1")
    if decided is not None:
        approvals.store.decide("a-1", decided, decided_at=DECIDED, decided_by="user-1")
    approvals.store.mark_expired("a-1", decided_at=LATER)

    expired = approvals.store.get("a-1")
    assert expired is not None and (expired.status, expired.decidedAt) == (ApprovalStatus.EXPIRED, LATER)
    with pytest.raises(AlreadyDecided) as refused:
        approvals.store.decide("a-1", ApprovalStatus.APPROVED, decided_at=LATER, decided_by="user-1")
    assert refused.value.approval.status is ApprovalStatus.EXPIRED
    assert approvals.store.task_token("a-1") == "task-token-1"


def test_expiring_an_unknown_approval_does_nothing(approvals: ApprovalStoreBackend):
    approvals.store.mark_expired("a-unknown", decided_at=LATER)
    assert approvals.store.get("a-unknown") is None


@pytest.mark.parametrize("decided", [ApprovalStatus.APPROVED, ApprovalStatus.REJECTED])
def test_a_decision_is_recorded_undelivered_and_marked_delivered_once(
    approvals: ApprovalStoreBackend, decided: ApprovalStatus
):
    approvals.store.create(approval("a-1"), "task-token-1")
    recorded = approvals.store.decide("a-1", decided, decided_at=DECIDED, decided_by="user-1")
    assert recorded.delivery is Delivery.PENDING and recorded.undelivered
    assert approvals.store.get("a-1") == recorded

    assert approvals.store.mark_delivered("a-1", delivered_at=LATER) is True
    delivered = approvals.store.get("a-1")
    assert delivered is not None and (delivered.status, delivered.delivery) == (decided, Delivery.DELIVERED)
    assert delivered.deliveredAt == LATER and not delivered.undelivered
    # A second sender learns that the first one won, and changes nothing.
    assert approvals.another().mark_delivered("a-1", delivered_at="2026-02-01T00:00:00.000Z") is False
    assert approvals.store.get("a-1") == delivered


def test_only_a_recorded_decision_can_be_marked_delivered(approvals: ApprovalStoreBackend):
    approvals.store.create(approval("a-1"), "task-token-1")
    assert approvals.store.mark_delivered("a-1", delivered_at=LATER) is False
    assert approvals.store.mark_delivered("a-unknown", delivered_at=LATER) is False
    approvals.store.decide("a-1", ApprovalStatus.APPROVED, decided_at=DECIDED, decided_by="user-1")
    assert approvals.store.mark_expired("a-1", decided_at=LATER) is True
    assert approvals.store.mark_delivered("a-1", delivered_at=LATER) is False
    expired = approvals.store.get("a-1")
    assert expired is not None and expired.status is ApprovalStatus.EXPIRED


def test_a_delivered_decision_is_never_expired(approvals: ApprovalStoreBackend):
    approvals.store.create(approval("a-1"), "task-token-1")
    approvals.store.decide("a-1", ApprovalStatus.APPROVED, decided_at=DECIDED, decided_by="user-1")
    approvals.store.mark_delivered("a-1", delivered_at=DECIDED)
    assert approvals.store.mark_expired("a-1", decided_at=LATER) is False
    kept = approvals.store.get("a-1")
    assert kept is not None and (kept.status, kept.delivery) == (ApprovalStatus.APPROVED, Delivery.DELIVERED)


def test_undelivered_decisions_are_listed_until_delivered_or_expired(approvals: ApprovalStoreBackend):
    for approval_id in ("a-1", "a-2", "a-3", "a-4"):
        approvals.store.create(approval(approval_id), f"task-token-{approval_id}")
    for approval_id, at in (("a-1", "2026-11-25T08:20:00.000Z"), ("a-2", "2026-11-25T08:20:01.000Z")):
        approvals.store.decide(approval_id, ApprovalStatus.APPROVED, decided_at=at, decided_by="user-1")
    approvals.store.decide(
        "a-3", ApprovalStatus.REJECTED, decided_at="2026-11-25T08:20:09.000Z", decided_by="u"
    )
    # a-4 is still pending: nothing to deliver.
    assert approvals.store.undelivered(decided_before="2026-11-25T08:20:05.000Z") == ["a-1", "a-2"]

    approvals.store.mark_delivered("a-1", delivered_at="2026-11-25T08:20:10.000Z")
    approvals.store.mark_expired("a-2", decided_at="2026-11-25T08:20:10.000Z")
    assert approvals.store.undelivered(decided_before="2026-11-25T08:21:00.000Z") == ["a-3"]
