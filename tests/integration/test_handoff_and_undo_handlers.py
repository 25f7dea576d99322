"""The handlers around a hand-off and a merchant without undo, on moto's DynamoDB and SNS."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from cartpilot.brands.config import load_brand
from cartpilot.brands.users import directory_for
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.model import GoalContext, GoalRecord, GoalStatus, Receipt, ReceiptLine
from cartpilot_local.gateway import proxy_event
from cartpilot_local.lambda_runtime import LambdaContext, load_handler
from tests.fakes import FakeMerchant
from tests.fakes.merchant import cny
from tests.unit.stages import socks_plan

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
CONTINUE_URL = "https://shop.example/checkout-sessions/cs-9"


@pytest.fixture
def env(aws_tables: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[GoalLedger]:
    topic = boto3.client("sns").create_topic(Name="cartpilot-sandbox-notify")["TopicArn"]
    monkeypatch.setenv("NOTIFY_TOPIC_ARN", topic)
    monkeypatch.setenv("MERCHANT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("APPROVAL_BASE_URL", "https://api.example.com/v1")
    monkeypatch.setenv("STATE_MACHINE_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:flow")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    from cartpilot import wiring

    wiring.reset()
    yield wiring.ledger()
    wiring.reset()


def handler(name: str) -> Any:
    directory = FUNCTIONS / name if (FUNCTIONS / name).is_dir() else FUNCTIONS / "connectors" / name
    run = load_handler(directory / "app.py")
    arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
    return lambda event: run(event, LambdaContext(function_name=name, invoked_function_arn=arn))


def api(method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    raw = json.dumps(body).encode() if body is not None else b""
    all_headers = {"content-type": "application/json", **(headers or {})}
    response = handler("api")(proxy_event(method, path, all_headers, {}, raw))
    return response["statusCode"], json.loads(response["body"])


def executing_goal(ledger: GoalLedger, *, undo: str = "cancel", goal_id: str = "g-handoff") -> str:
    brand = load_brand("sandbox")
    merchant = FakeMerchant()
    plan = socks_plan(merchant, brand, directory_for(brand), goal_id=goal_id, undo=undo)  # type: ignore[arg-type]
    ledger.store.create(
        GoalRecord(goalId=goal_id, userId="user-1", clientId="assistant", brand="sandbox", goal=plan.goal,
                   context=GoalContext(),
                   status=GoalStatus.RECEIVED, requestHash="h", createdAt="2026-11-25T00:00:00Z",
                   updatedAt="2026-11-25T00:00:00Z", plan=plan, planHash=plan.plan_hash())
    )  # fmt: skip
    for status in (GoalStatus.PLANNING, GoalStatus.VALIDATING, GoalStatus.EXECUTING):
        ledger.transition(goal_id, status, actor="test", event=f"test.{status.value.lower()}")
    return goal_id


def sent_messages() -> list[dict[str, Any]]:
    from moto.sns.models import sns_backends

    topic = sns_backends["123456789012"]["us-east-1"].topics[os.environ["NOTIFY_TOPIC_ARN"]]
    return [json.loads(message) for _id, message, _subject, _attrs, _group in topic.sent_notifications]


def test_a_handed_off_goal_is_announced_and_shows_its_continue_url(env: GoalLedger):
    goal_id = executing_goal(env)
    env.hand_off(goal_id, CONTINUE_URL, "The merchant needs you to confirm the order")

    answer = handler("notify")(
        {"goalId": goal_id, "kind": "handed_off", "error": {"Error": "MerchantEscalation"}}
    )

    assert answer == {"status": "HANDED_OFF", "continueUrl": CONTINUE_URL}
    (message,) = sent_messages()
    assert (message["kind"], message["continueUrl"]) == ("handed_off", CONTINUE_URL)
    status, goal = api("GET", f"/goals/{goal_id}")
    assert status == 200
    assert (goal["status"], goal["continueUrl"], goal["undoUntil"]) == ("HANDED_OFF", CONTINUE_URL, None)
    events = [record.event for record in env.audit.records(goal_id)]
    assert events[-2:] == ["goal.handed-off", "handoff.announced"]


def test_the_hand_off_state_fails_when_nothing_was_handed_off(env: GoalLedger):
    goal_id = executing_goal(env)
    with pytest.raises(Exception, match="no continue URL was recorded") as raised:
        handler("notify")({"goalId": goal_id, "kind": "handed_off"})
    assert type(raised.value).__name__ == "HandOffNotRecorded"  # what the flow's Catch matches
    assert sent_messages() == []


def test_undo_of_an_order_from_a_merchant_without_cancel_is_409_and_changes_nothing(env: GoalLedger):
    goal_id = executing_goal(env, undo="none", goal_id="g-no-undo")
    receipt = Receipt(orderId="ord-1", checkoutId="cs-1", total=cny("59.00"), recipient="home",
                      items=[ReceiptLine(title="Running Socks", quantity=1, unitPrice=cny("59.00"))],
                      merchantStatus="confirmed")  # fmt: skip
    env.transition(goal_id, GoalStatus.COMPLETED, actor="notify", event="order.completed", receipt=receipt)
    before = env.store.require(goal_id)

    status, body = api("POST", f"/goals/{goal_id}/undo")

    assert status == 409 and body["error"]["code"] == "UNDO_UNSUPPORTED"
    assert body["error"]["message"].startswith("no undo: this merchant offers no way to cancel orders")
    assert env.store.require(goal_id) == before


def test_a_goal_for_a_merchant_the_brand_does_not_list_is_refused_with_422(env: GoalLedger):
    status, body = api(
        "POST", "/goals",
        {"userId": "user-1", "goal": "Buy me running socks", "context": {"merchantId": "other-shop"}},
        {"Idempotency-Key": "k-merchant"},
    )  # fmt: skip
    assert status == 422 and body["error"]["code"] == "UNKNOWN_MERCHANT"
    assert "other-shop" in body["error"]["message"]
