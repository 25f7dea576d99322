"""The closed set of reasons a shopper is told, and how the goal view shows them."""

from __future__ import annotations

import pytest

from cartpilot.goals.model import GoalRecord
from cartpilot.goals.reasons import REASON_MESSAGES, ReasonCode, reason_for_error, shopper_reason
from cartpilot.goals.views import reason_of


def test_every_reason_has_its_own_words():
    assert set(REASON_MESSAGES) == set(ReasonCode)
    assert len(set(REASON_MESSAGES.values())) == len(ReasonCode)
    for message in REASON_MESSAGES.values():
        assert message.endswith(".") and "http" not in message and "Error" not in message


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ("PlanningFailed", ReasonCode.PLAN_NOT_POSSIBLE),
        ("GoalUnclear", ReasonCode.REQUEST_UNCLEAR),
        ("MerchantCircuitOpen", ReasonCode.MERCHANT_UNAVAILABLE),
        ("MerchantRejected", ReasonCode.MERCHANT_REFUSED),
        ("PriceChanged", ReasonCode.PRICE_CHANGED),
        ("PlanIntegrityError", ReasonCode.PLAN_CHANGED),
        ("ValidationError", ReasonCode.INTERNAL_ERROR),
        ("ValueError", ReasonCode.INTERNAL_ERROR),
        (None, ReasonCode.INTERNAL_ERROR),
    ],
)
def test_errors_map_onto_the_set_and_anything_unknown_is_ours(error: str | None, code: ReasonCode):
    assert reason_for_error(error) is code


def _goal(**fields: object) -> GoalRecord:
    return GoalRecord.model_validate(
        {"goalId": "g-1", "userId": "user-1", "brand": "sandbox", "goal": "socks", "context": {},
         "status": "FAILED", "requestHash": "h", "createdAt": "t", "updatedAt": "t", **fields}
    )  # fmt: skip


def test_the_goal_view_shows_the_code_and_its_words():
    goal = _goal(failure=REASON_MESSAGES[ReasonCode.REQUEST_UNCLEAR], reasonCode="REQUEST_UNCLEAR")
    assert reason_of(goal) == shopper_reason(ReasonCode.REQUEST_UNCLEAR)


def test_a_failure_stored_without_a_code_is_never_shown_as_written():
    goal = _goal(failure="1 validation error for GoalRef https://errors.pydantic.dev/2.11/v/missing")
    assert reason_of(goal) == shopper_reason(ReasonCode.INTERNAL_ERROR)
    assert reason_of(_goal(status="COMPLETED")) is None
