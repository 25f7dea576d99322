"""The shopper's view: signed links (tamper, expiry, other goal, other shopper), the page's words and
masking, and the confirmed undo on the fakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import pytest

from cartpilot.goals.model import GoalRecord, GoalStatus
from cartpilot.goals.undo import open_undo_window
from cartpilot.kernel.keyring import KeyRing
from cartpilot.schedules.model import ScheduleRecord, ScheduleSpec, ScheduleStatus
from cartpilot.schedules.ports import ScheduleStore
from cartpilot.shopper_view.desk import NO_RETURN_SENTENCE, ShopperDesk, ViewRefused
from cartpilot.shopper_view.links import (
    ViewClaims,
    ViewLinkExpired,
    ViewLinkInvalid,
    ViewLinkParams,
    ViewLinks,
    sign_view_link,
    verify_view_link,
)
from cartpilot.shopper_view.page import render_shopper_page
from cartpilot.shopper_view.schedules import GoalSchedules
from cartpilot.shopper_view.timeline import EVENT_WORDS, STATUS_WORDS, shopper_timeline
from tests.fakes.services import StaticKeySource
from tests.unit.stages import OrderFlow

BASE = "https://api.example.com/v1"
NOW = 1_900_000_000
UNDO_TOKEN = "undo-task-token-view"


def _params(url: str) -> ViewLinkParams:
    query = {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}
    return ViewLinkParams(exp=query["exp"], kid=query["kid"], sig=query["sig"])


def _signed(keyring: KeyRing, goal_id: str = "g-1", user_id: str = "user-1", exp: int = NOW + 60) -> str:
    return sign_view_link(BASE, ViewClaims(goal_id=goal_id, user_id=user_id, expires_at=exp), keyring)


def _verify(keyring: KeyRing, params: ViewLinkParams, *, goal_id: str = "g-1", user_id: str = "user-1",
            now: int = NOW) -> None:  # fmt: skip
    claims = ViewClaims(goal_id=goal_id, user_id=user_id, expires_at=int(params.exp))
    verify_view_link(claims, kid=params.kid, sig=params.sig, keyring=keyring, now=now)


# --- the link --------------------------------------------------------------------------------------


def test_a_link_names_its_goal_and_verifies_until_it_expires():
    keyring = StaticKeySource().keyring()
    url = _signed(keyring)
    assert url.startswith(f"{BASE}/shoppers/goals/g-1?exp=")
    assert "user-1" not in url  # the shopper is bound by the signature, not named in the link
    _verify(keyring, _params(url))
    with pytest.raises(ViewLinkExpired):
        _verify(keyring, _params(url), now=NOW + 60)


@pytest.mark.parametrize(
    "change",
    [
        {"goal_id": "g-2"},
        {"user_id": "user-2"},
    ],
    ids=["another goal", "another shopper"],
)
def test_a_link_does_not_open_another_goal_or_another_shoppers_goal(change: dict[str, str]):
    keyring = StaticKeySource().keyring()
    with pytest.raises(ViewLinkInvalid):
        _verify(keyring, _params(_signed(keyring)), **change)


def test_tampered_expiry_signature_or_key_id_is_refused():
    keyring = StaticKeySource().keyring()
    params = _params(_signed(keyring))
    for tampered in (
        ViewLinkParams(exp=str(int(params.exp) + 3600), kid=params.kid, sig=params.sig),
        ViewLinkParams(
            exp=params.exp, kid=params.kid, sig=params.sig[:-1] + ("A" if params.sig[-1] != "A" else "B")
        ),
        ViewLinkParams(exp=params.exp, kid="k9", sig=params.sig),
        ViewLinkParams(exp=params.exp, kid=params.kid, sig="é" * 43),
    ):
        with pytest.raises(ViewLinkInvalid):
            _verify(keyring, tampered)


def test_an_expired_forgery_is_invalid_not_expired():
    keyring = StaticKeySource().keyring()
    forged = ViewLinkParams(exp=str(NOW - 10), kid="k1", sig="x" * 43)
    with pytest.raises(ViewLinkInvalid):
        _verify(keyring, forged)


def test_an_approval_links_signature_never_opens_a_view():
    """Both sign with the link key ring: the purpose in every view message keeps them apart."""
    from cartpilot.approvals.links import LinkClaims, sign_approval_link

    keyring = StaticKeySource().keyring()
    approval = sign_approval_link(BASE, LinkClaims("g-1", NOW + 60, "user-1", "user-1", "approve"), keyring)
    with pytest.raises(ViewLinkInvalid):
        _verify(keyring, _params(approval))


def test_links_signed_by_a_dropped_key_are_refused():
    keys = StaticKeySource()
    url = _signed(keys.keyring())
    keys.secret = dict(KeyRing.new_secret("k2"))
    with pytest.raises(ViewLinkInvalid):
        _verify(keys.keyring(), _params(url))


@pytest.mark.parametrize("exp", ["", "12x", "²³", "9" * 13, "-5"])
def test_an_expiry_that_is_not_plain_digits_is_not_an_expiry(exp: str):
    assert ViewLinkParams(exp=exp, kid="k1", sig="s").expires_at() is None


def test_view_links_expire_after_the_brands_setting():
    keys = StaticKeySource()
    now = datetime(2030, 1, 1, tzinfo=UTC)
    url = ViewLinks(keys=keys, base_url=BASE, ttl_seconds=3600, clock=lambda: now).url_for("g-1", "user-1")
    assert int(_params(url).exp) == int((now + timedelta(hours=1)).timestamp())


# --- the desk and the page on the fakes ------------------------------------------------------------


@pytest.fixture
def completed(flow: OrderFlow) -> OrderFlow:
    flow.completed()
    flow.workflow.wait_for(UNDO_TOKEN)
    open_undo_window(flow.goal_id, UNDO_TOKEN, ledger=flow.ledger)
    return flow


def _link(flow: OrderFlow, *, user_id: str | None = None, ttl: int = 3600) -> ViewLinkParams:
    links = ViewLinks(keys=flow.keys, base_url=BASE, ttl_seconds=ttl)
    return _params(links.url_for(flow.goal_id, user_id or flow.goal().userId))


def _now() -> datetime:
    return datetime.now(UTC)


def test_the_page_shows_the_plan_status_and_timeline_with_the_recipient_masked(completed: OrderFlow):
    view = ShopperDesk(ledger=completed.ledger, keys=completed.keys, workflow=completed.workflow).open(
        completed.goal_id, _link(completed)
    )
    html = render_shopper_page(view, completed.brand)
    goal = completed.goal()
    recipient = goal.current_plan().summary.recipient
    assert STATUS_WORDS[GoalStatus.COMPLETED] in html
    assert goal.current_plan().summary.total.format() in html
    assert recipient.address.line1 not in html and recipient.phone not in html
    assert recipient.address.city in html
    assert "Order placed" in html and "Order confirmed by the shop" in html
    assert "Undo this order…" in html
    # Nothing the audit keeps for itself (limits, signatures) reaches the timeline.
    assert "limits" not in " ".join(entry.text.lower() for entry in view.timeline)
    assert '<meta name="robots" content="noindex">' in html


def test_a_view_link_for_another_shopper_is_refused(completed: OrderFlow):
    desk = ShopperDesk(ledger=completed.ledger, keys=completed.keys, workflow=completed.workflow)
    with pytest.raises(ViewRefused) as refused:
        desk.open(completed.goal_id, _link(completed, user_id="user-2"))
    assert (refused.value.status, refused.value.code) == (403, "LINK_INVALID")


def test_an_unknown_goal_looks_like_a_forged_link(completed: OrderFlow):
    desk = ShopperDesk(ledger=completed.ledger, keys=completed.keys, workflow=completed.workflow)
    for goal_id in ("g-0000", "../../etc", "g-" + "a" * 200):
        with pytest.raises(ViewRefused) as refused:
            desk.open(goal_id, _link(completed))
        assert (refused.value.status, refused.value.code) == (403, "LINK_INVALID")


def test_an_expired_view_link_is_gone(completed: OrderFlow):
    link = _link(completed, ttl=60)
    later = datetime.now(UTC) + timedelta(seconds=61)
    desk = ShopperDesk(
        ledger=completed.ledger, keys=completed.keys, workflow=completed.workflow, clock=lambda: later
    )
    with pytest.raises(ViewRefused) as refused:
        desk.open(completed.goal_id, link)
    assert (refused.value.status, refused.value.code) == (410, "LINK_EXPIRED")


def test_goal_text_cannot_inject_markup_and_its_pii_is_masked(completed: OrderFlow):
    completed.ledger.store.overwrite(
        completed.goal_id,
        goal="<script>alert(1)</script><img src=x onerror=alert(2)> call me on +86 138 0013 8000",
    )
    view = ShopperDesk(ledger=completed.ledger, keys=completed.keys, workflow=completed.workflow).open(
        completed.goal_id, _link(completed)
    )
    html = render_shopper_page(view, completed.brand)
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;" in html
    assert "138 0013 8000" not in html and "13800138000" not in html


SHIPPED = {
    "status": "in_transit",
    "carrier": "SF <b>Express</b>",
    "trackingNumber": "SF123456",
    "events": [
        {"at": "2030-01-02T10:00:00Z", "status": "shipped", "detail": "left 1 Test Road, call 13800138000"},
        {"at": "2030-01-03T10:00:00Z", "status": "in_transit", "detail": None},
    ],
}


def test_tracking_is_shown_with_merchant_text_masked_and_escaped(completed: OrderFlow):
    completed.ledger.store.overwrite(completed.goal_id, tracking=SHIPPED)
    desk = ShopperDesk(ledger=completed.ledger, keys=completed.keys, workflow=completed.workflow)
    view = desk.open(completed.goal_id, _link(completed))
    assert view.tracking is not None and view.tracking.shipped
    html = render_shopper_page(view, completed.brand)
    assert "SF123456" in html and "In transit" in html and "SF &lt;b&gt;Express" in html
    assert "13800138000" not in html and "Test Road" not in html


def test_after_shipment_the_button_files_a_return_where_the_merchant_takes_returns(completed: OrderFlow):
    completed.ledger.store.overwrite(completed.goal_id, tracking=SHIPPED)
    desk = ShopperDesk(ledger=completed.ledger, keys=completed.keys, workflow=completed.workflow)
    plan = completed.goal().current_plan()
    takes_returns = plan.model_copy(update={"merchant": plan.merchant.model_copy(update={"returns": True})})
    completed.ledger.store.overwrite(completed.goal_id, plan=takes_returns)
    view = desk.open(completed.goal_id, _link(completed), confirming=True)
    assert view.undo.available and view.undo.returns
    assert "Return this order?" in render_shopper_page(view, completed.brand)

    no_returns = plan.model_copy(update={"merchant": plan.merchant.model_copy(update={"returns": False})})
    completed.ledger.store.overwrite(completed.goal_id, plan=no_returns)
    view = desk.open(completed.goal_id, _link(completed))
    assert not view.undo.available and view.undo.closed_sentence == NO_RETURN_SENTENCE


def test_the_confirmed_undo_asks_once_and_a_second_press_changes_nothing(completed: OrderFlow):
    desk = ShopperDesk(ledger=completed.ledger, keys=completed.keys, workflow=completed.workflow)
    link = _link(completed)
    confirming = desk.open(completed.goal_id, link, confirming=True)
    assert (
        confirming.confirming and completed.workflow.calls == []
    )  # opening the "are you sure?" page changes nothing

    with pytest.raises(ViewRefused) as unconfirmed:
        desk.undo(completed.goal_id, link, confirm=None)
    assert unconfirmed.value.status == 422 and completed.workflow.calls == []

    first = desk.undo(completed.goal_id, link, confirm="undo")
    second = desk.undo(completed.goal_id, link, confirm="undo")
    assert first.outcome and first.outcome.startswith("Undo requested")
    assert second.undo.pending and not second.undo.available
    assert len([c for c in completed.workflow.calls if c[0] == "success"]) == 1
    assert completed.events().count("undo.requested") == 1
    assert completed.last("undo.requested").actor == f"shopper:{completed.goal().userId}"


def test_after_the_window_the_page_says_so_and_undo_is_refused(completed: OrderFlow):
    completed.ledger.store.overwrite(completed.goal_id, undoUntil=(_now() - timedelta(seconds=1)).isoformat())
    desk = ShopperDesk(ledger=completed.ledger, keys=completed.keys, workflow=completed.workflow)
    link = _link(completed)
    view = desk.open(completed.goal_id, link, confirming=True)
    assert not view.undo.available and not view.confirming
    assert view.undo.closed_sentence and "closed" in view.undo.closed_sentence
    assert "Undo this order…" not in render_shopper_page(view, completed.brand)
    with pytest.raises(ViewRefused) as refused:
        desk.undo(completed.goal_id, link, confirm="undo")
    assert refused.value.status == 409


def test_the_timeline_uses_words_from_a_closed_set():
    from cartpilot.audit.chain import AuditRecord

    records = [
        AuditRecord(goalId="g", seq=i, at="2030-01-01T10:00:00.000Z", actor="a", event=event,
                    detail={"secret": "1 Test Road"}, prevHash="x", hash="y")
        for i, event in enumerate(["goal.received", "limits.reserved", "order.completed", "order.completed"], 1)
    ]  # fmt: skip
    timeline = shopper_timeline(records)
    assert [entry.text for entry in timeline] == [
        EVENT_WORDS["goal.received"],
        EVENT_WORDS["order.completed"],
    ]
    assert timeline[0].at == "2030-01-01 10:00 UTC"


# --- the shopper's schedules ---------------------------------------------------------------------------


class _Store:
    """Only what the page reads of the schedule store."""

    def __init__(self, *records: Any) -> None:
        self.records = {record.scheduleId: record for record in records}

    def get(self, schedule_id: str) -> Any:
        return self.records.get(schedule_id)

    def of_user(self, user_id: str, *, client_id: str, limit: int) -> list[Any]:
        # Deliberately unfiltered: the page itself must keep other shoppers' and clients' out.
        return list(self.records.values())[:limit]


def _schedule(goal: GoalRecord, **changes: Any) -> ScheduleRecord:
    return ScheduleRecord(
        scheduleId="s-1", brand=goal.brand, clientId=goal.clientId or "assistant", userId=goal.userId,
        goal="Buy <b>coffee</b> monthly, call +86 138 0013 8000", context=goal.context,
        definition=ScheduleSpec(rrule="FREQ=MONTHLY;COUNT=6", start=datetime(2030, 1, 1, 9, tzinfo=UTC)),
        status=ScheduleStatus.SCHEDULED, requestHash="h", createdAt="2029-12-01T00:00:00Z",
        updatedAt="2029-12-01T00:00:00Z", **changes,
    )  # fmt: skip


def test_an_occurrences_page_lists_its_schedule_with_the_next_occurrences(completed: OrderFlow):
    completed.ledger.store.overwrite(completed.goal_id, scheduleId="s-1", clientId="assistant")
    goal = completed.goal()
    store = _Store(_schedule(goal))
    in_march = datetime(2030, 2, 15, tzinfo=UTC)
    schedules = GoalSchedules(lambda: cast(ScheduleStore, store), clock=lambda: in_march)
    desk = ShopperDesk(
        ledger=completed.ledger, keys=completed.keys, workflow=completed.workflow, schedules=schedules
    )
    view = desk.open(completed.goal_id, _link(completed))
    (line,) = view.schedules
    assert line.status == "SCHEDULED"
    assert line.next_occurrences == ["2030-03-01 09:00 UTC", "2030-04-01 09:00 UTC", "2030-05-01 09:00 UTC"]
    html = render_shopper_page(view, completed.brand)
    assert "Your scheduled orders" in html and "&lt;b&gt;coffee" in html and "138 0013 8000" not in html


def test_another_shoppers_or_clients_schedule_is_never_shown(completed: OrderFlow):
    completed.ledger.store.overwrite(completed.goal_id, scheduleId="s-1", clientId="assistant")
    goal = completed.goal()
    for other in (
        _schedule(goal).model_copy(update={"userId": "user-9"}),
        _schedule(goal).model_copy(update={"clientId": "another-client"}),
    ):
        store = cast(ScheduleStore, _Store(other))
        schedules = GoalSchedules(lambda store=store: store, clock=lambda: datetime(2030, 1, 1, tzinfo=UTC))
        assert schedules.schedules_of(goal) == []


def test_the_page_lists_every_schedule_of_the_shopper_through_the_same_client(completed: OrderFlow):
    # A goal that is no occurrence still shows the shopper's schedules, its client's only.
    completed.ledger.store.overwrite(completed.goal_id, clientId="assistant")
    goal = completed.goal()
    store = _Store(
        _schedule(goal).model_copy(update={"scheduleId": "s-2", "status": ScheduleStatus.PAUSED}),
        _schedule(goal).model_copy(update={"scheduleId": "s-3"}),
        _schedule(goal).model_copy(update={"scheduleId": "s-4", "clientId": "another-client"}),
        _schedule(goal).model_copy(update={"scheduleId": "s-5", "userId": "user-9"}),
    )
    schedules = GoalSchedules(
        lambda: cast(ScheduleStore, store), clock=lambda: datetime(2030, 1, 1, tzinfo=UTC)
    )
    lines = schedules.schedules_of(goal)
    assert [(line.schedule_id, line.status) for line in lines] == [("s-2", "PAUSED"), ("s-3", "SCHEDULED")]
    assert lines[0].next_occurrences == []


def test_a_link_timed_from_the_goals_last_change_reads_the_same_until_it_changes():
    keys = StaticKeySource()
    changed = datetime(2030, 1, 1, tzinfo=UTC)
    links = ViewLinks(
        keys=keys, base_url=BASE, ttl_seconds=30 * 86400, clock=lambda: changed + timedelta(days=3)
    )
    first, again = (
        links.url_for("g-1", "user-1", since=changed),
        links.url_for("g-1", "user-1", since=changed),
    )
    assert first == again
    assert int(_params(first).exp) == int((changed + timedelta(days=30)).timestamp())
    # A goal untouched for longer than that gets a link from now, never one about to expire.
    stale = ViewLinks(
        keys=keys, base_url=BASE, ttl_seconds=30 * 86400, clock=lambda: changed + timedelta(days=40)
    )
    assert int(_params(stale.url_for("g-1", "user-1", since=changed)).exp) == int(
        (changed + timedelta(days=70)).timestamp()
    )


def test_no_link_part_reaches_the_logs(completed: OrderFlow):
    import io

    from cartpilot.kernel.observability import logger

    desk = ShopperDesk(ledger=completed.ledger, keys=completed.keys, workflow=completed.workflow)
    link = _link(completed)
    forged = ViewLinkParams(exp=link.exp, kid=link.kid, sig="forged" + link.sig[6:])
    buffer = io.StringIO()
    handler = logger.registered_handler
    level, stream = logger.log_level, handler.setStream(buffer)  # type: ignore[attr-defined]
    logger.setLevel("DEBUG")
    try:
        with pytest.raises(ViewRefused):
            desk.open(completed.goal_id, forged)
        desk.undo(completed.goal_id, link, confirm="undo")
    finally:
        logger.setLevel(level)
        handler.setStream(stream)  # type: ignore[attr-defined]
    logged = buffer.getvalue()
    assert "shopper asked for undo" in logged and "shopper view link refused" in logged
    assert link.sig not in logged and forged.sig not in logged and link.exp not in logged
