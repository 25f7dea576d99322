"""Powertools idempotency on DynamoDB: a duplicate delivery is answered from the stored result."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cartpilot.execution.executor import StepExecutor, require_connector
from cartpilot.goals.events import ConnectorEvent

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
    from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer


def persistence_layer(table_name: str) -> DynamoDBPersistenceLayer:
    """Powertools configures a persistence layer once, with the first config it sees, so callers
    keep one per purpose (wiring caches them): functions sharing a process must not share one."""
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    return DynamoDBPersistenceLayer(table_name=table_name)


def run_connector_step(
    event: dict[str, Any],
    context: Any,
    *,
    connector: str,
    executor: Callable[[], StepExecutor],
    persistence: BasePersistenceLayer,
) -> dict[str, Any]:
    """The mutating connectors' shared entry: Powertools idempotency on (goalId, step.id).

    A duplicate delivery of the same step returns the stored result without calling
    the merchant again; the same key with a different plan hash is an error, not a replay.
    """
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function

    require_connector(ConnectorEvent.model_validate(event), connector)
    config = IdempotencyConfig(
        event_key_jmespath="[goalId, step.id]",
        payload_validation_jmespath="planHash",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=7 * 24 * 3600,
    )
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        config.register_lambda_context(context)

    def run_once(step_event: dict[str, Any]) -> dict[str, Any]:
        return executor().run(ConnectorEvent.model_validate(step_event))

    # Applied as a call, not as a decorator: Powertools types its result as Any, so name what it keeps.
    guarded: Callable[..., dict[str, Any]] = idempotent_function(
        run_once, data_keyword_argument="step_event", persistence_store=persistence, config=config
    )
    return guarded(step_event=event)
