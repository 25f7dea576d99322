"""bench/cost.py's ``delivered`` path: a goal's life after completion (its order shipped and delivered,
the shopper told) is metered until the notices are sent, and a sweep's work counts for the goal only
as its writes and sends."""

from __future__ import annotations

from typing import Any

import pytest

from bench.cost import PATHS, Measured, summarise
from bench.cost_units import GoalUsage, LambdaRun, goal_api_call, goal_dynamo_request, price_goal
from bench.lifecycle import SHIPMENT_STEPS, awaited
from cartpilot_local.metering import ApiCall, DynamoRequest
from tests.unit.cost_prices import TABLE

PER_GOAL = {"api", "planner", "notify"}
SWEEPS = {"notices", "tracking", "redelivery", "occurrences"}
CLAIM = {"pk": "NOTICE#g-1#shipped", "goalId": "g-1", "sentAt": "2026-11-30T10:00:00Z"}
LINK = {"pk": "ORDER#sandbox-merchant#o-1", "goalId": "g-1", "orderId": "o-1"}


# --- which paths ----------------------------------------------------------------------------------


def test_the_issue_paths_stay_and_delivered_is_one_more() -> None:
    assert PATHS[:4] == ("auto", "approved", "compensated", "undone")
    assert PATHS[4:] == ("delivered",)


def test_the_order_ships_before_it_is_delivered() -> None:
    assert SHIPMENT_STEPS == (("ship", "shipped"), ("deliver", "delivered"))


# --- when a notice counts as sent -----------------------------------------------------------------


def test_a_step_settles_when_its_notice_is_claimed_and_no_event_waits() -> None:
    assert awaited(kinds=("shipped",), notices={"shipped": CLAIM}, order_link=LINK) == []


@pytest.mark.parametrize(
    ("notices", "link", "reason"),
    [
        ({"shipped": None}, LINK, "the shipped notice"),
        # A send that failed gave its claim back: the notice was not sent.
        ({"shipped": {**CLAIM, "released": True}}, LINK, "the shipped notice"),
        ({"shipped": CLAIM}, {**LINK, "pendingOrder": "{}"}, "the tracking sweep to apply the order event"),
        ({"shipped": CLAIM}, None, "the order's link"),
    ],
)
def test_a_step_waits_for_what_is_missing(
    notices: dict[str, Any], link: dict[str, Any] | None, reason: str
) -> None:
    assert awaited(kinds=("shipped",), notices=notices, order_link=link) == [reason]


def test_the_last_step_waits_for_every_notice_and_nothing_due() -> None:
    delivered = {**CLAIM, "pk": "NOTICE#g-1#delivered"}
    kinds = ("shipped", "delivered")
    notices = {"shipped": CLAIM, "delivered": delivered}
    assert awaited(kinds=kinds, notices=notices, order_link=LINK, goal={"pk": "GOAL#g-1"}, final=True) == []
    assert awaited(
        kinds=kinds,
        notices={"shipped": CLAIM, "delivered": None},
        order_link=LINK,
        goal={"pk": "GOAL#g-1", "noticesDue": {"COMPLETED"}},
        final=True,
    ) == ["the delivered notice", "status notices ['COMPLETED']"]
    # A polled order stays on the sweep's list until its shipment stops moving.
    assert awaited(
        kinds=kinds, notices=notices, order_link={**LINK, "openTracking": "poll"}, goal={}, final=True
    ) == ["the order to leave the tracking sweep's list"]
    # Before the last step the goal's item is not read, and a polled order may stay listed.
    assert awaited(kinds=("shipped",), notices=notices, order_link={**LINK, "openTracking": "poll"}) == []


# --- what of a sweep's work is the goal's ---------------------------------------------------------


def _request(
    function: str | None, *, writes: tuple[int, ...] = (), reads: tuple[int, ...] = ()
) -> DynamoRequest:
    return DynamoRequest(
        function, "UpdateItem" if writes else "GetItem", "t", read_sizes=reads, write_sizes=writes
    )


def test_a_sweep_counts_its_writes_for_the_goal_not_its_reads() -> None:
    assert goal_dynamo_request(_request("tracking", writes=(300,)), PER_GOAL, SWEEPS)
    assert goal_dynamo_request(_request("notices", writes=(300,)), PER_GOAL, SWEEPS)
    assert not goal_dynamo_request(_request("tracking", reads=(300,)), PER_GOAL, SWEEPS)
    # The goal's own functions count every request; the bench's own reads (no function) none.
    assert goal_dynamo_request(_request("api", reads=(300,)), PER_GOAL, SWEEPS)
    assert not goal_dynamo_request(_request(None, reads=(300,)), PER_GOAL, SWEEPS)


@pytest.mark.parametrize(
    ("call", "counted"),
    [
        (ApiCall("tracking", "sns", "Publish"), True),
        (ApiCall("tracking", "sesv2", "SendEmail"), True),
        (ApiCall("notices", "s3", "PutObject"), True),
        # A polled merchant's Get Order is signed on every sweep: a cost per minute, not per goal.
        (ApiCall("tracking", "kms", "Sign"), False),
        (ApiCall("tracking", "secretsmanager", "GetSecretValue"), False),
        (ApiCall("api", "kms", "Verify"), True),
        (ApiCall(None, "sesv2", "SendEmail"), False),
    ],
)
def test_a_sweep_counts_its_sends_and_audit_anchors(call: ApiCall, counted: bool) -> None:
    assert goal_api_call(call, PER_GOAL, SWEEPS) is counted


# --- the row ------------------------------------------------------------------------------------


def test_the_shipment_notices_and_webhooks_are_priced_as_the_goals() -> None:
    # Two webhooks through the API, the shipped and delivered notices by topic and email, four
    # audit anchors.
    usage = GoalUsage(
        invocations=[LambdaRun("api", 512, 20.0), LambdaRun("api", 512, 20.0)],
        api_requests=2,
        sns_publishes=2,
        emails=2,
        s3_puts=4,
    )
    usd = price_goal(usage, TABLE)
    assert usd["notifications"] == pytest.approx(2 * 0.0000005 + 2 * 0.0001)
    assert usd["apigateway"] == pytest.approx(2 * (0.0000035 + 0.0000006))
    assert usd["s3"] == pytest.approx(4 * 0.000005)
    assert usage.notifications == 4


def test_the_delivered_row_has_the_shape_of_the_others() -> None:
    usage = GoalUsage(transitions=5, invocations=[LambdaRun("api", 512, 20.0)], api_requests=1, emails=3)
    measured = Measured("delivered", "g-1", "COMPLETED (delivered)", usage, price_goal(usage, TABLE))
    row = summarise([measured])
    assert row["statuses"] == ["COMPLETED (delivered)"]
    assert row["notifications"] == 3
    assert row["usd_per_1000_goals"] == pytest.approx(sum(row["breakdown"].values()), abs=0.001)
