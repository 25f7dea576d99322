import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from cartpilot.plans.model import Plan, plan_json_schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "plan.schema.json"


def test_exported_schema_matches_the_model():
    exported = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert exported == plan_json_schema(), "schemas/plan.schema.json is stale: run `make schema`"


def test_plan_round_trips_and_hash_is_stable(seed_plan):
    document = seed_plan.model_dump(mode="json")
    again = Plan.model_validate(document)
    assert again.plan_hash() == seed_plan.plan_hash()
    assert seed_plan.plan_hash().startswith("sha256:")


def test_any_change_changes_the_hash(seed_plan):
    document = seed_plan.model_dump(mode="json")
    document["summary"]["total"]["amount_minor"] += 1
    assert Plan.model_validate(document).plan_hash() != seed_plan.plan_hash()


def test_unknown_actions_and_extra_fields_are_refused(seed_plan):
    document = seed_plan.model_dump(mode="json")
    document["steps"][0]["action"] = "wire.transfer"
    with pytest.raises(ValidationError):
        Plan.model_validate(document)
    document = seed_plan.model_dump(mode="json")
    document["steps"][0]["args"]["shipTo"] = "somewhere else"
    with pytest.raises(ValidationError):
        Plan.model_validate(document)


def test_execution_steps_are_small_references(seed_plan):
    steps = seed_plan.execution_steps()
    assert steps == [{"id": s.id, "action": s.action.value} for s in seed_plan.steps]
    assert len(json.dumps(steps)) < 400
