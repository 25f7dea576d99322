"""Each Lambda handler on its own, against moto and the real sandbox merchant on loopback."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from cartpilot.adapters.aws.goals_table import DynamoDBGoalStore
from cartpilot.goals.model import GoalContext, GoalRecord, GoalStatus
from cartpilot.goals.ports import GoalStore
from cartpilot_local.gateway import proxy_event
from cartpilot_local.lambda_runtime import LambdaContext, load_handler
from cartpilot_local.servers import RunningServer
from cartpilot_local.stack import ASL_PATH, substitute_definition
from tests.conftest import SEED_GOAL

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
LOW_RISK_GOAL = "Buy me a pair of running socks and ship them to my home address"


def context(name: str) -> LambdaContext:
    return LambdaContext(
        function_name=name, invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
    )


class Functions:
    """Loads a handler the way Lambda does: the function's app.py, called with (event, context)."""

    def __getattr__(self, name: str) -> Any:
        directory = FUNCTIONS / name if (FUNCTIONS / name).is_dir() else FUNCTIONS / "connectors" / name
        handler = load_handler(directory / "app.py")
        return lambda event: handler(event, context(name))


@pytest.fixture
def env(
    aws_tables: dict[str, Any], merchant_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    httpx.post(f"{merchant_server.url}/_sandbox/reset").raise_for_status()
    topic = boto3.client("sns").create_topic(Name="cartpilot-sandbox-notify")["TopicArn"]
    monkeypatch.setenv("MERCHANT_URL", merchant_server.url)
    monkeypatch.setenv("NOTIFY_TOPIC_ARN", topic)
    staff_topic = boto3.client("sns").create_topic(Name="cartpilot-sandbox-staff")["TopicArn"]
    monkeypatch.setenv("STAFF_TOPIC_ARN", staff_topic)
    monkeypatch.setenv("APPROVAL_BASE_URL", "https://api.example.com/v1")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    from cartpilot import wiring

    wiring.reset()
    yield {
        "topic": topic,
        "merchant": merchant_server,
        "store": DynamoDBGoalStore(aws_tables["dynamodb"].Table(os.environ["GOALS_TABLE"])),
    }
    wiring.reset()


def new_goal(store: GoalStore, goal: str, goal_id: str = "g-handler-test", user: str = "user-1") -> str:
    store.create(
        GoalRecord(goalId=goal_id, userId=user, brand="sandbox", goal=goal, context=GoalContext(),
                   status=GoalStatus.RECEIVED, requestHash="h", createdAt="2026-11-25T00:00:00Z",
                   updatedAt="2026-11-25T00:00:00Z")
    )  # fmt: skip
    return goal_id


def planned_and_checked(
    fn: Functions, store: GoalStore, goal: str
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    goal_id = new_goal(store, goal)
    ref = fn.planner({"goalId": goal_id})
    snapshot = fn.catalog({"goalId": goal_id, **ref})
    verdict = fn.validator({"goalId": goal_id, **ref, "priceCheck": snapshot})
    return goal_id, ref, verdict


def ledger(merchant: RunningServer) -> dict[str, list[dict[str, Any]]]:
    return httpx.get(f"{merchant.url}/_sandbox/ledger").json()


def test_planner_stores_a_concrete_plan_and_returns_a_reference(env):
    fn, store = Functions(), env["store"]
    goal_id = new_goal(store, SEED_GOAL)
    ref = fn.planner({"goalId": goal_id})
    assert [step["action"] for step in ref["steps"]] == [
        "checkout.create", "checkout.add_items", "fulfillment.select", "payment.complete",
    ]  # fmt: skip
    goal = store.require(goal_id)
    assert goal.status is GoalStatus.PLANNING and goal.planHash == ref["planHash"]
    assert goal.current_plan().summary.items[0].itemId == "rs-stride-lite-black-42"
    assert len(json.dumps(ref)) < 1000, "the flow carries a reference, not the plan"


def test_catalog_and_validator_decide_the_seed_plan_needs_approval(env):
    fn, store = Functions(), env["store"]
    goal_id, ref, verdict = planned_and_checked(fn, store, SEED_GOAL)
    assert verdict["route"] == "approve" and verdict["planHash"] == ref["planHash"]
    goal = store.require(goal_id)
    assert goal.status is GoalStatus.VALIDATING
    assert {item.id for item in goal.priceCheck.items} == {
        "rs-stride-lite-black-42",
        "gift-wrap-standard",
    }


def test_validator_refuses_a_plan_changed_behind_its_back(env):
    fn, store = Functions(), env["store"]
    goal_id = new_goal(store, SEED_GOAL)
    ref = fn.planner({"goalId": goal_id})
    snapshot = fn.catalog({"goalId": goal_id, **ref})
    with pytest.raises(Exception, match="not the plan"):
        fn.validator(
            {
                "goalId": goal_id,
                "planId": ref["planId"],
                "planHash": "sha256:" + "0" * 64,
                "priceCheck": snapshot,
            }
        )


def test_approval_parks_the_token_and_sends_a_signed_link(env):
    fn, store = Functions(), env["store"]
    goal_id, ref, _ = planned_and_checked(fn, store, SEED_GOAL)
    result = fn.approval({"goalId": goal_id, **ref, "taskToken": "token-that-must-stay-secret"})
    goal = store.require(goal_id)
    assert goal.status is GoalStatus.AWAITING_APPROVAL and goal.approval.approvalId == result["approvalId"]
    from moto.sns.models import sns_backends

    (sent,) = sns_backends["123456789012"]["us-east-1"].topics[env["topic"]].sent_notifications
    message = json.loads(sent[1])
    assert message["link"].startswith(f"https://api.example.com/v1/approvals/{result['approvalId']}?exp=")
    assert "token-that-must-stay-secret" not in json.dumps(message) + json.dumps(goal.model_dump(mode="json"))


def step_event(
    goal_id: str, ref: dict[str, Any], step: dict[str, str], outputs: dict[str, Any]
) -> dict[str, Any]:
    return {
        "goalId": goal_id,
        "planId": ref["planId"],
        "planHash": ref["planHash"],
        "step": step,
        "outputs": outputs,
    }


def run_steps(fn: Functions, goal_id: str, ref: dict[str, Any]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    connectors = {"checkout": fn.checkout, "fulfillment": fn.fulfillment, "payment": fn.payment}
    for step in ref["steps"]:
        outputs = connectors[step["action"].split(".")[0]](step_event(goal_id, ref, step, outputs))
    return outputs


def test_connectors_run_an_auto_plan_and_a_duplicate_delivery_changes_nothing(env):
    fn, store = Functions(), env["store"]
    goal_id, ref, verdict = planned_and_checked(fn, store, LOW_RISK_GOAL)
    assert verdict["route"] == "auto"
    outputs = run_steps(fn, goal_id, ref)
    payment_step = ref["steps"][-1]
    before_payment = {key: value for key, value in outputs.items() if key != payment_step["id"]}
    again = fn.payment(step_event(goal_id, ref, payment_step, before_payment))
    assert again == outputs
    books = ledger(env["merchant"])
    assert len(books["orders"]) == 1 and len(books["charges"]) == 1
    assert store.require(goal_id).status is GoalStatus.EXECUTING


def test_connectors_lead_the_flow_from_the_planners_first_step_to_confirmation(env):
    """As the state machine runs them: each answer names the step the flow runs next."""
    fn, store = Functions(), env["store"]
    goal_id, ref, verdict = planned_and_checked(fn, store, LOW_RISK_GOAL)
    assert verdict["route"] == "auto" and ref["next"] == ref["steps"][0]
    connectors = {"checkout": fn.checkout, "fulfillment": fn.fulfillment, "payment": fn.payment}
    step, outputs, answers = ref["next"], {}, []
    while step["action"] != "orders.confirm":
        answer = connectors[step["action"].split(".")[0]](
            {**step_event(goal_id, ref, step, outputs), "answer": "next"}
        )
        answers.append(answer)
        step, outputs = answer["next"], answer["outputs"]
    assert step == {"id": "confirm", "action": "orders.confirm"}
    assert [answer["next"] for answer in answers] == [*ref["steps"][1:], step]
    assert sorted(outputs) == sorted(s["id"] for s in ref["steps"])
    # A duplicate delivery of the last step is answered from the stored result: the same next step.
    last = ref["steps"][-1]
    again = fn.payment({**step_event(goal_id, ref, last, answers[-2]["outputs"]), "answer": "next"})
    assert again == answers[-1]
    books = ledger(env["merchant"])
    assert len(books["orders"]) == 1 and len(books["charges"]) == 1


def test_connectors_refuse_an_approval_plan_that_was_not_approved(env):
    fn, store = Functions(), env["store"]
    goal_id, ref, _ = planned_and_checked(fn, store, SEED_GOAL)
    with pytest.raises(Exception, match="approved"):
        fn.checkout(step_event(goal_id, ref, ref["steps"][0], {}))
    assert ledger(env["merchant"])["orders"] == []


def test_a_connector_refuses_an_action_it_does_not_serve(env):
    fn, store = Functions(), env["store"]
    goal_id, ref, _ = planned_and_checked(fn, store, LOW_RISK_GOAL)
    with pytest.raises(Exception, match="does not serve"):
        fn.payment(step_event(goal_id, ref, ref["steps"][0], {}))


def test_orders_confirm_and_notify_complete_the_goal(env):
    fn, store = Functions(), env["store"]
    goal_id, ref, _ = planned_and_checked(fn, store, LOW_RISK_GOAL)
    outputs = fn.orders(
        {
            **step_event(
                goal_id, ref, {"id": "confirm", "action": "orders.confirm"}, run_steps(fn, goal_id, ref)
            )
        }
    )
    receipt = fn.notify({"goalId": goal_id, "kind": "receipt", "outputs": outputs})
    goal = store.require(goal_id)
    assert goal.status is GoalStatus.COMPLETED and goal.receipt.orderId == receipt["orderId"]
    assert goal.receipt.orderId == ledger(env["merchant"])["orders"][0]["id"]


def test_compensator_cancels_what_ran(env, sandbox_merchant):
    fn, store = Functions(), env["store"]
    goal_id, ref, _ = planned_and_checked(fn, store, LOW_RISK_GOAL)
    first = ref["steps"][0]
    outputs = fn.checkout(step_event(goal_id, ref, first, {}))
    result = fn.compensator({"goalId": goal_id, "planId": ref["planId"], "outputs": outputs,
                             "error": {"Error": "MerchantRejected", "Cause": "{}"}})  # fmt: skip
    assert result["status"] == "COMPENSATED" and result["undone"]
    assert store.require(goal_id).status is GoalStatus.COMPENSATED
    merchant = sandbox_merchant.merchant()  # the sandbox answers only a platform it can identify
    assert merchant.checkout.get(outputs[first["id"]]["checkoutId"]).status == "canceled"
    merchant.close()


def test_notify_records_a_denial_with_its_reasons(env):
    fn, store = Functions(), env["store"]
    goal_id, _, verdict = planned_and_checked(fn, store, "Buy me a kitchen knife")
    assert verdict["route"] == "deny"
    fn.notify({"goalId": goal_id, "kind": "outcome", "status": "DENIED"})
    goal = store.require(goal_id)
    assert goal.status is GoalStatus.DENIED and goal.failure


@pytest.fixture
def api(env: dict[str, Any]) -> Any:
    sfn = boto3.client("stepfunctions")
    role = boto3.client("iam").create_role(RoleName="flow", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    names = (
        "Planner",
        "Catalog",
        "Validator",
        "Approval",
        "Checkout",
        "Fulfillment",
        "Payment",
        "Orders",
        "Notify",
        "Compensator",
    )
    definition = substitute_definition(
        ASL_PATH.read_text(),
        {f"{name}FunctionArn": f"arn:aws:lambda:us-east-1:123456789012:function:{name}" for name in names}
        # Only the api's start of the order flow is under test here: its nested step loop never runs.
        | {"OrderStepsStateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:steps"},
    )
    arn = sfn.create_state_machine(name="flow", definition=definition, roleArn=role)["stateMachineArn"]
    os.environ["STATE_MACHINE_ARN"] = arn
    from cartpilot.wiring.settings import reset_settings

    reset_settings()
    handler = Functions().api

    def call(
        method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        raw = json.dumps(body).encode() if body is not None else b""
        all_headers = {"content-type": "application/json", **(headers or {})}
        response = handler(proxy_event(method, path, {k.lower(): v for k, v in all_headers.items()}, {}, raw))
        text = response["body"]
        return response["statusCode"], json.loads(text) if text and text.startswith(("{", "[")) else text

    call.sfn = sfn  # type: ignore[attr-defined]
    call.state_machine_arn = arn  # type: ignore[attr-defined]
    yield call
    del os.environ["STATE_MACHINE_ARN"]


def test_api_accepts_a_goal_once_per_key_and_starts_one_execution(api):
    status, body = api(
        "POST", "/goals", {"userId": "user-1", "goal": LOW_RISK_GOAL}, {"Idempotency-Key": "k-1"}
    )
    assert status == 202 and body["status"] == "RECEIVED"
    again_status, again = api(
        "POST", "/goals", {"userId": "user-1", "goal": LOW_RISK_GOAL}, {"Idempotency-Key": "k-1"}
    )
    assert (again_status, again["goalId"]) == (202, body["goalId"])
    executions = api.sfn.list_executions(stateMachineArn=api.state_machine_arn)["executions"]
    assert [execution["name"] for execution in executions] == [body["goalId"]]
    status, goal = api("GET", f"/goals/{body['goalId']}")
    assert status == 200 and goal["status"] == "RECEIVED"


def test_api_refuses_bad_input_without_changing_anything(api):
    assert api("POST", "/goals", {"userId": "user-1", "goal": LOW_RISK_GOAL})[0] == 400
    assert api("POST", "/goals", {"userId": "user-1"}, {"Idempotency-Key": "k"})[0] == 422
    assert api("GET", "/goals/g-nope")[0] == 404
    assert api.sfn.list_executions(stateMachineArn=api.state_machine_arn)["executions"] == []


def test_api_serves_its_openapi_document(api):
    status, document = api("GET", "/openapi.json")
    assert status == 200 and "/goals/{goal_id}/undo" in document["paths"]
