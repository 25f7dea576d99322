"""OrderEventStore: an order is one goal's for good, an event and a notice are recorded once (a
released claim is free again), and the tracking sweep's list holds polled orders and waiting
snapshots, for the fake and DynamoDB.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cartpilot.orders.ports import OrderEventStore, OrderLink
from tests.contract.conftest import _in_aws, _table
from tests.contract.racing import race
from tests.fakes.orders import InMemoryOrderEventStore

MERCHANT = "m-1"
LINK = OrderLink(merchantId=MERCHANT, orderId="o-1", goalId="g-1")
RECEIVED = "2026-11-30T10:00:00.000Z"
LATER = "2026-11-30T10:05:00.000Z"
SNAPSHOT = '{"id": "o-1", "status": "shipped"}'
NEWER_SNAPSHOT = '{"id": "o-1", "status": "delivered"}'


@pytest.fixture(params=["fake", "dynamodb"])
def new_store(request: pytest.FixtureRequest) -> Callable[[], OrderEventStore]:
    """A store; calling again gives another instance over the same storage (another container)."""
    if _in_aws(request) is None:
        fake = InMemoryOrderEventStore()
        return lambda: fake
    from cartpilot.adapters.aws.order_events_table import DynamoDBOrderEventStore

    return lambda: DynamoDBOrderEventStore(_table("goals"))


@pytest.fixture
def store(new_store: Callable[[], OrderEventStore]) -> OrderEventStore:
    return new_store()


def link(order_id: str, goal_id: str = "g-1", merchant_id: str = MERCHANT) -> OrderLink:
    return OrderLink(merchantId=merchant_id, orderId=order_id, goalId=goal_id)


# Links


def test_a_linked_order_is_found_by_merchant_and_order_id(store: OrderEventStore) -> None:
    store.link_order(LINK, polled=False)

    assert store.goal_for_order(MERCHANT, "o-1") == "g-1"
    assert store.goal_for_order(MERCHANT, "o-unknown") is None
    assert store.goal_for_order("m-other", "o-1") is None  # the same order id at another merchant


def test_an_order_linked_to_a_goal_is_never_taken_over_by_another(store: OrderEventStore) -> None:
    store.link_order(LINK, polled=False)
    store.link_order(LINK, polled=False)  # linking again changes nothing
    store.link_order(link("o-1", goal_id="g-2"), polled=True)

    assert store.goal_for_order(MERCHANT, "o-1") == "g-1"
    # The refused link did not list the order for polling either.
    assert store.open_orders(10) == []


def test_two_goals_racing_for_one_order_leave_it_with_one_of_them(
    new_store: Callable[[], OrderEventStore],
) -> None:
    goals = ["g-1", "g-2", "g-3", "g-4"]

    def link_for(goal_id: str) -> Callable[[], None]:
        return lambda: new_store().link_order(link("o-1", goal_id=goal_id), polled=False)

    race([link_for(goal_id) for goal_id in goals])

    winner = new_store().goal_for_order(MERCHANT, "o-1")
    assert winner in goals
    for goal_id in goals:  # every later link leaves it as it is
        new_store().link_order(link("o-1", goal_id=goal_id), polled=False)
    assert new_store().goal_for_order(MERCHANT, "o-1") == winner


# Event claims


def test_an_event_is_claimed_once_per_merchant(store: OrderEventStore) -> None:
    assert store.claim_event(MERCHANT, "wh-1", "g-1", RECEIVED)
    assert not store.claim_event(MERCHANT, "wh-1", "g-1", LATER)  # the merchant's redelivery
    assert not store.claim_event(MERCHANT, "wh-1", "g-2", LATER)
    assert store.claim_event(MERCHANT, "wh-2", "g-1", RECEIVED)
    assert store.claim_event("m-other", "wh-1", "g-1", RECEIVED)  # ids are the merchant's own


def test_a_released_event_is_claimed_again_and_then_held(store: OrderEventStore) -> None:
    assert store.claim_event(MERCHANT, "wh-1", "g-1", RECEIVED)
    store.release_event(MERCHANT, "wh-1")

    assert store.claim_event(MERCHANT, "wh-1", "g-1", LATER)  # the retry is processed
    assert not store.claim_event(MERCHANT, "wh-1", "g-1", LATER)
    store.release_event(MERCHANT, "wh-never-claimed")  # nothing to forget: no error, nothing recorded
    assert store.claim_event(MERCHANT, "wh-never-claimed", "g-1", RECEIVED)


def test_releasing_one_event_leaves_the_others_claimed(store: OrderEventStore) -> None:
    assert store.claim_event(MERCHANT, "wh-1", "g-1", RECEIVED)
    assert store.claim_event(MERCHANT, "wh-2", "g-1", RECEIVED)
    store.release_event(MERCHANT, "wh-1")

    assert not store.claim_event(MERCHANT, "wh-2", "g-1", LATER)
    assert store.claim_event(MERCHANT, "wh-1", "g-1", LATER)


@pytest.mark.parametrize("released", [False, True], ids=["new", "released"])
def test_deliveries_racing_for_one_event_claim_it_once(
    new_store: Callable[[], OrderEventStore], released: bool
) -> None:
    if released:
        assert new_store().claim_event(MERCHANT, "wh-1", "g-1", RECEIVED)
        new_store().release_event(MERCHANT, "wh-1")

    results = race([lambda: new_store().claim_event(MERCHANT, "wh-1", "g-1", LATER)] * 4)

    assert sorted(results) == [False, False, False, True]


# Notice claims


def test_a_notice_is_claimed_once_per_goal_and_kind(store: OrderEventStore) -> None:
    assert store.claim_notice("g-1", "shipped", RECEIVED)
    assert not store.claim_notice("g-1", "shipped", LATER)
    assert store.claim_notice("g-1", "delivered", RECEIVED)
    assert store.claim_notice("g-2", "shipped", RECEIVED)


def test_a_released_notice_is_claimed_again(store: OrderEventStore) -> None:
    assert store.claim_notice("g-1", "shipped", RECEIVED)
    store.release_notice("g-1", "shipped")

    assert store.claim_notice("g-1", "shipped", LATER)
    assert not store.claim_notice("g-1", "shipped", LATER)
    store.release_notice("g-1", "never-told")  # nothing to forget
    assert store.claim_notice("g-1", "never-told", RECEIVED)


def test_senders_racing_for_one_notice_claim_it_once(new_store: Callable[[], OrderEventStore]) -> None:
    results = race([lambda: new_store().claim_notice("g-1", "shipped", RECEIVED)] * 4)

    assert sorted(results) == [False, False, False, True]


def test_event_and_notice_claims_do_not_touch_the_order_link(store: OrderEventStore) -> None:
    store.link_order(LINK, polled=False)
    assert store.claim_event(MERCHANT, "o-1", "g-2", RECEIVED)  # an event id equal to the order id
    assert store.claim_notice("g-1", "shipped", RECEIVED)

    assert store.goal_for_order(MERCHANT, "o-1") == "g-1"
    assert store.pending_snapshot(MERCHANT, "o-1") is None
    assert store.open_orders(10) == []


# Snapshots and the sweep's list


def test_a_queued_snapshot_is_listed_as_pending_until_it_is_cleared(store: OrderEventStore) -> None:
    store.link_order(LINK, polled=False)
    assert store.open_orders(10) == []  # a pushed order is not polled
    assert store.pending_snapshot(MERCHANT, "o-1") is None

    store.queue_snapshot(LINK, "wh-1", SNAPSHOT, RECEIVED)

    assert store.pending_snapshot(MERCHANT, "o-1") == (SNAPSHOT, RECEIVED)
    assert store.open_orders(10) == [(LINK, "pending")]
    store.clear_pending(MERCHANT, "o-1", RECEIVED)
    assert store.pending_snapshot(MERCHANT, "o-1") is None
    assert store.open_orders(10) == []
    assert store.goal_for_order(MERCHANT, "o-1") == "g-1"  # the link outlives its snapshot


def test_a_newer_snapshot_replaces_the_waiting_one_and_survives_clearing_the_older(
    store: OrderEventStore,
) -> None:
    store.link_order(LINK, polled=False)
    store.queue_snapshot(LINK, "wh-1", SNAPSHOT, RECEIVED)
    store.queue_snapshot(LINK, "wh-2", NEWER_SNAPSHOT, LATER)
    assert store.pending_snapshot(MERCHANT, "o-1") == (NEWER_SNAPSHOT, LATER)

    store.clear_pending(MERCHANT, "o-1", RECEIVED)  # the sweep applied the older one meanwhile

    assert store.pending_snapshot(MERCHANT, "o-1") == (NEWER_SNAPSHOT, LATER)
    assert store.open_orders(10) == [(LINK, "pending")]
    store.clear_pending(MERCHANT, "o-1", LATER)
    assert store.pending_snapshot(MERCHANT, "o-1") is None
    assert store.open_orders(10) == []


def test_a_snapshot_queued_again_after_clearing_is_listed_again(store: OrderEventStore) -> None:
    store.link_order(LINK, polled=False)
    store.queue_snapshot(LINK, "wh-1", SNAPSHOT, RECEIVED)
    store.clear_pending(MERCHANT, "o-1", RECEIVED)
    store.queue_snapshot(LINK, "wh-2", NEWER_SNAPSHOT, LATER)

    assert store.pending_snapshot(MERCHANT, "o-1") == (NEWER_SNAPSHOT, LATER)
    assert store.open_orders(10) == [(LINK, "pending")]


def test_clearing_where_nothing_waits_changes_nothing(store: OrderEventStore) -> None:
    store.link_order(LINK, polled=True)
    store.clear_pending(MERCHANT, "o-1", RECEIVED)
    store.clear_pending(MERCHANT, "o-unknown", RECEIVED)

    assert store.goal_for_order(MERCHANT, "o-unknown") is None
    assert store.pending_snapshot(MERCHANT, "o-unknown") is None
    assert store.open_orders(10) == [(LINK, "poll")]


def test_a_polled_order_is_listed_until_polling_is_closed(store: OrderEventStore) -> None:
    store.link_order(LINK, polled=True)
    store.link_order(LINK, polled=False)  # linking again leaves it listed

    assert store.open_orders(10) == [(LINK, "poll")]
    store.close_polling(MERCHANT, "o-1")
    assert store.open_orders(10) == []
    assert store.goal_for_order(MERCHANT, "o-1") == "g-1"
    store.close_polling(MERCHANT, "o-1")  # closed again, or never linked: nothing happens
    store.close_polling(MERCHANT, "o-unknown")
    assert store.goal_for_order(MERCHANT, "o-unknown") is None


def test_a_polled_order_with_a_snapshot_stays_listed_as_polled(store: OrderEventStore) -> None:
    store.link_order(LINK, polled=True)
    store.queue_snapshot(LINK, "wh-1", SNAPSHOT, RECEIVED)

    assert store.pending_snapshot(MERCHANT, "o-1") == (SNAPSHOT, RECEIVED)
    assert store.open_orders(10) == [(LINK, "poll")]
    store.clear_pending(MERCHANT, "o-1", RECEIVED)
    assert store.pending_snapshot(MERCHANT, "o-1") is None
    assert store.open_orders(10) == [(LINK, "poll")]  # clearing the snapshot does not stop polling


def test_closing_polling_keeps_a_waiting_snapshot_listed_until_it_is_applied(store: OrderEventStore) -> None:
    store.link_order(LINK, polled=True)
    store.queue_snapshot(LINK, "wh-1", SNAPSHOT, RECEIVED)

    store.close_polling(MERCHANT, "o-1")

    assert store.open_orders(10) == [(LINK, "pending")]
    store.clear_pending(MERCHANT, "o-1", RECEIVED)
    assert store.open_orders(10) == []


def test_a_pushed_order_with_a_snapshot_is_polled_once_linked_as_polled(store: OrderEventStore) -> None:
    store.link_order(LINK, polled=False)
    store.queue_snapshot(LINK, "wh-1", SNAPSHOT, RECEIVED)
    store.link_order(LINK, polled=True)

    assert store.open_orders(10) == [(LINK, "poll")]
    store.clear_pending(MERCHANT, "o-1", RECEIVED)
    assert store.pending_snapshot(MERCHANT, "o-1") is None
    assert store.open_orders(10) == [(LINK, "poll")]


def test_the_sweep_lists_waiting_snapshots_before_polled_orders_up_to_its_limit(
    store: OrderEventStore,
) -> None:
    polled = [link("o-p1", "g-p1"), link("o-p2", "g-p2"), link("o-p3", "g-p3", merchant_id="m-2")]
    pushed = [link("o-s1", "g-s1"), link("o-s2", "g-s2", merchant_id="m-2")]
    for order in polled:
        store.link_order(order, polled=True)
    for n, order in enumerate(pushed):
        store.link_order(order, polled=False)
        store.queue_snapshot(order, f"wh-{n}", SNAPSHOT, RECEIVED)
    store.link_order(link("o-quiet", "g-quiet"), polled=False)  # neither polled nor waiting

    everything = store.open_orders(10)
    assert len(everything) == 5
    assert sorted((o.orderId, listing) for o, listing in everything[:2]) == [
        ("o-s1", "pending"),
        ("o-s2", "pending"),
    ]
    assert sorted((o.orderId, listing) for o, listing in everything[2:]) == [
        ("o-p1", "poll"),
        ("o-p2", "poll"),
        ("o-p3", "poll"),
    ]
    assert {o for o, _ in everything} == set(polled + pushed)  # whole links, goal and merchant too

    first = store.open_orders(3)
    assert len(first) == 3
    assert [listing for _, listing in first] == ["pending", "pending", "poll"]
    assert first[2] in everything[2:]
    assert [listing for _, listing in store.open_orders(1)] == ["pending"]


def test_the_sweep_lists_every_polled_order_within_its_limit_and_no_more(store: OrderEventStore) -> None:
    orders = [link(f"o-{n:02d}", f"g-{n:02d}") for n in range(12)]
    for order in orders:
        store.link_order(order, polled=True)

    assert sorted(o.orderId for o, _ in store.open_orders(50)) == sorted(o.orderId for o in orders)
    assert len(store.open_orders(7)) == 7
