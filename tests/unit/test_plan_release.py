"""Plans name the release that made them, inside their hash; plans stored before keep their hash.
The plan's cost summary puts the planner's model cost beside the order's total."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from cartpilot.brands.config import BrandConfig
from cartpilot.brands.users import UserDirectory
from cartpilot.goals.model import GoalContext, GoalRecord, GoalStatus
from cartpilot.goals.views import goal_view
from cartpilot.kernel.money import Money
from cartpilot.planning.service import plan_goal, with_release
from cartpilot.plans.costs import plan_cost_summary
from cartpilot.plans.model import Plan, TokenUsage, hash_plan_document
from tests.fakes.plan_signing import LocalPlanSigner
from tests.unit.stages import FixedPlanner, received_goal_ledger

RELEASE = "rel-0123456789ab"
SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "plan.schema.json"


def test_a_plan_stored_before_releases_keeps_its_hash(seed_plan: Plan):
    stored = seed_plan.model_dump(mode="json")
    del stored["release"]  # what the goals table holds for a plan made before plans named a release
    bound = hash_plan_document(stored)  # the hash its approval and audit records bound
    again = Plan.model_validate(stored)
    assert again.release is None and again.plan_hash() == bound
    # The goal view shows the field as null; hashing that document gives the same hash.
    assert hash_plan_document(again.model_dump(mode="json")) == bound


def test_the_release_is_inside_the_plan_hash(seed_plan: Plan):
    stamped = with_release(seed_plan, RELEASE)
    assert stamped.release == RELEASE and stamped.plan_hash() != seed_plan.plan_hash()
    assert with_release(seed_plan, "rel-ba9876543210").plan_hash() != stamped.plan_hash()
    assert Plan.model_validate(stamped.model_dump(mode="json")).plan_hash() == stamped.plan_hash()


@pytest.mark.parametrize("release", ["rel-XYZ", "1.2.3", "rel-0123456789abc", ""])
def test_a_malformed_release_is_refused(seed_plan: Plan, release: str):
    with pytest.raises(ValidationError):
        with_release(seed_plan, release)


def test_the_exported_schema_documents_the_release():
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    field = schema["properties"]["release"]
    assert {"pattern": "^rel-[0-9a-f]{12}$", "type": "string"} in field["anyOf"]
    assert "release" not in schema["required"]


def test_planning_stamps_the_release_on_the_plan_and_its_record(
    seed_plan: Plan, brand: BrandConfig, users: UserDirectory
):
    ledger = received_goal_ledger(seed_plan, brand)
    reference = plan_goal(
        seed_plan.goalId, ledger=ledger, planner=FixedPlanner(seed_plan), users=users, brand=brand,
        signer=LocalPlanSigner(), release=RELEASE,
    )  # fmt: skip
    goal = ledger.store.require(seed_plan.goalId)
    assert isinstance(goal.plan, Plan) and goal.plan.release == RELEASE
    assert reference.planHash == goal.planHash == goal.plan.plan_hash()
    created = next(r for r in ledger.audit.records(seed_plan.goalId) if r.event == "plan.created")
    assert created.detail["release"] == RELEASE and created.planHash == goal.planHash


def _with_planner(plan: Plan, **fields: object) -> Plan:
    return plan.model_copy(update={"planner": plan.planner.model_copy(update=fields)})


def test_a_rules_plan_costs_nothing_to_plan(seed_plan: Plan):
    summary = plan_cost_summary(seed_plan)
    assert summary.total == seed_plan.summary.total
    assert summary.plannerCost == Money.zero(seed_plan.currency)
    assert (summary.plannerKind, summary.plannerModel) == ("rules", None)
    assert summary.planner_cost_words() == "no model"


def test_a_model_plan_shows_its_model_cost_beside_the_total(seed_plan: Plan):
    cost = Money(amount_minor=3, currency="CNY")
    plan = _with_planner(
        seed_plan, kind="openai", model="qwen-plus", estimatedCost=cost,
        usage=TokenUsage(promptTokens=2900, completionTokens=400),
    )  # fmt: skip
    summary = plan_cost_summary(plan)
    assert (summary.total, summary.plannerCost, summary.plannerModel) == (
        seed_plan.summary.total,
        cost,
        "qwen-plus",
    )
    assert summary.planner_cost_words() == "0.03 CNY (qwen-plus)"


def test_an_unpriced_model_is_not_shown_as_free(seed_plan: Plan):
    plan = _with_planner(seed_plan, kind="bedrock", model="qwen.qwen3-235b", estimatedCost=None)
    summary = plan_cost_summary(plan)
    assert summary.plannerCost is None
    assert summary.planner_cost_words() == "not priced (qwen.qwen3-235b)"


def test_a_fallback_plan_shows_what_the_model_cost_before_the_rules_planner_stood_in(seed_plan: Plan):
    cost = Money(amount_minor=2, currency="CNY")
    plan = _with_planner(seed_plan, fallbackFrom="openai", model="qwen-plus", estimatedCost=cost)
    summary = plan_cost_summary(plan)
    assert (summary.plannerKind, summary.plannerCost, summary.plannerModel) == ("rules", cost, "qwen-plus")


def test_the_goal_view_carries_the_plan_summary(seed_plan: Plan):
    goal = GoalRecord(
        goalId=seed_plan.goalId, userId=seed_plan.userId, brand="sandbox", goal=seed_plan.goal,
        context=GoalContext(), status=GoalStatus.AWAITING_APPROVAL, requestHash="r",
        createdAt="2027-01-20T12:00:00Z", updatedAt="2027-01-20T12:00:00Z",
        plan=seed_plan, planHash=seed_plan.plan_hash(),
    )  # fmt: skip
    shown = goal_view(goal).model_dump(mode="json")
    assert shown["planSummary"] == {
        "total": seed_plan.summary.total.model_dump(mode="json"),
        "plannerCost": {"amount_minor": 0, "currency": seed_plan.currency},
        "plannerKind": "rules",
        "plannerModel": None,
    }
    without_plan = goal.model_copy(update={"plan": None, "planHash": None})
    assert goal_view(without_plan).planSummary is None
