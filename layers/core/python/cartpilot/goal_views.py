"""What a client sees of a goal, and of its audit trail."""

from __future__ import annotations

from typing import Any

from cartpilot.audit import verify_chain
from cartpilot.goal_store import GoalRecord
from cartpilot.ledger import GoalLedger
from cartpilot.signing import KeyRing


def goal_view(goal: GoalRecord) -> dict[str, Any]:
    return {
        "goalId": goal.goalId,
        "userId": goal.userId,
        "status": goal.status.value,
        "goal": goal.goal,
        "plan": goal.plan,
        "planHash": goal.planHash,
        "verdict": goal.verdict,
        "approval": goal.approval,
        "steps": [step.model_dump(mode="json") for step in goal.steps],
        "receipt": goal.receipt,
        "undoUntil": goal.undoUntil,
        "failure": goal.failure,
        "createdAt": goal.createdAt,
        "updatedAt": goal.updatedAt,
    }


def audit_view(goal: GoalRecord, ledger: GoalLedger, keyring: KeyRing | None = None) -> dict[str, Any]:
    """The records in order and the verification: chain, head, and (given the key ring) plan signatures."""
    records = ledger.audit.records(goal.goalId)
    verification = verify_chain(records, expected_head=goal.auditHead, keyring=keyring)
    return {
        "goalId": goal.goalId,
        "records": [record.model_dump(mode="json") for record in records],
        "verification": verification.model_dump(mode="json"),
    }
