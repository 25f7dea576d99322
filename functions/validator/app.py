"""CheckPolicies: validates the stored plan and decides its risk tier."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from cartpilot.kernel.observability import logger, metrics, tracer
from cartpilot.kernel.snapstart import before_snapshot
from cartpilot.wiring.restore import register_restore_hooks
from cartpilot.wiring.validator import check_policies, prepare

# A SnapStart environment refreshes what it must not share with others restored from the same snapshot.
register_restore_hooks()
# The brand, its Cedar policies and the models load before the snapshot, so a bad policy file fails
# the version's publication; without a snapshot they load before the first goal is judged.
before_snapshot(prepare)


@logger.inject_lambda_context(correlation_id_path="goalId")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    verdict = check_policies(event)
    metrics.add_metric(name=f"Verdict{verdict.tier.value.title().replace('_', '')}", unit="Count", value=1)
    return {"route": verdict.route, "tier": verdict.tier.value, "planHash": verdict.planHash}
