"""Why a goal did not complete, in words a shopper can read: a closed set.

Error text (an exception's message, a merchant's words, a validation error with its links)
is for logs and the audit trail. What the shopper, the API client and notifications see is
one of these codes with its sentence, so nothing raw or personal reaches them.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class ReasonCode(StrEnum):
    POLICY_DENIED = "POLICY_DENIED"
    APPROVAL_REJECTED = "APPROVAL_REJECTED"
    APPROVAL_EXPIRED = "APPROVAL_EXPIRED"
    VERIFICATION_LOCKED = "VERIFICATION_LOCKED"
    REQUEST_UNCLEAR = "REQUEST_UNCLEAR"
    PLAN_NOT_POSSIBLE = "PLAN_NOT_POSSIBLE"
    MERCHANT_UNAVAILABLE = "MERCHANT_UNAVAILABLE"
    MERCHANT_REFUSED = "MERCHANT_REFUSED"
    PRICE_CHANGED = "PRICE_CHANGED"
    PLAN_CHANGED = "PLAN_CHANGED"
    ORDER_UNDONE = "ORDER_UNDONE"
    FINISH_AT_MERCHANT = "FINISH_AT_MERCHANT"
    NEEDS_ATTENTION = "NEEDS_ATTENTION"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    # The brand's staged rollout (rollout/): the plan was checked, nothing was bought.
    ROLLOUT_READ_ONLY = "ROLLOUT_READ_ONLY"
    ROLLOUT_PILOT_EXCLUDED = "ROLLOUT_PILOT_EXCLUDED"
    ROLLOUT_KILL_SWITCH = "ROLLOUT_KILL_SWITCH"
    ROLLOUT_OFF = "ROLLOUT_OFF"
    # The kill switch stopped an order on its way; what had run was undone.
    ROLLOUT_HALTED = "ROLLOUT_HALTED"


REASON_MESSAGES: dict[ReasonCode, str] = {
    ReasonCode.POLICY_DENIED: "This order is not allowed by the shop's rules for orders, so nothing was bought.",
    ReasonCode.APPROVAL_REJECTED: "The order was not approved, so nothing was bought.",
    ReasonCode.APPROVAL_EXPIRED: "Nobody approved the order in time, so nothing was bought.",
    ReasonCode.VERIFICATION_LOCKED: (
        "The one-time code was entered wrongly too many times, so the approval was locked and "
        "nothing was bought. If that was not you, please contact us."
    ),
    ReasonCode.REQUEST_UNCLEAR: (
        "We could not understand part of the request (for example a date or a quantity). "
        "Please say it another way; nothing was bought."
    ),
    ReasonCode.PLAN_NOT_POSSIBLE: (
        "We could not put this order together: the item, size, quantity, recipient, delivery or "
        "payment asked for is not available. Nothing was bought."
    ),
    ReasonCode.MERCHANT_UNAVAILABLE: "The shop could not be reached. Nothing was bought; please try again later.",
    ReasonCode.MERCHANT_REFUSED: "The shop did not accept the order. Nothing was bought.",
    ReasonCode.PRICE_CHANGED: "The price changed before the order was placed. Nothing was bought.",
    ReasonCode.PLAN_CHANGED: "The order changed after it was checked, so it was stopped. Nothing was bought.",
    ReasonCode.ORDER_UNDONE: "The order could not be completed and everything was undone. Nothing was charged.",
    ReasonCode.FINISH_AT_MERCHANT: "The shop needs you to finish the checkout on its own site.",
    ReasonCode.NEEDS_ATTENTION: (
        "The order could not be completed and undoing it needs a person. Our team is on it and will contact you."
    ),
    ReasonCode.INTERNAL_ERROR: "Something went wrong on our side. Nothing was bought; please try again.",
    ReasonCode.ROLLOUT_READ_ONLY: (
        "Your order was planned and checked, but the shop is not placing orders through this service "
        "yet, so nothing was bought."
    ),
    ReasonCode.ROLLOUT_PILOT_EXCLUDED: (
        "Your order was planned and checked, but the shop is placing orders for a small group of "
        "shoppers only for now, so nothing was bought."
    ),
    ReasonCode.ROLLOUT_KILL_SWITCH: (
        "Your order was planned and checked, but the shop has paused orders through this service, "
        "so nothing was bought."
    ),
    ReasonCode.ROLLOUT_OFF: "The shop is not taking orders through this service right now. Nothing was bought.",
    ReasonCode.ROLLOUT_HALTED: (
        "The shop paused orders through this service while yours was being placed; everything was "
        "undone and nothing was charged."
    ),
}

# Step Functions reports a Lambda error by the exception's class name ("Error"); the names our
# code raises map onto the set. Anything else is ours to fix, and says so.
_BY_ERROR_NAME: dict[str, ReasonCode] = {
    "PlanningFailed": ReasonCode.PLAN_NOT_POSSIBLE,
    "GoalUnclear": ReasonCode.REQUEST_UNCLEAR,
    "MerchantUnavailable": ReasonCode.MERCHANT_UNAVAILABLE,
    "MerchantCircuitOpen": ReasonCode.MERCHANT_UNAVAILABLE,
    "MerchantOutcomeUnknown": ReasonCode.MERCHANT_UNAVAILABLE,
    "States.Timeout": ReasonCode.MERCHANT_UNAVAILABLE,
    "MerchantRejected": ReasonCode.MERCHANT_REFUSED,
    "IdempotencyKeyReused": ReasonCode.MERCHANT_REFUSED,
    "UndoUnsupported": ReasonCode.MERCHANT_REFUSED,
    "PriceChanged": ReasonCode.PRICE_CHANGED,
    "PlanNeedsReapproval": ReasonCode.PRICE_CHANGED,
    "PlanIntegrityError": ReasonCode.PLAN_CHANGED,
    "MerchantEscalation": ReasonCode.FINISH_AT_MERCHANT,
    "RolloutHalted": ReasonCode.ROLLOUT_HALTED,
}


class ShopperReason(BaseModel):
    """What the goal view and notifications say about a goal that did not complete."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    code: ReasonCode
    message: str


def shopper_reason(code: ReasonCode) -> ShopperReason:
    return ShopperReason(code=code, message=REASON_MESSAGES[code])


def reason_for_error(error_name: str | None, default: ReasonCode = ReasonCode.INTERNAL_ERROR) -> ReasonCode:
    """The reason for a failure reported under ``error_name`` (an exception class or a States error)."""
    if not error_name:
        return default
    return _BY_ERROR_NAME.get(error_name, default)
