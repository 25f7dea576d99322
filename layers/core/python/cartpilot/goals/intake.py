"""Taking a goal in: one goal and one execution per (API client, Idempotency-Key), whatever the retries.

A client submits only for the users the brand lets it act for. Powertools idempotency on DynamoDB
answers replays and refuses a reused key with a different body. Behind it, goal ids are random, so
the key is claimed first (a conditional write tying the client's key to a fresh goal id), then the
goal is created under the claimed id, then its flow is started under the goal's name. A retry after
a crash between any two of these writes finds the claim and finishes what is missing: never a second
goal for one key, never a claim without its goal, never a second order flow.
"""

from __future__ import annotations

from cartpilot.brands.access import ApiClient
from cartpilot.brands.config import BrandConfig
from cartpilot.brands.users import UserDirectory
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.model import (
    GoalAccepted,
    GoalRecord,
    GoalRequest,
    GoalStatus,
    new_goal_id,
    submission_key,
)
from cartpilot.goals.ports import AuditHead, GoalAlreadyExists, Workflow
from cartpilot.kernel.clock import utc_now_iso
from cartpilot.kernel.errors import Refusal
from cartpilot.rollout.gate import RolloutGate, RolloutOff


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
        rollout: RolloutGate | None = None,
    ) -> None:
        self._ledger = ledger
        self._workflow = workflow
        self._brand = brand
        self._users = users
        self._rollout = rollout

    def submit(
        self,
        request: GoalRequest,
        idempotency_key: str,
        *,
        client: ApiClient,
        schedule_id: str | None = None,
    ) -> GoalAccepted:
        """``schedule_id``: the goal is an occurrence of that schedule; its key lives in the schedule's
        own space, apart from the client's Idempotency-Keys."""
        self.admit(request, client)
        claimant = client.id if schedule_id is None else f"{client.id}#schedule"
        claim = self._ledger.store.claim_submission(
            submission_key(self._brand.name, claimant, idempotency_key), new_goal_id(), request.fingerprint()
        )
        if claim.requestHash != request.fingerprint():
            raise IntakeError(
                422, "IDEMPOTENCY_KEY_REUSED", "this Idempotency-Key was used with a different request"
            )
        goal_id = claim.goalId
        now = utc_now_iso()
        record = GoalRecord(
            goalId=goal_id,
            userId=request.userId,
            clientId=client.id,
            brand=self._brand.name,
            goal=request.goal,
            context=request.context,
            status=GoalStatus.RECEIVED,
            requestHash=request.fingerprint(),
            createdAt=now,
            updatedAt=now,
            scheduleId=schedule_id,
        )
        return self._create(request, record, client)

    def admit(self, request: GoalRequest, client: ApiClient) -> None:
        """Refuses a request this client may not make for this user (``IntakeError``); stores nothing."""
        # Before anything else, and the same answer for a user that does not exist: a client
        # learns nothing about the users it may not act for.
        if not client.may_act_for(request.userId):
            raise IntakeError(403, "USER_NOT_ALLOWED", f"this client may not act for user {request.userId}")
        if self._users.get(request.userId) is None:
            raise IntakeError(422, "UNKNOWN_USER", f"user {request.userId} is not known to this brand")
        if request.context.budget is not None and request.context.budget.currency != self._brand.currency:
            raise IntakeError(422, "BUDGET_CURRENCY", f"budget must be in {self._brand.currency}")
        if self._rollout is not None:
            try:
                self._rollout.check_accepting()
            except RolloutOff as exc:
                raise IntakeError(503, "ROLLOUT_OFF", str(exc)) from None
        merchant_id = request.context.merchantId
        known = [merchant.id for merchant in self._brand.merchants]
        if merchant_id is not None and merchant_id not in known:
            raise IntakeError(
                422,
                "UNKNOWN_MERCHANT",
                f"merchant {merchant_id} is not one this brand buys from ({', '.join(known)})",
            )

    def _create(self, request: GoalRequest, record: GoalRecord, client: ApiClient) -> GoalAccepted:
        goal_id = record.goalId
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
                self._start(
                    request,
                    goal_id,
                    client,
                    # The received record may precede the chain head's first move (``_start``).
                    received_noted=existing.auditSeq is not None or bool(self._ledger.audit.records(goal_id)),
                    schedule_id=record.scheduleId,
                )
            return GoalAccepted(goalId=goal_id, status=existing.status.value, links=goal_links(goal_id))
        self._start(request, goal_id, client, received_noted=False, schedule_id=record.scheduleId)
        return GoalAccepted(goalId=goal_id, status=GoalStatus.RECEIVED.value, links=goal_links(goal_id))

    def _start(
        self,
        request: GoalRequest,
        goal_id: str,
        client: ApiClient,
        *,
        received_noted: bool,
        schedule_id: str | None = None,
    ) -> None:
        received: AuditHead | None = None
        if not received_noted:
            record = self._ledger.note(
                goal_id,
                actor=f"user:{request.userId}",
                event="goal.received",
                status=GoalStatus.RECEIVED,
                detail={
                    "client": client.id,
                    "goal": request.goal,
                    "context": request.context.model_dump(mode="json", exclude_none=True),
                    **({"scheduleId": schedule_id} if schedule_id is not None else {}),
                },
                # The flow's id is stored with the chain head in one write, once the flow started.
                move_head=False,
            )
            received = AuditHead(seq=record.seq, hash=record.hash)
        execution_arn = self._start_flow(goal_id)
        self._ledger.store.update(
            goal_id, updated_at=utc_now_iso(), audit=received, executionArn=execution_arn
        )

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
