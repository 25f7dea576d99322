"""Issue 11 row 15, the deployed half: the order flow's execution log holds no task token.

Task tokens were in the state machine's execution data, logged at level ALL with execution data: anyone
who could read the log group could resume a waiting flow, that is, approve an order. Step Functions'
logging exists only on AWS, so this half is checked on the synthesized templates (every brand's); the
functions' own logs during an approval are searched on the local stack in
tests/e2e/test_attack_row15_task_tokens.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from infra.settings import PROJECT_ROOT
from tests.infra.conftest import Synthesis, of_type

pytestmark = pytest.mark.xdist_group("infra")


def test_the_order_flow_logs_no_execution_data(synthesis: Synthesis, brand_name: str) -> None:
    resources: dict[str, dict[str, Any]] = synthesis.template_json(brand_name)["Resources"]
    machines = of_type(resources, "AWS::StepFunctions::StateMachine").values()
    # The order flow, its nested step loop and the undo flow: each logs without execution data.
    assert len(machines) == 3
    for machine in machines:
        logging = machine["Properties"]["LoggingConfiguration"]
        assert logging["IncludeExecutionData"] is False
        assert logging["Level"] in {"ALL", "ERROR", "FATAL"}


def _states(node: Any) -> Iterator[dict[str, Any]]:
    """Every state of the definition, inside Map and Parallel states too."""
    if isinstance(node, dict):
        for state in node.get("States", {}).values():
            yield state
            yield from _states(state.get("ItemProcessor") or state.get("Iterator") or {})
            for branch in state.get("Branches", []):
                yield from _states(branch)


def test_the_functions_handed_a_token_are_the_ones_that_never_log_their_event() -> None:
    """A new waitForTaskToken task must come with a handler that keeps its token out of the logs, as
    the approval and notify handlers do (``log_event=False``, ``parse_task_event``)."""
    from infra.function_specs import FUNCTIONS

    by_variable = {spec.asl_variable: spec.name for spec in FUNCTIONS if spec.asl_variable}
    holders = set()
    files = sorted((PROJECT_ROOT / "statemachines").glob("*.asl.json"))
    assert [file.name for file in files] == [
        "order_flow.asl.json",
        "order_steps.asl.json",
        "undo_flow.asl.json",
    ]
    for file in files:
        text = file.read_text(encoding="utf-8")
        # Retry timings are unquoted placeholders (numbers at deploy time); function names are quoted.
        definition = json.loads(re.sub(r'(?<!")\$\{\w+\}', "1", text))
        holders |= {
            by_variable[state["Parameters"]["FunctionName"].removeprefix("${").removesuffix("}")]
            for state in _states(definition)
            if str(state.get("Resource", "")).endswith(".waitForTaskToken")
        }
    # The approval parks its token; since the undo window stopped holding the flow open, nothing else does.
    assert holders == {"approval"}
    for name in holders:
        source = (
            PROJECT_ROOT / "functions" / next(s.source for s in FUNCTIONS if s.name == name) / "app.py"
        ).read_text(encoding="utf-8")
        assert "log_event=False" in source and "parse_task_event(" in source, name
