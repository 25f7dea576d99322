"""Powertools idempotency on DynamoDB: a duplicate delivery is answered from the stored result."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig
    from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer

    from cartpilot.execution.executor import StepExecutor
    from cartpilot.rollout.gate import RolloutGate


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
    rollout: Callable[[], RolloutGate] | None = None,
) -> dict[str, Any]:
    """The mutating connectors' shared entry: Powertools idempotency on (goalId, step.id).

    A duplicate delivery of the same step returns the stored result without calling
    the merchant again; the same key with a different plan hash is an error, not a replay.
    """
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function

    # The executor and the models it runs load with the first step, not with the connector's module.
    from cartpilot.execution.executor import require_connector
    from cartpilot.goals.events import ConnectorEvent

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
        request = ConnectorEvent.model_validate(step_event)
        return executor().advance(request) if request.answer == "next" else executor().run(request)

    _halt_unless_started(
        event, rollout, persistence, config, f"{run_once.__module__}.{run_once.__qualname__}"
    )

    # Applied as a call, not as a decorator: Powertools types its result as Any, so name what it keeps.
    guarded: Callable[..., dict[str, Any]] = idempotent_function(
        run_once, data_keyword_argument="step_event", persistence_store=persistence, config=config
    )
    return guarded(step_event=event)


def _halt_unless_started(
    event: dict[str, Any],
    rollout: Callable[[], RolloutGate] | None,
    persistence: BasePersistenceLayer,
    config: IdempotencyConfig,
    function_name: str,
) -> None:
    """The kill switch stops a step that has not started; one with an idempotency record (in
    progress, or done and now redelivered) goes on, so a step is never left half-done or run twice.
    The record is looked up only when the switch is on: the common path costs no extra read."""
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyItemNotFoundError

    from cartpilot.rollout.gate import RolloutHalted

    if rollout is None:
        from cartpilot.wiring.rollout import rollout_gate

        rollout = rollout_gate
    try:
        rollout().check_step()
    except RolloutHalted:
        # The same key Powertools derives for this function: configure is idempotent per layer.
        persistence.configure(config, function_name)
        try:
            started = persistence.get_record(event) is not None
        except IdempotencyItemNotFoundError:
            started = False
        if not started:
            raise
