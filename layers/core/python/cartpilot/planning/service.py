"""The planning stage: load the goal, plan it, store the plan, hand the flow a small reference."""

from __future__ import annotations

from typing import Any, Protocol

from cartpilot.audit.snapshots import PlanSigner, signed_plan_detail
from cartpilot.brands.config import BrandConfig
from cartpilot.brands.users import UserDirectory
from cartpilot.execution.cursor import first_step
from cartpilot.goals.events import PlanReference, StepRef
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.model import GoalStatus
from cartpilot.kernel.clock import today
from cartpilot.planning.rules import PlanningFailed, PlanningRequest
from cartpilot.plans.model import Plan, PlannerInfo


class Planner(Protocol):
    kind: str

    def plan(self, request: PlanningRequest) -> Plan: ...


def planner_audit(info: PlannerInfo) -> dict[str, Any]:
    """What the audit keeps of a planner's work: prompt identity, model, tokens, cost, rounds, fallback."""
    return info.model_dump(mode="json", exclude_none=True)


def with_release(plan: Plan, release: str) -> Plan:
    """The plan naming the release it was made under (validated: a malformed id is refused)."""
    return Plan.model_validate({**plan.model_dump(mode="json"), "release": release})


def plan_goal(
    goal_id: str,
    *,
    ledger: GoalLedger,
    planner: Planner,
    users: UserDirectory,
    brand: BrandConfig,
    signer: PlanSigner,
    release: str | None = None,
) -> PlanReference:
    """Plans the goal and records the plan; the audit record carries the signed plan snapshot.
    ``release``: the release id the plan is made under (``cartpilot.release``), kept on the plan."""
    goal = ledger.store.require(goal_id)
    ledger.transition(goal_id, GoalStatus.PLANNING, actor=f"planner:{planner.kind}", event="planning.started")
    profile = users.get(goal.userId)
    if profile is None:
        raise PlanningFailed(f"user {goal.userId} has no profile with this brand")
    try:
        plan = planner.plan(
            PlanningRequest(
                goalId=goal_id,
                goal=goal.goal,
                context=goal.context,
                profile=profile,
                brand=brand,
                today=today(),
            )
        )
    except PlanningFailed as failed:
        if failed.planner is not None:
            # A model was asked before the plan was refused: its tokens and cost belong in the audit.
            ledger.note(
                goal_id,
                actor=f"planner:{failed.planner.kind}",
                event="planning.refused",
                detail={"reason": str(failed)[:300], "planner": planner_audit(failed.planner)},
            )
        raise
    if release is not None:
        plan = with_release(plan, release)
    plan_hash = plan.plan_hash()
    ledger.note(
        goal_id,
        actor=f"planner:{plan.planner.kind}",
        event="plan.created",
        plan_hash=plan_hash,
        detail={
            "planId": plan.planId,
            "planner": planner_audit(plan.planner),
            "steps": [f"{step.id} {step.action.value}" for step in plan.steps],
            "total": plan.summary.total.model_dump(mode="json"),
            "recipientCity": plan.summary.recipient.address.city,
            **signed_plan_detail(goal_id, plan, signer),
        },
        # The plan is stored in the write that points the chain head at its record.
        updated_at=plan.createdAt,
        plan=plan.model_dump(mode="json"),
        planHash=plan_hash,
    )
    return PlanReference(
        planId=plan.planId,
        planHash=plan_hash,
        steps=[StepRef.model_validate(step) for step in plan.execution_steps()],
        next=StepRef.model_validate(first_step(plan)),
    )
