"""CheckPolicies: validates the stored plan and decides its risk tier."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from cartpilot import wiring
from cartpilot.goals.events import ValidationEvent
from cartpilot.kernel.models import build_models
from cartpilot.kernel.observability import logger, metrics, tracer
from cartpilot.kernel.snapstart import before_snapshot
from cartpilot.plans.validation import validate_goal
from cartpilot.wiring.mandates import mandate_guard
from cartpilot.wiring.restore import register_restore_hooks
from cartpilot.wiring.rollout import rollout_gate

# A bad policy file stops the function at start-up, naming the line, not in the middle of an order.
wiring.policies()
# A SnapStart environment refreshes what it must not share with others restored from the same snapshot.
register_restore_hooks()
# Models build on first use; the snapshot is taken with the loaded ones built.
before_snapshot(build_models)


@logger.inject_lambda_context(correlation_id_path="goalId")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    ref = ValidationEvent.model_validate(event)
    verdict = validate_goal(
        ref.goalId,
        ref.planHash,
        ledger=wiring.ledger(),
        brand=wiring.brand(),
        users=wiring.users(),
        counters=wiring.counters(),
        price_check=ref.priceCheck,
        mandates=mandate_guard(),
        rollout=rollout_gate(),
    )
    metrics.add_metric(name=f"Verdict{verdict.tier.value.title().replace('_', '')}", unit="Count", value=1)
    return {"route": verdict.route, "tier": verdict.tier.value, "planHash": verdict.planHash}
