"""Every ending is told, once: to the brand's topic always, and to the shopper where no step did."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from cartpilot.execution.compensation import undo_executed_steps
from cartpilot.execution.outcomes import record_outcome
from cartpilot.goals.lifecycle import FINAL_STATUSES
from cartpilot.goals.model import GoalStatus
from cartpilot.goals.reasons import REASON_MESSAGES, ReasonCode
from cartpilot.notifications.status_notices import (
    SHOPPER_TOLD_BY_RELAY_EVENTS,
    SHOPPER_TOLD_BY_STEP,
    TOLD_STATUSES,
    relay_status_notices,
    relay_tells_shopper,
)
from cartpilot.shopper_view.links import ViewClaims, ViewLinks, verify_view_link
from tests.fakes import RecordingNotifier
from tests.fakes.notices import InMemoryNoticeOutbox
from tests.fakes.services import StaticKeySource
from tests.unit.stages import OrderFlow


class FailingNotifier:
    def send(self, *, kind: str, goal_id: str, user_id: str, subject: str, body: dict[str, Any]) -> str:
        raise ConnectionError("topic unreachable")


@pytest.mark.parametrize("status", list(GoalStatus))
def test_every_terminal_status_has_a_notice_for_the_shopper_and_the_brand(status: GoalStatus) -> None:
    ends = status in FINAL_STATUSES or status in {GoalStatus.COMPLETED, GoalStatus.RETURN_REQUESTED}
    if not ends:
        assert status not in TOLD_STATUSES
        return
    assert status in TOLD_STATUSES, f"{status.value} ends a goal but nobody is told"
    # The shopper hears of it from the step that set it, or from the relay.
    assert status in SHOPPER_TOLD_BY_STEP or relay_tells_shopper(status, "any.event")


def test_the_relay_tells_the_shopper_only_where_the_step_did_not() -> None:
    assert relay_tells_shopper(GoalStatus.COMPENSATED, "compensation.completed")
    assert relay_tells_shopper(GoalStatus.UNDONE, "order.undone")
    assert relay_tells_shopper(GoalStatus.NEEDS_ATTENTION, "compensation.incomplete")
    assert not relay_tells_shopper(GoalStatus.NEEDS_ATTENTION, "goal.needs_attention")
    assert not relay_tells_shopper(GoalStatus.COMPLETED, "order.completed")
    assert {
        "compensation.completed",
        "order.undone",
        "compensation.incomplete",
    } == SHOPPER_TOLD_BY_RELAY_EVENTS


def _relay(flow: OrderFlow, outbox: InMemoryNoticeOutbox, brand: Any, shopper: Any) -> Any:
    return relay_status_notices(outbox=outbox, goals=flow.ledger.store, shopper=shopper, brand=brand)


def test_an_undone_order_is_told_to_the_shopper_and_the_brand_once(flow: OrderFlow) -> None:
    outbox = InMemoryNoticeOutbox()
    flow.ledger.notices = outbox
    outputs = flow.completed()
    undo_executed_steps(
        flow.goal_id, outputs, ledger=flow.ledger, merchants=flow.merchants, final_status=GoalStatus.UNDONE
    )
    # A retried compensation re-enters UNDONE: nothing more is queued.
    undo_executed_steps(
        flow.goal_id, outputs, ledger=flow.ledger, merchants=flow.merchants, final_status=GoalStatus.UNDONE
    )
    brand, shopper = RecordingNotifier(), RecordingNotifier()
    report = _relay(flow, outbox, brand, shopper)
    again = _relay(flow, outbox, brand, shopper)

    assert report.told == [f"{flow.goal_id}:COMPLETED", f"{flow.goal_id}:UNDONE"] and again.told == []
    assert [(m["status"], m["audience"]) for m in brand.of_kind("goal-status")] == [
        ("COMPLETED", "brand"),
        ("UNDONE", "brand"),
    ]
    # The receipt told the shopper of COMPLETED; the relay tells them of UNDONE.
    (notice,) = shopper.sent
    assert (
        notice["kind"] == "outcome"
        and notice["status"] == "UNDONE"
        and notice["userId"] == flow.goal().userId
    )
    assert "refunded" in notice["reason"]


def test_a_compensated_goal_is_told_with_the_reason_from_the_set(flow: OrderFlow) -> None:
    outbox = InMemoryNoticeOutbox()
    flow.ledger.notices = outbox
    outputs = flow.run_steps(flow.plan.execution_steps()[0]["id"])
    undo_executed_steps(
        flow.goal_id, outputs, ledger=flow.ledger, merchants=flow.merchants,
        reason="MerchantRejected: card 4111 1111 1111 1111 declined at 10 Main St",
    )  # fmt: skip
    brand, shopper = RecordingNotifier(), RecordingNotifier()
    _relay(flow, outbox, brand, shopper)

    (told,) = shopper.sent
    (event,) = brand.sent
    for message in (told, event):
        assert message["status"] == "COMPENSATED"
        assert message["reason"] == REASON_MESSAGES[ReasonCode.ORDER_UNDONE]
        assert "4111" not in str(message) and "Main St" not in str(message)


def test_an_ending_the_flow_already_told_the_shopper_goes_to_the_brand_only(flow: OrderFlow) -> None:
    outbox = InMemoryNoticeOutbox()
    flow.ledger.notices = outbox
    record_outcome(flow.goal_id, GoalStatus.FAILED, error={"Error": "PlanningFailed"}, ledger=flow.ledger,
                   notifier=flow.notifier)  # fmt: skip
    brand, shopper = RecordingNotifier(), RecordingNotifier()
    _relay(flow, outbox, brand, shopper)

    assert [m["status"] for m in flow.notifier.of_kind("outcome")] == ["FAILED"]  # the flow's own notice
    assert shopper.sent == []
    assert [(m["status"], m["reasonCode"]) for m in brand.sent] == [("FAILED", "PLAN_NOT_POSSIBLE")]


def test_a_notice_that_could_not_be_sent_stays_due_and_goes_on_the_next_sweep(flow: OrderFlow) -> None:
    outbox = InMemoryNoticeOutbox()
    flow.ledger.notices = outbox
    record_outcome(flow.goal_id, GoalStatus.FAILED, error=None, ledger=flow.ledger, notifier=flow.notifier)

    failed = _relay(flow, outbox, FailingNotifier(), RecordingNotifier())
    assert failed.told == [] and failed.failed == [f"{flow.goal_id}:FAILED"]

    brand = RecordingNotifier()
    assert _relay(flow, outbox, brand, RecordingNotifier()).told == [f"{flow.goal_id}:FAILED"]
    assert len(brand.sent) == 1


def test_the_shoppers_outcome_notice_carries_their_view_link_and_the_brands_does_not(flow: OrderFlow) -> None:
    outbox = InMemoryNoticeOutbox()
    flow.ledger.notices = outbox
    outputs = flow.completed()
    undo_executed_steps(
        flow.goal_id, outputs, ledger=flow.ledger, merchants=flow.merchants, final_status=GoalStatus.UNDONE
    )
    keys = StaticKeySource()
    links = ViewLinks(keys=keys, base_url="https://api.example.com/prod", ttl_seconds=3600)
    brand, shopper = RecordingNotifier(), RecordingNotifier()
    relay_status_notices(
        outbox=outbox, goals=flow.ledger.store, shopper=shopper, brand=brand, view_links=links
    )

    (notice,) = shopper.sent
    user_id = flow.goal().userId
    parts = urlsplit(notice["viewUrl"])
    assert parts.path == f"/prod/shoppers/goals/{flow.goal_id}"
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    # Signed for this goal and this shopper (raises otherwise).
    verify_view_link(
        ViewClaims(flow.goal_id, user_id, int(query["exp"])), kid=query["kid"], sig=query["sig"],
        keyring=keys.keyring(), now=int(time.time()),
    )  # fmt: skip
    assert notice["noticeId"] == f"{flow.goal_id}:UNDONE"
    # The brand's systems get the change, never a link that opens the shopper's page.
    assert all("viewUrl" not in message for message in brand.sent)
    assert [m["noticeId"] for m in brand.sent] == [f"{flow.goal_id}:COMPLETED", f"{flow.goal_id}:UNDONE"]
