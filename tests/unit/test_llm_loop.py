"""The tool loop's budgets and failure modes, with a scripted in-memory model behind the provider port."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from cartpilot.brands.config import BrandConfig, ModelPrice, PlannerConfig, load_brand
from cartpilot.brands.users import UserDirectory
from cartpilot.kernel.money import Money
from cartpilot.planning.conversation import (
    ModelReply,
    ModelRequest,
    ModelUnavailable,
    ToolCall,
    ToolResults,
    Usage,
    UserText,
)
from cartpilot.planning.llm import LlmPlanner, estimate_cost
from cartpilot.planning.rules import PlanningFailed, PlanningRequest, RulesPlanner
from tests.conftest import handler_chooser, planning_request
from tests.fakes import FakeMerchant

Step = Callable[[ModelRequest], ModelReply]


class ScriptedProvider:
    kind = "openai"
    model = "scripted-model"

    def __init__(self, *steps: Step, on_call: Callable[[], None] = lambda: None) -> None:
        self.steps = list(steps)
        self.requests: list[ModelRequest] = []
        self.on_call = on_call

    def complete(self, request: ModelRequest) -> ModelReply:
        self.requests.append(request)
        self.on_call()
        step = self.steps[min(len(self.requests), len(self.steps)) - 1]
        return step(request)


def calls(*calls: tuple[str, dict]) -> Step:
    def reply(request: ModelRequest) -> ModelReply:
        turn = len(request.messages)
        return ModelReply(
            text=None,
            tool_calls=tuple(
                ToolCall(id=f"t{turn}-{n}", name=name, arguments=args, raw_arguments=json.dumps(args))
                for n, (name, args) in enumerate(calls)
            ),
            usage=Usage(1000, 50),
            finish_reason="tool_calls",
        )

    return reply


def answer(text: str, finish: str = "stop") -> Step:
    return lambda _: ModelReply(text=text, usage=Usage(1200, 150), finish_reason=finish)


def unavailable(reason: str) -> Step:
    def fail(_: ModelRequest) -> ModelReply:
        raise ModelUnavailable(reason)

    return fail


def planner_with(
    provider: ScriptedProvider, merchant: FakeMerchant, config: PlannerConfig, **kwargs
) -> LlmPlanner:
    return LlmPlanner(
        provider, merchant, load_brand("sandbox").merchant(), config=config,
        choose_handler=handler_chooser(merchant), **kwargs,
    )  # fmt: skip


def rules_planner(merchant: FakeMerchant, brand: BrandConfig) -> RulesPlanner:
    return RulesPlanner(merchant, brand.merchant(), choose_handler=handler_chooser(merchant))


def request(
    brand: BrandConfig, users: UserDirectory, goal: str = "running shoes size 42 for me"
) -> PlanningRequest:
    return planning_request(brand, users, goal, goal_id="g-loop")


def test_a_model_that_keeps_calling_tools_is_told_to_stop_then_replaced(merchant, brand, users):
    provider = ScriptedProvider(calls(("search_products", {"query": "running shoes"})))
    planner = planner_with(provider, merchant, brand.planner, fallback=rules_planner(merchant, brand))
    plan = planner.plan(request(brand, users))

    assert [r.allow_tools for r in provider.requests] == [True, True, True, True, False]
    last_results = provider.requests[-1].messages[-1]
    assert isinstance(last_results, ToolResults)
    assert last_results.note == (
        "That was your last turn with tools. Answer now with the plan draft as one JSON object, or refuse."
    )
    assert plan.planner.fallbackReason == "openai scripted-model: still calling tools after 4 tool rounds"
    assert plan.planner.toolRounds == 4 and plan.planner.usage is not None
    assert plan.planner.usage.promptTokens == 5000


def test_the_time_budget_bounds_each_call_and_the_whole_loop(merchant, brand, users):
    now = [0.0]
    provider = ScriptedProvider(calls(("get_shopper", {})), on_call=lambda: now.__setitem__(0, now[0] + 25.0))
    planner = planner_with(
        provider, merchant, brand.planner, fallback=rules_planner(merchant, brand),
        clock=lambda: now[0],
    )  # fmt: skip
    plan, trace = planner.plan_with_trace(request(brand, users))

    assert [r.timeout for r in provider.requests] == [30.0, 30.0, 10.0]
    assert plan.planner.fallbackReason == "openai scripted-model: the planning time budget of 60 s is spent"
    assert (trace.modelSeconds, trace.totalSeconds, trace.overheadSeconds) == (75.0, 75.0, 0.0)


def test_an_answer_cut_off_at_the_token_limit_is_sent_back_for_a_shorter_one(merchant, brand, users):
    provider = ScriptedProvider(answer('{"decision": "plan", "reason": "', finish="length"), answer("{}"))
    planner = planner_with(provider, merchant, brand.planner.model_copy(update={"maxRepairRounds": 1}))
    with pytest.raises(PlanningFailed):
        planner.plan(request(brand, users))
    repair = provider.requests[1].messages[-1]
    assert isinstance(repair, UserText)
    assert "- the answer was cut off at the token limit; answer with a shorter draft" in repair.text


def test_without_a_fallback_a_model_failure_is_a_clear_planning_failure(merchant, brand, users):
    provider = ScriptedProvider(unavailable("no answer within 30 s"))
    planner = planner_with(provider, merchant, brand.planner, fallback=None)
    with pytest.raises(PlanningFailed) as failed:
        planner.plan(request(brand, users))
    assert str(failed.value) == (
        "the model planner failed and no fallback is configured: openai scripted-model: no answer within 30 s"
    )
    assert failed.value.code == "PLANNING_FAILED"
    assert failed.value.planner is not None and failed.value.planner.model == "scripted-model"


def test_when_the_fallback_cannot_plan_either_both_reasons_are_given(merchant, brand, users):
    provider = ScriptedProvider(unavailable("HTTP 503"))
    planner = planner_with(provider, merchant, brand.planner, fallback=rules_planner(merchant, brand))
    with pytest.raises(PlanningFailed) as failed:
        planner.plan(request(brand, users, goal="something nice"))
    assert str(failed.value) == (
        "openai scripted-model: HTTP 503; the rules planner could not plan either: "
        "the goal does not say what to buy"
    )


def test_the_planners_own_time_excludes_waiting_for_the_model(merchant, brand, users):
    now = [0.0]

    def tick() -> float:
        now[0] += 0.001  # every look at the clock costs the planner a millisecond
        return now[0]

    draft = {
        "decision": "plan", "reason": "Shoes.", "giftWrap": None, "recipientId": "home",
        "items": [{"itemId": "shoe-a-42", "quantity": 1, "justification": "Cheapest."}],
        "shipping": {"optionId": "standard", "justification": "Free."},
        "payment": {"paymentMethodId": "pm_user1_visa", "justification": "Default."},
        "deliverBy": None, "budget": None,
    }  # fmt: skip
    provider = ScriptedProvider(
        calls(("get_shopper", {}), ("search_products", {"query": "running shoes", "size": "42"})),
        calls(("quote_shipping", {"items": [{"itemId": "shoe-a-42", "quantity": 1}], "recipientId": "home"})),
        answer(json.dumps(draft)),
        on_call=lambda: now.__setitem__(0, now[0] + 2.0),
    )
    plan, trace = planner_with(provider, merchant, brand.planner, clock=tick).plan_with_trace(
        request(brand, users)
    )

    assert plan.summary.items[0].itemId == "shoe-a-42" and plan.summary.total.format() == "699.00 CNY"
    assert (trace.modelCalls, trace.toolRounds, trace.repairRounds) == (3, 2, 0)
    assert trace.modelSeconds == pytest.approx(3 * 2.001)
    assert trace.overheadSeconds == pytest.approx(trace.totalSeconds - trace.modelSeconds)
    assert 0 < trace.overheadSeconds < 0.05


@pytest.mark.parametrize(
    ("usage", "expected_minor"),
    [(Usage(0, 0), 0), (Usage(1, 0), 1), (Usage(4000, 200), 1), (Usage(1_000_000, 500_000), 180)],
)
def test_model_cost_is_rounded_up_to_the_next_minor_unit(usage, expected_minor):
    price = ModelPrice(
        inputPerMillion=Money(amount_minor=80, currency="CNY"),
        outputPerMillion=Money(amount_minor=200, currency="CNY"),
    )
    assert estimate_cost(usage, price) == Money(amount_minor=expected_minor, currency="CNY")
    assert estimate_cost(usage, None) is None
