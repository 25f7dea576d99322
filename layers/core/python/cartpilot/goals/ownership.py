"""A goal belongs to the API client that submitted it: no other client may read, undo or audit it."""

from __future__ import annotations

from cartpilot.brands.access import ApiClient
from cartpilot.goals.model import GoalRecord
from cartpilot.goals.ports import GoalStore


def goal_of_client(store: GoalStore, goal_id: str, client: ApiClient) -> GoalRecord | None:
    """The goal, when ``client`` submitted it; None otherwise, exactly as for a goal that does not
    exist, so a client cannot even learn that another client's goal id is taken."""
    goal = store.get(goal_id)
    if goal is None or goal.clientId != client.id:
        return None
    return goal
