"""A goal's lifecycle: which status may follow which, and which statuses are final.

Every store enforces this table when it moves a goal (DynamoDB as a condition on the
update), so two writers racing cannot take a goal somewhere it may not go.
"""

from __future__ import annotations

from cartpilot.goals.model import GoalStatus


class InvalidTransition(RuntimeError):
    """The goal is not in a status this change may start from."""


# Which statuses a goal may move to from where. Re-entering the same status is
# allowed so a retried Lambda invocation is harmless.
ALLOWED_FROM: dict[GoalStatus, frozenset[GoalStatus]] = {
    # EXECUTING -> PLANNING: a price moved after approval, the session was undone, and the goal is planned again.
    GoalStatus.PLANNING: frozenset({GoalStatus.RECEIVED, GoalStatus.PLANNING, GoalStatus.EXECUTING}),
    GoalStatus.VALIDATING: frozenset(
        {GoalStatus.PLANNING, GoalStatus.VALIDATING, GoalStatus.AWAITING_APPROVAL}
    ),
    GoalStatus.AWAITING_APPROVAL: frozenset({GoalStatus.VALIDATING, GoalStatus.AWAITING_APPROVAL}),
    GoalStatus.EXECUTING: frozenset(
        {GoalStatus.VALIDATING, GoalStatus.AWAITING_APPROVAL, GoalStatus.EXECUTING}
    ),
    GoalStatus.COMPLETED: frozenset({GoalStatus.EXECUTING, GoalStatus.COMPLETED}),
    GoalStatus.DENIED: frozenset({GoalStatus.VALIDATING, GoalStatus.DENIED}),
    GoalStatus.REJECTED: frozenset({GoalStatus.AWAITING_APPROVAL, GoalStatus.REJECTED}),
    GoalStatus.EXPIRED: frozenset({GoalStatus.AWAITING_APPROVAL, GoalStatus.EXPIRED}),
    # Compensation may start before the first step records EXECUTING (it failed on entry).
    GoalStatus.COMPENSATED: frozenset(
        {GoalStatus.VALIDATING, GoalStatus.AWAITING_APPROVAL, GoalStatus.EXECUTING, GoalStatus.COMPENSATED}
    ),
    GoalStatus.UNDONE: frozenset({GoalStatus.COMPLETED, GoalStatus.UNDONE}),
    GoalStatus.RETURN_REQUESTED: frozenset({GoalStatus.COMPLETED, GoalStatus.RETURN_REQUESTED}),
    GoalStatus.RETURNED: frozenset({GoalStatus.RETURN_REQUESTED, GoalStatus.RETURNED}),
    # Only a running checkout can be handed to the shopper; nothing was charged, nothing follows.
    GoalStatus.HANDED_OFF: frozenset({GoalStatus.EXECUTING, GoalStatus.HANDED_OFF}),
    # The validator routed the plan "planned-only"; nothing mutating ran.
    GoalStatus.PLANNED_ONLY: frozenset({GoalStatus.VALIDATING, GoalStatus.PLANNED_ONLY}),
    GoalStatus.FAILED: frozenset(
        {
            GoalStatus.RECEIVED,
            GoalStatus.PLANNING,
            GoalStatus.VALIDATING,
            GoalStatus.AWAITING_APPROVAL,
            GoalStatus.FAILED,
        }
    ),
    # Anything not yet final can need a human.
    GoalStatus.NEEDS_ATTENTION: frozenset(
        {
            GoalStatus.RECEIVED,
            GoalStatus.PLANNING,
            GoalStatus.VALIDATING,
            GoalStatus.AWAITING_APPROVAL,
            GoalStatus.EXECUTING,
            GoalStatus.COMPLETED,
            GoalStatus.RETURN_REQUESTED,
            GoalStatus.NEEDS_ATTENTION,
        }
    ),
}

# Statuses a goal never leaves; COMPLETED can still become UNDONE (or RETURN_REQUESTED, then
# RETURNED) inside the undo window.
FINAL_STATUSES = frozenset(
    {
        GoalStatus.DENIED,
        GoalStatus.REJECTED,
        GoalStatus.EXPIRED,
        GoalStatus.COMPENSATED,
        GoalStatus.UNDONE,
        GoalStatus.FAILED,
        GoalStatus.NEEDS_ATTENTION,
        GoalStatus.HANDED_OFF,
        GoalStatus.RETURNED,
        GoalStatus.PLANNED_ONLY,
    }
)
SETTLED_STATUSES = FINAL_STATUSES | {GoalStatus.COMPLETED}


def may_move(origin: GoalStatus, to: GoalStatus) -> bool:
    """RECEIVED has no row: goals start there and never go back."""
    return origin in ALLOWED_FROM.get(to, frozenset())
