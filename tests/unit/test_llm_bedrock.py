"""The Bedrock provider: Converse tool-use responses replayed through botocore's Stubber.

The client is a real bedrock-runtime client, so every request the planner builds is validated
against the service model before the stubbed answer comes back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.stub import ANY, Stubber

from cartpilot.adapters.aws.bedrock import BedrockConverse
from cartpilot.brands.config import BrandConfig
from cartpilot.brands.users import UserDirectory
from cartpilot.commerce.ucp import UcpMerchant
from cartpilot.planning.llm import LlmPlanner
from cartpilot.planning.rules import PlanningFailed, PlanningRequest, RulesPlanner
from cartpilot.plans.model import Plan
from tests.conftest import planning_request

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "llm" / "bedrock"
MODEL = "qwen.qwen3-32b-v1:0"
EXPECTED_PARAMS = {
    "modelId": MODEL,
    "system": ANY,
    "messages": ANY,
    "toolConfig": ANY,
    "inferenceConfig": ANY,
    "outputConfig": ANY,
}


class Recording:
    """Hands calls to the stubbed client and keeps their parameters."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[dict[str, Any]] = []

    def converse(self, **params: Any) -> Any:
        self.calls.append(params)
        return self.client.converse(**params)


@pytest.fixture
def bedrock() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def make_planner(client: Any, sandbox: UcpMerchant, brand: BrandConfig) -> tuple[LlmPlanner, Recording]:
    recording = Recording(client)
    provider = BedrockConverse(model=MODEL, client=recording)
    planner = LlmPlanner(
        provider,
        sandbox,
        brand.merchant(),
        config=brand.planner,
        fallback=RulesPlanner(sandbox, brand.merchant()),
    )
    return planner, recording


def request_for(fixture: dict[str, Any], brand: BrandConfig, users: UserDirectory) -> PlanningRequest:
    return planning_request(brand, users, fixture["goal"], user=fixture["userId"], goal_id="g-bedrock")


def replay(
    name: str, bedrock: tuple[Any, Stubber], sandbox: UcpMerchant, brand: BrandConfig, users: UserDirectory
):
    client, stubber = bedrock
    fixture = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    for response in fixture["responses"]:
        stubber.add_response("converse", response, EXPECTED_PARAMS)
    planner, recording = make_planner(client, sandbox, brand)
    return fixture, planner.plan(request_for(fixture, brand, users)), recording


def test_seed_goal_plans_through_converse_tool_use(bedrock, sandbox, brand, users):
    fixture, plan, _ = replay("seed_en", bedrock, sandbox, brand, users)
    assert isinstance(plan, Plan)
    assert [(item.itemId, item.quantity) for item in plan.summary.items] == [
        ("rs-stride-lite-black-42", 1),
        ("gift-wrap-standard", 1),
    ]
    assert plan.summary.total.format() == "519.00 CNY" and plan.summary.recipientId == "friend-beijing"
    assert (plan.planner.kind, plan.planner.model, plan.planner.toolRounds) == ("bedrock", MODEL, 2)
    usage = [response["usage"] for response in fixture["responses"]]
    assert plan.planner.usage is not None
    assert plan.planner.usage.promptTokens == sum(u["inputTokens"] for u in usage)
    assert plan.planner.usage.completionTokens == sum(u["outputTokens"] for u in usage)
    # The brand prices this model in USD per million tokens.
    assert plan.planner.estimatedCost is not None and plan.planner.estimatedCost.currency == "USD"


def test_tool_results_answer_each_tool_use_by_id(bedrock, sandbox, brand, users):
    fixture, _, recording = replay("seed_en", bedrock, sandbox, brand, users)
    first_calls = [
        block["toolUse"]
        for block in fixture["responses"][0]["output"]["message"]["content"]
        if "toolUse" in block
    ]
    answer = recording.calls[1]["messages"][-1]
    assert answer["role"] == "user"
    results = [block["toolResult"] for block in answer["content"]]
    assert [result["toolUseId"] for result in results] == [call["toolUseId"] for call in first_calls]
    assert all(result["status"] == "success" for result in results)
    shopper = results[0]["content"][0]["json"]
    assert {r["recipientId"] for r in shopper["recipients"]} == {"home", "friend-beijing"}
    # The assistant's tool-use turn is replayed to the model as it came.
    assert recording.calls[1]["messages"][1]["content"][0]["toolUse"]["name"] == "get_shopper"


