"""The OpenAI-compatible provider against a real HTTP server on loopback speaking chat completions.

The server is a scripted model: each test gives it the turns to answer with (tool calls, a draft,
a malformed answer, or no answer at all) and reads back the requests the planner sent.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from cartpilot.brands.config import BrandConfig
from cartpilot.brands.users import UserDirectory
from cartpilot.goals.model import GoalContext
from cartpilot.planning.llm import LlmPlanner
from cartpilot.planning.providers.openai import OpenAiCompatibleChat
from cartpilot.planning.rules import PlanningRequest, RulesPlanner
from cartpilot_local.servers import RunningServer, serve_in_thread
from tests.conftest import SEED_GOAL, handler_chooser, planning_request
from tests.fakes import FakeMerchant

API_KEY = "sk-local-test-0123456789abcdef"
MODEL = "qwen3:8b"

Turn = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class ScriptedModel:
    turns: list[Turn] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    authorization: list[str | None] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


def completion(
    message: dict[str, Any], finish: str, prompt_tokens: int = 900, completion_tokens: int = 40
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-local",
        "object": "chat.completion",
        "created": 1764032400,
        "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def tool_calls(*calls: tuple[str, str, dict[str, Any]]) -> Turn:
    def answer(_: dict[str, Any]) -> dict[str, Any]:
        return completion(
            {
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": json.dumps(args)},
                    }
                    for call_id, name, args in calls
                ],
            },
            "tool_calls",
        )

    return answer


def text(content: str) -> Turn:
    return lambda _: completion({"content": content}, "stop")


def draft(**changes: Any) -> str:
    document: dict[str, Any] = {
        "decision": "plan",
        "reason": "Swift Runner size 42, gift-wrapped, to your friend in Beijing.",
        "items": [{"itemId": "shoe-a-42", "quantity": 1, "justification": "Cheapest size 42 shoe in stock."}],
        "giftWrap": {"itemId": "gift-wrap-standard", "justification": "The goal asks for gift-wrap."},
        "recipientId": "friend-beijing",
        "shipping": {"optionId": "standard", "justification": "Free and in time."},
        "payment": {"paymentMethodId": "pm_user1_visa", "justification": "Default card."},
        "deliverBy": "2027-02-04",
        "budget": None,
    }
    document.update(changes)
    return json.dumps(document)


SEED_LOOKUPS = tool_calls(
    ("call_shopper", "get_shopper", {}),
    ("call_shoes", "search_products", {"query": "running shoes", "size": "42"}),
    ("call_wrap", "search_products", {"query": "gift wrap", "category": "gift-wrap"}),
)
SEED_QUOTE = tool_calls(
    (
        "call_quote",
        "quote_shipping",
        {
            "items": [
                {"itemId": "shoe-a-42", "quantity": 1},
                {"itemId": "gift-wrap-standard", "quantity": 1},
            ],
            "recipientId": "friend-beijing",
        },
    )
)


def create_model_app(model: ScriptedModel) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> JSONResponse:
        body = await request.json()
        model.requests.append(body)
        model.authorization.append(request.headers.get("authorization"))
        index = len(model.requests) - 1
        if index >= len(model.turns):
            return JSONResponse(
                {"error": {"code": "script_exhausted", "message": "no more turns"}}, status_code=500
            )
        answer = dict(model.turns[index](body))
        return JSONResponse(answer, status_code=answer.pop("_status", 200))

    @app.post("/v1/slow/chat/completions")
    def never_answers(request: Request) -> JSONResponse:
        # Holds the request until the test releases it: the client's read timeout fires first.
        model.release.wait(timeout=10)
        return JSONResponse({"error": {"code": "too_late"}}, status_code=504)

    return app


@pytest.fixture(scope="module")
def model_server() -> Iterator[tuple[RunningServer, ScriptedModel]]:
    scripted = ScriptedModel()
    server = serve_in_thread(create_model_app(scripted))
    try:
        yield server, scripted
    finally:
        scripted.release.set()
        server.stop()


@pytest.fixture
def scripted(model_server: tuple[RunningServer, ScriptedModel]) -> Iterator[ScriptedModel]:
    _, model = model_server
    model.turns, model.requests, model.authorization = [], [], []
    model.release.clear()
    yield model
    model.release.set()


def planner_for(
    url: str, merchant: FakeMerchant, brand: BrandConfig, *, timeout: float | None = None
) -> LlmPlanner:
    config = brand.planner.model_copy(update={"timeoutSeconds": timeout} if timeout else {})
    provider = OpenAiCompatibleChat(base_url=url, model=MODEL, api_key=lambda: API_KEY)
    chooser = handler_chooser(merchant)
    return LlmPlanner(
        provider,
        merchant,
        brand.merchant(),
        config=config,
        choose_handler=chooser,
        fallback=RulesPlanner(merchant, brand.merchant(), choose_handler=chooser),
    )


def seed_request(brand: BrandConfig, users: UserDirectory, goal: str = SEED_GOAL) -> PlanningRequest:
    return planning_request(brand, users, goal, goal_id="g-server")


def test_tool_calls_over_http_end_in_a_grounded_plan(model_server, scripted, merchant, brand, users):
    server, _ = model_server
    scripted.turns = [SEED_LOOKUPS, SEED_QUOTE, text(draft())]
    plan = planner_for(f"{server.url}/v1", merchant, brand).plan(seed_request(brand, users))

    assert [(item.itemId, item.unitPrice.format()) for item in plan.summary.items] == [
        ("shoe-a-42", "699.00 CNY"),
        ("gift-wrap-standard", "20.00 CNY"),
    ]
    assert plan.summary.total.format() == "719.00 CNY" and plan.summary.shipping.optionId == "standard"
    assert (plan.planner.kind, plan.planner.model, plan.planner.toolRounds) == ("openai", MODEL, 2)
    assert plan.planner.usage is not None and plan.planner.usage.promptTokens == 3 * 900

    # The second request answers all three calls, each with the tool's own JSON.
    tool_messages = {
        m["tool_call_id"]: json.loads(m["content"])
        for m in scripted.requests[1]["messages"]
        if m["role"] == "tool"
    }
    assert set(tool_messages) == {"call_shopper", "call_shoes", "call_wrap"}
    shoes = tool_messages["call_shoes"]["products"][0]["variants"]
    assert {
        "itemId": "shoe-a-42",
        "size": "42",
        "color": "black",
        "price": "699.00 CNY",
        "inStock": 5,
    } in shoes
    assert scripted.requests[1]["messages"][2]["tool_calls"][0]["id"] == "call_shopper"
    assert scripted.authorization == [f"Bearer {API_KEY}"] * 3


def test_malformed_answer_is_followed_by_a_repaired_one(model_server, scripted, merchant, brand, users):
    server, _ = model_server
    scripted.turns = [
        SEED_LOOKUPS,
        SEED_QUOTE,
        text('```json\n{"decision": "plan", "items": [\n```'),
        text(draft()),
    ]
    plan = planner_for(f"{server.url}/v1", merchant, brand).plan(seed_request(brand, users))

    repair = scripted.requests[3]["messages"][-1]
    assert repair["role"] == "user" and "is not valid JSON" in repair["content"]
    assert plan.planner.repairRounds == 1 and plan.summary.items[0].itemId == "shoe-a-42"


def test_timeout_falls_back_to_the_rules_planner(model_server, scripted, merchant, brand, users):
    server, _ = model_server
    planner = planner_for(f"{server.url}/v1/slow", merchant, brand, timeout=0.3)
    plan = planner.plan(seed_request(brand, users))

    assert (plan.planner.kind, plan.planner.fallbackFrom) == ("rules", "openai")
    assert plan.planner.fallbackReason == f"openai {MODEL}: no answer within 0.3 s"
    # The rules planner's own plan of the seed goal.
    assert plan.summary.items[0].itemId == "shoe-a-42" and plan.summary.total.format() == "719.00 CNY"


def test_error_answers_name_the_status_and_never_the_key(
    model_server, scripted, merchant, brand, users, caplog
):
    server, _ = model_server

    def unauthorized_echoing_the_key(_: dict[str, Any]) -> dict[str, Any]:
        return {
            "_status": 401,
            "error": {"code": API_KEY, "message": f"Incorrect API key provided: {API_KEY}"},
        }

    scripted.turns = [unauthorized_echoing_the_key]
    caplog.set_level(logging.DEBUG)
    plan = planner_for(f"{server.url}/v1", merchant, brand).plan(seed_request(brand, users))

    assert plan.planner.fallbackReason == f"openai {MODEL}: HTTP 401"
    assert API_KEY not in plan.model_dump_json()
    assert caplog.records and all(API_KEY not in str(record.__dict__) for record in caplog.records)


def test_server_error_falls_back_with_its_status(model_server, scripted, merchant, brand, users):
    server, _ = model_server
    scripted.turns = []  # the server answers 500 script_exhausted
    plan = planner_for(f"{server.url}/v1", merchant, brand).plan(seed_request(brand, users))
    assert plan.planner.fallbackReason == f"openai {MODEL}: HTTP 500 (script_exhausted)"


def test_cli_plans_with_a_local_openai_compatible_server(model_server, scripted, capsys, monkeypatch):
    from cartpilot_local.cli import main

    server, _ = model_server
    monkeypatch.setenv("LOCAL_TEST_LLM_KEY", API_KEY)
    monkeypatch.setenv("CARTPILOT_RULES_FIRST", "false")
    scripted.turns = [
        tool_calls(
            ("c1", "get_shopper", {}),
            ("c2", "search_products", {"query": "running socks", "size": "M", "color": "white"}),
        ),
        tool_calls(
            (
                "c3",
                "quote_shipping",
                {"items": [{"itemId": "socks-running-white-m", "quantity": 1}], "recipientId": "home"},
            )
        ),
        text(
            draft(
                reason="White running socks to your home.",
                items=[{"itemId": "socks-running-white-m", "quantity": 1, "justification": "White, size M."}],
                giftWrap=None,
                recipientId="home",
                deliverBy=None,
            )
        ),
    ]
    code = main(
        [
            "plan",
            "White running socks size M for me",
            "--planner",
            "openai",
            "--llm-url",
            f"{server.url}/v1",
            "--model",
            MODEL,
            "--api-key-env",
            "LOCAL_TEST_LLM_KEY",
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    plan = json.loads(out.out)
    assert plan["planner"]["kind"] == "openai" and plan["planner"]["model"] == MODEL
    assert [item["itemId"] for item in plan["summary"]["items"]] == ["socks-running-white-m"]
    assert scripted.authorization[0] == f"Bearer {API_KEY}"


# --- the planner function, configured from the environment as `cartpilot local --planner` does ---


def socks_turns() -> list[Turn]:
    return [
        tool_calls(
            ("c1", "get_shopper", {}),
            ("c2", "search_products", {"query": "running socks", "size": "M", "color": "white"}),
        ),
        tool_calls(
            (
                "c3",
                "quote_shipping",
                {"items": [{"itemId": "socks-running-white-m", "quantity": 1}], "recipientId": "home"},
            )
        ),
        text(
            draft(
                reason="White running socks to your home.",
                items=[{"itemId": "socks-running-white-m", "quantity": 1, "justification": "White, size M."}],
                giftWrap=None,
                recipientId="home",
                deliverBy=None,
            )
        ),
    ]


@pytest.fixture
def planner_function(aws_tables, merchant_server, model_server, monkeypatch) -> Iterator[Callable[..., str]]:
    """Runs functions/planner/app.py for a new goal with the model planner switched on by environment."""
    from cartpilot import wiring
    from cartpilot.adapters.aws.goals_table import DynamoDBGoalStore
    from cartpilot.goals.model import GoalRecord, GoalStatus
    from cartpilot_local.lambda_runtime import LambdaContext, load_handler

    server, _ = model_server
    for name, value in {
        "MERCHANT_URL": merchant_server.url,
        "POWERTOOLS_METRICS_DISABLED": "true",
        "CARTPILOT_PLANNER": "openai",
        "CARTPILOT_RULES_FIRST": "false",  # these tests look at the model's work
        "CARTPILOT_LLM_URL": f"{server.url}/v1",
        "CARTPILOT_LLM_MODEL": MODEL,
        "CARTPILOT_LLM_API_KEY": API_KEY,
    }.items():
        monkeypatch.setenv(name, value)
    wiring.reset()
    handler = load_handler(Path(__file__).resolve().parents[2] / "functions" / "planner" / "app.py")
    store = DynamoDBGoalStore(aws_tables["dynamodb"].Table(os.environ["GOALS_TABLE"]))
    context = LambdaContext(
        function_name="planner", invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:planner"
    )

    def plan(goal: str, goal_id: str = "g-llm-planning") -> str:
        store.create(
            GoalRecord(goalId=goal_id, userId="user-1", brand="sandbox", goal=goal, context=GoalContext(),
                       status=GoalStatus.RECEIVED, requestHash="h", createdAt="2026-11-25T00:00:00Z",
                       updatedAt="2026-11-25T00:00:00Z")
        )  # fmt: skip
        handler({"goalId": goal_id}, context)
        return goal_id

    yield plan
    wiring.reset()


def audit_records(goal_id: str) -> list[Any]:
    from cartpilot.wiring import ledger as ledger_from_env

    return ledger_from_env().audit.records(goal_id)


def test_planner_function_records_the_model_work_in_the_audit(planner_function, scripted):
    scripted.turns = socks_turns()
    goal_id = planner_function("White running socks size M for me")

    created = next(record for record in audit_records(goal_id) if record.event == "plan.created")
    info = created.detail["planner"]
    assert created.actor == "planner:openai"
    assert (info["kind"], info["model"], info["promptVersion"]) == ("openai", MODEL, "v1")
    assert info["promptHash"].startswith("sha256:")
    assert (info["usage"]["promptTokens"], info["usage"]["completionTokens"]) == (3 * 900, 3 * 40)
    assert info["toolRounds"] == 2 and info["repairRounds"] == 0
    assert "fallbackReason" not in info


def test_planner_function_falls_back_and_says_why_when_the_model_is_down(planner_function, scripted):
    scripted.turns = []  # every call answers 500
    goal_id = planner_function("White running socks size M for me")

    created = next(record for record in audit_records(goal_id) if record.event == "plan.created")
    info = created.detail["planner"]
    assert created.actor == "planner:rules"
    assert (info["kind"], info["fallbackFrom"]) == ("rules", "openai")
    assert info["fallbackReason"] == f"openai {MODEL}: HTTP 500 (script_exhausted)"


def test_a_refusal_is_audited_with_what_the_model_cost(planner_function, scripted):
    from cartpilot.planning.rules import PlanningFailed

    scripted.turns = [
        text(
            json.dumps(
                {
                    "decision": "refuse",
                    "reason": "What would you like to buy?",
                    "items": [],
                    "giftWrap": None,
                    "recipientId": None,
                    "shipping": None,
                    "payment": None,
                    "deliverBy": None,
                    "budget": None,
                }
            )
        )
    ]
    goal_id = "g-llm-refused"
    with pytest.raises(PlanningFailed, match="What would you like to buy"):
        planner_function("Buy me something", goal_id)
    refused = next(record for record in audit_records(goal_id) if record.event == "planning.refused")
    assert refused.detail["reason"] == "What would you like to buy?"
    assert refused.detail["planner"]["usage"] == {"promptTokens": 900, "completionTokens": 40}
