"""Connector errors, classified so the state machine can react by name.

A Lambda that raises reports the exception's class name as its error type, and
the ASL retries or catches on those names. Keep the names stable: they are part
of the contract with `statemachines/order_flow.asl.json`.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of every error a connector raises on purpose."""


class MerchantUnavailable(ConnectorError):
    """Transient: connection failure, timeout before sending, 429 or 5xx. Safe to retry."""


class MerchantCircuitOpen(MerchantUnavailable):
    """The endpoint's circuit breaker is open: nothing was sent. Retry after the breaker's reset."""


class MerchantRejected(ConnectorError):
    """Permanent: the merchant refused the request (4xx, or a business outcome). Retrying cannot help.

    `message` carries the merchant's own words where it gave any.
    """

    def __init__(self, message: str, status_code: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code


class IdempotencyKeyReused(MerchantRejected):
    """409: the key was used before with a different request (overview.md). A definite refusal."""


class MerchantEscalation(MerchantRejected):
    """The checkout requires the buyer (`requires_escalation`): hand the merchant's continue URL over."""

    def __init__(self, message: str, continue_url: str, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.continue_url = continue_url


class UndoUnsupported(ConnectorError):
    """The merchant advertises no way to cancel an order; undo is not offered for its orders."""


class MerchantOutcomeUnknown(ConnectorError):
    """Ambiguous: the request may have been committed but no answer arrived.

    Recover by replaying the same Idempotency-Key, never with a fresh one.
    """


class PlanIntegrityError(ConnectorError):
    """The plan to execute is not the plan that was approved."""


class PlanNeedsReapproval(ConnectorError):
    """The merchant's prices moved beyond the brand's tolerance since approval: ask again, run nothing."""

    def __init__(self, message: str, drifts: list[dict[str, object]] | None = None) -> None:
        super().__init__(message)
        self.drifts = drifts or []


class CompensationIncomplete(ConnectorError):
    """Some undo could not be done yet; the state machine retries the compensation."""


TRANSIENT_ERRORS = (
    MerchantUnavailable.__name__,
    MerchantCircuitOpen.__name__,
    MerchantOutcomeUnknown.__name__,
)