def test_requests_declare_tools_and_the_draft_schema_as_structured_output(bedrock, sandbox, brand, users):
    _, _, recording = replay("seed_en", bedrock, sandbox, brand, users)
    first = recording.calls[0]
    names = [tool["toolSpec"]["name"] for tool in first["toolConfig"]["tools"]]
    assert names == ["get_shopper", "search_products", "lookup_items", "quote_shipping"]
    text_format = first["outputConfig"]["textFormat"]
    assert text_format["type"] == "json_schema"
    schema = json.loads(text_format["structure"]["jsonSchema"]["schema"])
    assert schema["properties"]["decision"]["enum"] == ["plan", "refuse"]
    assert first["system"][0]["text"].startswith("You are the shopping planner of Sandbox Outfitters.")


def test_chinese_goal_plans_the_same_order(bedrock, sandbox, brand, users):
    _, plan, _ = replay("seed_zh", bedrock, sandbox, brand, users)
    assert [item.itemId for item in plan.summary.items] == ["rs-stride-lite-black-42", "gift-wrap-standard"]
    assert plan.summary.total.format() == "519.00 CNY"


def test_malformed_answer_is_repaired_with_the_validation_errors(bedrock, sandbox, brand, users):
    _, plan, recording = replay("malformed_then_repaired_en", bedrock, sandbox, brand, users)
    repair = recording.calls[3]["messages"][-1]
    assert repair["role"] == "user" and "not valid JSON" in repair["content"][0]["text"]
    assert plan.planner.repairRounds == 1 and plan.summary.items[0].itemId == "socks-running-white-l"


def test_recipient_taken_from_product_text_is_refused_and_repaired(bedrock, sandbox, brand, users):
    _, plan, recording = replay("injection_in_product_repaired_en", bedrock, sandbox, brand, users)
    repair = recording.calls[3]["messages"][-1]["content"][0]["text"]
    assert "recipientId 'address-in-description' is not one of the shopper's" in repair
    assert plan.summary.recipientId == "friend-beijing" and plan.summary.items[0].quantity == 1


def test_late_shipping_choice_is_switched_by_the_planners_checks(bedrock, sandbox, brand, users):
    _, plan, _ = replay("deadline_repaired_by_checks_en", bedrock, sandbox, brand, users)
    assert plan.summary.shipping.optionId == "expedited"
    assert plan.summary.shipping.latestDelivery <= plan.summary.deliverBy
    assert any("switched to Expedited Shipping" in line for line in plan.planner.adjustments)


def test_refusal_in_a_denied_category_is_the_shoppers_reason(bedrock, sandbox, brand, users):
    client, stubber = bedrock
    fixture = json.loads((FIXTURES / "restricted_zh.json").read_text(encoding="utf-8"))
    for response in fixture["responses"]:
        stubber.add_response("converse", response, EXPECTED_PARAMS)
    planner, _ = make_planner(client, sandbox, brand)
    with pytest.raises(PlanningFailed, match="不能代购刀具"):
        planner.plan(request_for(fixture, brand, users))


def test_throttling_falls_back_to_the_rules_planner(bedrock, sandbox, brand, users):
    client, stubber = bedrock
    stubber.add_client_error("converse", service_error_code="ThrottlingException", http_status_code=429)
    planner, _ = make_planner(client, sandbox, brand)
    fixture = {"goal": "Running shoes size 42 for me", "userId": "user-1"}
    plan = planner.plan(request_for(fixture, brand, users))
    assert (plan.planner.kind, plan.planner.fallbackFrom) == ("rules", "bedrock")
    assert plan.planner.fallbackReason is not None and "ThrottlingException" in plan.planner.fallbackReason
    assert plan.summary.items[0].itemId == "rs-stride-lite-black-42"


def test_read_timeout_falls_back_to_the_rules_planner(sandbox, brand, users):
    class TimingOut:
        def converse(self, **params: Any) -> Any:
            raise ReadTimeoutError(endpoint_url="https://bedrock-runtime.us-east-1.amazonaws.com")

    provider = BedrockConverse(model=MODEL, client=TimingOut())
    planner = LlmPlanner(
        provider,
        sandbox,
        brand.merchant(),
        config=brand.planner,
        fallback=RulesPlanner(sandbox, brand.merchant()),
    )
    plan = planner.plan(
        request_for({"goal": "Running shoes size 42 for me", "userId": "user-1"}, brand, users)
    )
    assert plan.planner.fallbackReason == f"bedrock {MODEL}: Bedrock did not answer in time"
