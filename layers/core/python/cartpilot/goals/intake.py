"""Taking a goal in: one goal and one execution per (user, Idempotency-Key), whatever the retries.

Powertools idempotency on DynamoDB answers replays and refuses a reused key with
a different body. Behind it, the goal id is derived from the key and created with
a conditional write, and the execution is named after the goal, so even a replay
that outlives the idempotency record cannot start a second order flow.
"""

from __future__ import annotations

from cartpilot.brands.config import BrandConfig
from cartpilot.brands.users import UserDirectory
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.model import GoalAccepted, GoalRecord, GoalRequest, GoalStatus, goal_id_for
from cartpilot.goals.ports import GoalAlreadyExists, Workflow
from cartpilot.kernel.clock import utc_now_iso
from cartpilot.kernel.errors import Refusal


class IntakeError(Refusal):
    """Refused by goal intake."""


def goal_links(goal_id: str) -> dict[str, str]:
    return {"self": f"/goals/{goal_id}", "audit": f"/goals/{goal_id}/audit", "undo": f"/goals/{goal_id}/undo"}


class GoalIntake:
    def __init__(
        self,
        *,
        ledger: GoalLedger,
        workflow: Workflow,
        brand: BrandConfig,
        users: UserDirectory,
    ) -> None:
        self._ledger = ledger
        self._workflow = workflow
        self._brand = brand
        self._users = users

    def submit(self, request: GoalRequest, idempotency_key: str) -> GoalAccepted:
        if self._users.get(request.userId) is None:
            raise IntakeError(422, "UNKNOWN_USER", f"user {request.userId} is not known to this brand")
        if request.context.budget is not None and request.context.budget.currency != self._brand.currency:
            raise IntakeError(422, "BUDGET_CURRENCY", f"budget must be in {self._brand.currency}")
        merchant_id = request.context.merchantId
        known = [merchant.id for merchant in self._brand.merchants]
        if merchant_id is not None and merchant_id not in known:
            raise IntakeError(
                422,
                "UNKNOWN_MERCHANT",
                f"merchant {merchant_id} is not one this brand buys from ({', '.join(known)})",
            )
        goal_id = goal_id_for(self._brand.name, request.userId, idempotency_key)
        now = utc_now_iso()
        record = GoalRecord(
            goalId=goal_id,
            userId=request.userId,
            brand=self._brand.name,
            goal=request.goal,
            context=request.context,
            status=GoalStatus.RECEIVED,
            requestHash=request.fingerprint(),
            createdAt=now,
            updatedAt=now,
        )
        try:
            self._ledger.store.create(record)
        except GoalAlreadyExists:
            existing = self._ledger.store.require(goal_id)
            if existing.requestHash != record.requestHash:
                raise IntakeError(
                    422, "IDEMPOTENCY_KEY_REUSED", "this Idempotency-Key was used with a different request"
                ) from None
            if existing.executionArn is None:
                # An earlier attempt stored the goal and then failed before its flow started
                # (throttled, timed out): the client's retry finishes the job instead of
                # leaving a goal that nothing will ever plan.
                self._start(request, goal_id, received_noted=existing.auditSeq is not None)
            return GoalAccepted(goalId=goal_id, status=existing.status.value, links=goal_links(goal_id))
        self._start(request, goal_id, received_noted=False)
        return GoalAccepted(goalId=goal_id, status=GoalStatus.RECEIVED.value, links=goal_links(goal_id))

    def _start(self, request: GoalRequest, goal_id: str, *, received_noted: bool) -> None:
        if not received_noted:
            self._ledger.note(
                goal_id,
                actor=f"user:{request.userId}",
                event="goal.received",
                status=GoalStatus.RECEIVED,
                detail={
                    "goal": request.goal,
                    "context": request.context.model_dump(mode="json", exclude_none=True),
                },
            )
        execution_arn = self._start_flow(goal_id)
        self._ledger.store.update(goal_id, updated_at=utc_now_iso(), executionArn=execution_arn)

    def _start_flow(self, goal_id: str) -> str:
        flow_input = {
            "goalId": goal_id,
            "settings": {
                "approvalTimeoutSeconds": self._brand.approvalTimeoutSeconds,
                "undoWindowSeconds": max(self._brand.undoWindowSeconds, 1),
            },
        }
        # Named after the goal: a second start of the same goal starts nothing.
        return self._workflow.start(goal_id, flow_input)
