"""What a Step Functions execution went through, read from its history (moto or AWS alike)."""

from __future__ import annotations

from typing import Any

STATE_ENTERED_SUFFIX = "StateEntered"


def state_transitions(sfn_client: Any, execution_arn: str) -> list[str]:
    """The states the execution entered, in order: one entry per ``*StateEntered`` event.

    Step Functions bills standard workflows by these transitions; a Task's retries
    re-run the task without entering the state again, so they are not counted here."""
    names: list[str] = []
    paginator_args: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = sfn_client.get_execution_history(**paginator_args)
        for event in page["events"]:
            if str(event["type"]).endswith(STATE_ENTERED_SUFFIX):
                names.append(str(event["stateEnteredEventDetails"]["name"]))
        token = page.get("nextToken")
        if not token:
            return names
        paginator_args["nextToken"] = token
