"""The provider's context cache: hits read from the usage, priced at the cached rate, simulated over the corpus."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from bench.corpus_tokens import (
    CallTokens,
    CaseUsage,
    cache_hits,
    cache_markers,
    explicit_cache,
    extends,
    summary,
    unmarked,
    with_cache_hits,
)
from bench.cost import planner_figures
from bench.cost_units import PriceTable, load_prices, model_cost
from cartpilot.brands.config import ModelPrice
from cartpilot.kernel.errors import MissingSetting
from cartpilot.kernel.money import Money
from cartpilot.planning.conversation import (
    AssistantTurn,
    ModelReply,
    ModelRequest,
    ToolCall,
    ToolResult,
    ToolResults,
    Usage,
    UserText,
)
from cartpilot.planning.llm import LlmPlanner, estimate_cost
from cartpilot.planning.prompts import ToolSpec
from cartpilot.planning.providers.openai import MAX_CACHE_MARKERS, OpenAiCompatibleChat, mark_for_cache
from cartpilot.planning.rules_first import RulesFirstPlanner
from cartpilot.planning.setup import configured_planner, reset_providers


def _reply(usage: dict[str, Any]) -> Usage:
    body = {"choices": [{"message": {"content": "{}"}, "finish_reason": "stop"}], "usage": usage}
    return OpenAiCompatibleChat.parse_reply(httpx.Response(200, json=body), turn=1).usage


# --- the adapter ------------------------------------------------------------------------------


def test_usage_without_cache_details_has_no_hits():
    assert _reply({"prompt_tokens": 2922, "completion_tokens": 68}) == Usage(2922, 68, 0)


def test_usage_reads_the_cached_tokens_the_provider_reports():
    usage = {"prompt_tokens": 3299, "completion_tokens": 38, "prompt_tokens_details": {"cached_tokens": 1536}}
    assert _reply(usage) == Usage(3299, 38, 1536)


@pytest.mark.parametrize(
    "details", [None, {}, {"cached_tokens": None}, {"cached_tokens": "9"}, [1], {"cached_tokens": -5}]
)
def test_odd_cache_details_count_as_no_hit(details):
    assert (
        _reply(
            {"prompt_tokens": 100, "completion_tokens": 1, "prompt_tokens_details": details}
        ).cached_prompt_tokens
        == 0
    )


def test_more_hits_than_prompt_tokens_are_capped_at_the_prompt():
    usage = {"prompt_tokens": 300, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 4096}}
    assert _reply(usage).cached_prompt_tokens == 300


def test_usage_adds_up_cache_hits_across_calls():
    assert Usage(2929, 35, 0) + Usage(3299, 38, 1536) == Usage(6228, 73, 1536)


# --- the plan's model cost ----------------------------------------------------------------------


def _price(cached: int | None) -> ModelPrice:
    return ModelPrice(
        inputPerMillion=Money(amount_minor=80, currency="CNY"),
        outputPerMillion=Money(amount_minor=200, currency="CNY"),
        cachedInputPerMillion=None if cached is None else Money(amount_minor=cached, currency="CNY"),
    )


def test_cached_tokens_cost_the_cached_price():
    # 1,000,000 uncached at 80 + 1,000,000 cached at 16 + 100,000 completion at 200 = 116 fen.
    usage = Usage(prompt_tokens=2_000_000, completion_tokens=100_000, cached_prompt_tokens=1_000_000)
    assert estimate_cost(usage, _price(16)) == Money(amount_minor=116, currency="CNY")


def test_without_a_cached_price_hits_cost_the_input_price():
    usage = Usage(prompt_tokens=2_000_000, completion_tokens=100_000, cached_prompt_tokens=1_000_000)
    assert estimate_cost(usage, _price(None)) == estimate_cost(Usage(2_000_000, 100_000), _price(None))
    assert estimate_cost(usage, _price(None)) == Money(amount_minor=180, currency="CNY")


def test_cost_is_rounded_up_so_a_cached_plan_never_reads_as_free():
    assert estimate_cost(Usage(3299, 38, 1536), _price(16)) == Money(amount_minor=1, currency="CNY")


def test_a_cached_price_in_another_currency_is_refused():
    with pytest.raises(ValidationError, match="one currency"):
        ModelPrice(
            inputPerMillion=Money(amount_minor=80, currency="CNY"),
            outputPerMillion=Money(amount_minor=200, currency="CNY"),
            cachedInputPerMillion=Money(amount_minor=2, currency="USD"),
        )


def test_bench_model_cost_prices_hits_at_the_cached_rate():
    table = PriceTable(
        "2026-11-30",
        "us-east-1",
        {"model_per_million_input_tokens": 0.4, "model_per_million_output_tokens": 1.2,
         "model_per_million_cached_input_tokens": 0.08},
        {},
    )  # fmt: skip
    assert model_cost(1_000_000, 0, table, cached_prompt_tokens=1_000_000) == pytest.approx(0.08)
    assert model_cost(1_000_000, 0, table, cached_prompt_tokens=250_000) == pytest.approx(0.32)
    without = PriceTable("2026-11-30", "us-east-1", {"model_per_million_input_tokens": 0.4,
                                                     "model_per_million_output_tokens": 1.2}, {})  # fmt: skip
    assert model_cost(1_000_000, 0, without, cached_prompt_tokens=1_000_000) == pytest.approx(0.4)


# --- the prefix simulation ----------------------------------------------------------------------


def _call(prompt: int, *, extends_previous: bool = True) -> CallTokens:
    return CallTokens(prompt, 0, extends_previous, fixed_prefix_chars=0, request_chars=1)


def test_a_cold_first_call_misses_and_each_extension_hits_the_previous_prompt():
    calls = [_call(2929, extends_previous=False), _call(3299), _call(3527)]
    assert cache_hits(calls, warm=False, fixed_prefix=2200) == [0, 2929, 3299]


def test_a_warm_cache_serves_the_fixed_prefix_to_the_first_call():
    calls = [_call(2929, extends_previous=False), _call(3299)]
    assert cache_hits(calls, warm=True, fixed_prefix=2200) == [2200, 2929]


def test_a_call_that_does_not_extend_the_previous_only_shares_the_fixed_prefix():
    calls = [_call(2929, extends_previous=False), _call(3100, extends_previous=False)]
    assert cache_hits(calls, warm=False, fixed_prefix=2200) == [0, 2200]


def test_a_shared_prefix_under_the_minimum_is_not_a_hit():
    calls = [_call(255, extends_previous=False), _call(400)]
    assert cache_hits(calls, warm=True, fixed_prefix=200) == [0, 0]
    assert cache_hits([_call(300, extends_previous=False), _call(400)], warm=False, fixed_prefix=0) == [
        0,
        300,
    ]


def test_hits_count_whole_blocks_and_never_exceed_the_prompt():
    calls = [_call(2000, extends_previous=False), _call(2929), _call(3299)]
    assert cache_hits(calls, warm=True, fixed_prefix=2200, block=512) == [1536, 2048, 2560]


def test_only_the_first_plan_that_calls_the_model_finds_the_cache_cold():
    def case(name: str, prompts: list[int]) -> CaseUsage:
        calls = tuple(
            CallTokens(p, 0, index > 0, fixed_prefix_chars=700, request_chars=1000)
            for index, p in enumerate(prompts)
        )
        return CaseUsage(name, "openai" if prompts else "rules", len(prompts), sum(prompts), 0, calls=calls)

    cases = with_cache_hits([case("rules", []), case("a", [1000, 1300]), case("b", [1100])])
    # The fixed prefix: the smallest first prompt times the fixed share of its characters (700 of 1,000).
    assert summary(cases)["fixedPrefixTokens"] == 700
    assert [c.cached_prompt_tokens for c in cases] == [0, 1000, 700]
    assert [c.cached_prompt_tokens_cold for c in cases] == [0, 1000, 0]


def test_a_request_extends_another_only_with_its_messages_appended_and_all_else_equal():
    first = {
        "model": "qwen-plus",
        "tools": [1],
        "tool_choice": "auto",
        "messages": [{"role": "system"}, {"role": "user"}],
    }
    later = {**first, "messages": [*first["messages"], {"role": "assistant"}, {"role": "tool"}]}
    assert extends(later, first)
    assert not extends(first, first)
    assert not extends({**later, "tool_choice": "none"}, first)
    assert not extends(
        {**later, "messages": [{"role": "system", "content": "x"}, *later["messages"][1:]]}, first
    )


# --- the corpus --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus() -> list[CaseUsage]:
    from bench.corpus_tokens import corpus_usage

    return corpus_usage()


def test_every_corpus_call_extends_the_one_before_it(corpus):
    totals = summary(corpus)
    assert totals["everyCallExtendsThePrevious"] is True
    # The system prompt and tools are most of a first prompt (~2,920 tokens), not all of it.
    assert 1_500 < totals["fixedPrefixTokens"] < 2_900


def test_corpus_hits_stay_within_the_prompt_and_warm_beats_cold(corpus):
    for case in corpus:
        assert 0 <= case.cached_prompt_tokens_cold <= case.cached_prompt_tokens <= case.prompt_tokens
        assert case.recorded_cached_prompt_tokens <= case.prompt_tokens
        if case.model_calls == 0:
            assert case.cached_prompt_tokens == case.recorded_cached_prompt_tokens == 0
    # The provider reported hits on every follow-up call when the answers were recorded.
    assert all(c.recorded_cached_prompt_tokens > 0 for c in corpus if c.model_calls > 1)


def test_cached_planner_cost_is_below_the_uncached_and_the_uncached_is_unchanged(corpus):
    prices = load_prices()
    figures = planner_figures(prices, corpus)
    uncached = sum(model_cost(c.prompt_tokens, c.completion_tokens, prices) for c in corpus) / len(corpus)
    assert figures["usd_per_1000_plans_uncached"] == pytest.approx(uncached * 1000, abs=1e-4)
    # The implicit cache by its documented rule, and as the provider actually served it.
    assert (
        figures["usd_per_1000_plans_implicit_warm"]
        < figures["usd_per_1000_plans_implicit_cold"]
        < figures["usd_per_1000_plans_as_recorded"]
        < figures["usd_per_1000_plans_uncached"]
    )


def test_the_headline_is_the_explicit_cache_cold_between_plans_between_warm_and_uncached(corpus):
    prices = load_prices()
    figures = planner_figures(prices, corpus)
    assert (
        "explicit cache" in figures["cache_assumption"]
        and "cold between plans" in figures["cache_assumption"]
    )
    assert (
        figures["usd_per_1000_plans_explicit_warm"]
        < figures["usd_per_1000_plans"]
        < figures["usd_per_1000_plans_as_recorded"]
        < figures["usd_per_1000_plans_uncached"]
    )
    # Recomputed from the cases: hits at 10% of the input price, creation at 125%.
    headline = sum(
        (
            (c.prompt_tokens - c.explicit_cached_prompt_tokens_cold - c.explicit_cache_creation_tokens_cold)
            * 0.40
            + c.explicit_cached_prompt_tokens_cold * 0.04
            + c.explicit_cache_creation_tokens_cold * 0.50
            + c.completion_tokens * 1.20
        )
        / 1_000_000
        for c in corpus
    ) / len(corpus)
    assert figures["usd_per_1000_plans"] == pytest.approx(headline * 1000, abs=1e-4)
    # The tool calls and results after the last user message are never marked: they stay plain input.
    for case in corpus:
        cached = case.explicit_cached_prompt_tokens_cold + case.explicit_cache_creation_tokens_cold
        assert cached < case.prompt_tokens or case.model_calls == 0
        assert case.explicit_cached_prompt_tokens_cold <= case.explicit_cached_prompt_tokens_warm
    # A plan that reaches the model costs more than the corpus mean, which counts rules plans at zero.
    planned = [c for c in corpus if c.model_calls]
    assert figures["usd_per_1000_model_plans"] == pytest.approx(
        figures["usd_per_1000_plans"] * len(corpus) / len(planned), abs=1e-3
    )
    # The model planner's share of the USD 1.50 per 1,000 goals target: what the auto path leaves it
    # (``bench/cost.py`` measures the auto path at about USD 0.38 per 1,000 goals).
    assert figures["usd_per_1000_plans"] < 1.50 - 0.38


def test_the_corpus_replays_with_two_cache_markers_on_every_request(corpus):
    totals = summary(corpus)
    assert totals["cacheMarkersPerRequest"] == [2]
    # The second marker is on the goal (index 1) or on a later repair note, never on a tool turn.
    assert {call.marked_index for case in corpus for call in case.calls} >= {1}
    assert all(call.marked_prefix_chars < call.request_chars for case in corpus for call in case.calls)
    # Within the explicit cache's 20-block lookback: every call finds the previous call's marker.
    assert totals["mostMessagesAppendedByACall"] <= 20


# --- explicit cache markers ----------------------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"decision": {"type": "string"}}, "required": ["decision"]}
TOOL = ToolSpec("search_products", "Finds products", {"type": "object", "properties": {}})
CALL = ToolCall(id="call_1", name="search_products", arguments={"q": "shoes"}, raw_arguments='{"q":"shoes"}')


def _request(*messages: Any) -> ModelRequest:
    return ModelRequest(
        system="You plan purchases.",
        messages=tuple(messages),
        tools=(TOOL,),
        response_schema=SCHEMA,
        schema_name="draft",
        allow_tools=True,
        timeout=5.0,
    )


CONVERSATION = _request(
    UserText("Buy running shoes, size 42"),
    AssistantTurn(ModelReply(text=None, tool_calls=(CALL,))),
    ToolResults((ToolResult("call_1", "search_products", {"items": ["rs-1"]}),)),
)


def _sent(context_cache: str | None, request: ModelRequest = CONVERSATION) -> httpx.Request:
    seen: list[httpx.Request] = []

    def answer(sent: httpx.Request) -> httpx.Response:
        seen.append(sent)
        body = {"choices": [{"message": {"content": "{}"}, "finish_reason": "stop"}], "usage": {}}
        return httpx.Response(200, json=body)

    options: dict[str, Any] = {} if context_cache is None else {"context_cache": context_cache}
    provider = OpenAiCompatibleChat(
        base_url="https://dashscope.example/v1",
        model="qwen-plus",
        transport=httpx.MockTransport(answer),
        **options,
    )
    try:
        provider.complete(request)
    finally:
        provider.close()
    return seen[0]


def _marked_parts(body: dict[str, Any]) -> list[tuple[int, str]]:
    return [
        (index, message["role"])
        for index, message in enumerate(body["messages"])
        if isinstance(message["content"], list)
    ]


def test_implicit_requests_are_the_unmarked_wire_format_byte_for_byte():
    expected = {
        "temperature": 0.0,
        "max_tokens": 1024,
        "parallel_tool_calls": True,
        "model": "qwen-plus",
        "messages": [
            {"role": "system", "content": "You plan purchases."},
            {"role": "user", "content": "Buy running shoes, size 42"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "search_products", "arguments": '{"q":"shoes"}'}},
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": '{"items":["rs-1"]}'},
        ],
        "tools": [{"type": "function", "function": {"name": "search_products", "description": "Finds products",
                                                    "parameters": {"type": "object", "properties": {}}}}],
        "tool_choice": "auto",
        "response_format": {"type": "json_schema", "json_schema": {"name": "draft", "strict": True, "schema": SCHEMA}},
    }  # fmt: skip
    wire = httpx.Request("POST", "https://dashscope.example/v1/chat/completions", json=expected).content
    assert _sent("implicit").content == wire
    assert _sent(None).content == wire  # implicit is the default


def test_explicit_requests_mark_the_system_and_the_last_user_message_with_the_text_unchanged():
    implicit = json.loads(_sent("implicit").content)
    explicit = json.loads(_sent("explicit").content)
    # The last message is a tool result: only system and user messages carry markers, as documented.
    assert _marked_parts(explicit) == [(0, "system"), (1, "user")]
    assert explicit["messages"][3]["content"] == implicit["messages"][3]["content"]
    for index in (0, 1):
        assert explicit["messages"][index]["content"] == [
            {
                "type": "text",
                "text": implicit["messages"][index]["content"],
                "cache_control": {"type": "ephemeral"},
            }
        ]
    assert cache_markers(explicit) == 2 <= MAX_CACHE_MARKERS
    # Everything else is the implicit request: taking the markers off gives it back.
    assert unmarked(explicit) == implicit


def test_a_goal_alone_marks_the_system_and_the_goal():
    explicit = json.loads(_sent("explicit", _request(UserText("Buy socks"))).content)
    assert _marked_parts(explicit) == [(0, "system"), (1, "user")]
    assert explicit["messages"][1]["content"][0]["text"] == "Buy socks"


def test_a_repair_note_is_the_last_user_message_and_carries_the_marker():
    repaired = _request(
        *CONVERSATION.messages[:2],
        ToolResults((ToolResult("call_1", "search_products", {"items": []}),), note="Fix the draft: qty"),
    )
    explicit = json.loads(_sent("explicit", repaired).content)
    assert [m["role"] for m in explicit["messages"]] == ["system", "user", "assistant", "tool", "user"]
    assert _marked_parts(explicit) == [(0, "system"), (4, "user")]
    assert explicit["messages"][4]["content"][0]["text"] == "Fix the draft: qty"


def test_tool_and_assistant_messages_are_never_marked_even_when_last_with_text():
    messages = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "G"},
        {"role": "assistant", "content": "Let me look", "tool_calls": [{"id": "call_1"}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"items":[]}'},
    ]
    assert [isinstance(m["content"], list) for m in mark_for_cache(messages)] == [True, True, False, False]
    assert [isinstance(m["content"], list) for m in mark_for_cache(messages[2:])] == [False, False]
    # Without a user message only the system message is marked.
    only_tools = [messages[0], *messages[2:]]
    assert [isinstance(m["content"], list) for m in mark_for_cache(only_tools)] == [True, False, False]


def test_an_assistant_turn_without_text_is_skipped_for_the_last_message_with_text():
    messages = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "G"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1"}]},
    ]
    marked = mark_for_cache(messages)
    assert [isinstance(m["content"], list) for m in marked] == [True, True, False]
    assert marked[2] is messages[2] and messages[0]["content"] == "S"  # the input is not changed


def test_a_long_conversation_still_carries_two_markers_and_nothing_unmarkable_is_marked():
    messages = [{"role": "system", "content": "S"}] + [
        {"role": role, "content": f"m{index}"}
        for index, role in enumerate(["user", "assistant", "tool", "user"] * 6)
    ]
    body = {"messages": mark_for_cache(messages)}
    assert cache_markers(body) == 2 <= MAX_CACHE_MARKERS
    assert _marked_parts(body) == [(0, "system"), (len(messages) - 1, "user")]
    assert mark_for_cache([{"role": "assistant", "content": ""}]) == [{"role": "assistant", "content": ""}]
    assert cache_markers({"messages": mark_for_cache([{"role": "developer", "content": "x"}])}) == 0


def test_usage_reads_the_tokens_written_to_the_explicit_cache():
    usage = {
        "prompt_tokens": 3019,
        "completion_tokens": 104,
        "prompt_tokens_details": {
            "cached_tokens": 2048,
            "cache_creation": {"ephemeral_5m_input_tokens": 971},
            "cache_creation_input_tokens": 971,
            "cache_type": "ephemeral",
        },
    }
    assert _reply(usage) == Usage(3019, 104, 2048, 971)


def test_creation_broken_down_by_lifetime_alone_is_read_too():
    details = {"cached_tokens": 0, "cache_creation": {"ephemeral_5m_input_tokens": 1200}}
    assert _reply({"prompt_tokens": 1300, "completion_tokens": 5, "prompt_tokens_details": details}) == Usage(
        1300, 5, 0, 1200
    )


@pytest.mark.parametrize("created", [None, "900", -4, True, [900]])
def test_odd_creation_counts_are_no_creation(created):
    details = {"cached_tokens": 100, "cache_creation_input_tokens": created}
    assert _reply({"prompt_tokens": 1300, "completion_tokens": 5, "prompt_tokens_details": details}) == Usage(
        1300, 5, 100, 0
    )


def test_hits_and_creation_together_never_exceed_the_prompt():
    details = {"cached_tokens": 1000, "cache_creation_input_tokens": 5000}
    assert _reply({"prompt_tokens": 1500, "completion_tokens": 1, "prompt_tokens_details": details}) == Usage(
        1500, 1, 1000, 500
    )


def test_usage_adds_up_creation_across_calls():
    assert Usage(2929, 35, 0, 2929) + Usage(3299, 38, 2929, 370) == Usage(6228, 73, 2929, 3299)


def _explicit_price(creation: int | None) -> ModelPrice:
    return ModelPrice(
        inputPerMillion=Money(amount_minor=80, currency="CNY"),
        outputPerMillion=Money(amount_minor=200, currency="CNY"),
        cachedInputPerMillion=Money(amount_minor=8, currency="CNY"),
        cacheCreationPerMillion=None if creation is None else Money(amount_minor=creation, currency="CNY"),
    )


def test_cost_prices_hits_and_creation_each_at_their_rate():
    # 500,000 plain at 80 + 500,000 hits at 8 + 1,000,000 written at 100 + 100,000 completion at 200.
    usage = Usage(prompt_tokens=2_000_000, completion_tokens=100_000, cached_prompt_tokens=500_000,
                  cache_creation_prompt_tokens=1_000_000)  # fmt: skip
    assert estimate_cost(usage, _explicit_price(100)) == Money(amount_minor=40 + 4 + 100 + 20, currency="CNY")
    # Without a creation price the written tokens cost the input price, as before.
    assert estimate_cost(usage, _explicit_price(None)) == Money(amount_minor=40 + 4 + 80 + 20, currency="CNY")


def test_a_creation_price_in_another_currency_is_refused():
    with pytest.raises(ValidationError, match="one currency"):
        ModelPrice(
            inputPerMillion=Money(amount_minor=80, currency="CNY"),
            outputPerMillion=Money(amount_minor=200, currency="CNY"),
            cacheCreationPerMillion=Money(amount_minor=1, currency="USD"),
        )


def test_the_sandbox_brand_prices_the_explicit_cache_at_10_and_125_percent(brand):
    assert brand.planner.contextCache == "explicit"
    price = brand.planner.prices["qwen-plus"]
    assert price.cachedInput.amount_minor * 10 == price.inputPerMillion.amount_minor
    assert price.cacheCreation.amount_minor * 4 == price.inputPerMillion.amount_minor * 5


def test_bench_model_cost_prices_explicit_hits_and_creation():
    table = PriceTable(
        "2026-11-30",
        "us-east-1",
        {"model_per_million_input_tokens": 0.4, "model_per_million_output_tokens": 1.2,
         "model_per_million_cached_input_tokens": 0.08, "model_per_million_explicit_cached_input_tokens": 0.04,
         "model_per_million_cache_creation_input_tokens": 0.5},
        {},
    )  # fmt: skip
    cost = model_cost(2_000_000, 0, table, cached_prompt_tokens=1_000_000, cache_creation_tokens=500_000,
                      cache="explicit")  # fmt: skip
    assert cost == pytest.approx(0.2 + 0.04 + 0.25)
    # The implicit mode keeps its own hit price and writes nothing by default.
    assert model_cost(2_000_000, 0, table, cached_prompt_tokens=1_000_000) == pytest.approx(0.4 + 0.08)
    bare = PriceTable("2026-11-30", "us-east-1", {"model_per_million_input_tokens": 0.4,
                                                  "model_per_million_output_tokens": 1.2}, {})  # fmt: skip
    assert model_cost(1_000_000, 0, bare, cache_creation_tokens=1_000_000, cache="explicit") == pytest.approx(
        0.4
    )


def test_bench_prices_explicit_hits_at_10_and_creation_at_125_percent():
    prices = load_prices()
    base = prices["model_per_million_input_tokens"]
    assert prices["model_per_million_explicit_cached_input_tokens"] == pytest.approx(base * 0.10)
    assert prices["model_per_million_cache_creation_input_tokens"] == pytest.approx(base * 1.25)


# --- the explicit cache simulation -------------------------------------------------------------


def _turn(
    prompt: int,
    marked_chars: int,
    *,
    marked_index: int = 1,
    extends_previous: bool = True,
    request_chars: int | None = None,
) -> CallTokens:
    """A hand-built call; one character a token unless ``request_chars`` says otherwise."""
    return CallTokens(
        prompt,
        0,
        extends_previous,
        fixed_prefix_chars=0,
        request_chars=prompt if request_chars is None else request_chars,
        marked_index=marked_index,
        marked_prefix_chars=marked_chars,
    )


# A goal (marked, ending at 2,350 tokens) and two tool rounds appended after it, then a repair note.
GOAL_THEN_TOOLS = [
    _turn(2929, 2350, extends_previous=False),
    _turn(3299, 2350),
    _turn(3527, 2350),
]


def test_cold_first_call_writes_up_to_the_goal_and_tool_turns_stay_plain():
    assert explicit_cache(GOAL_THEN_TOOLS, warm=False, fixed_prefix=2200) == [(0, 2350), (2350, 0), (2350, 0)]
    # The tool turns after the marked goal are neither read nor written: plain input.
    plain = [
        call.prompt_tokens - hit - written
        for call, (hit, written) in zip(
            GOAL_THEN_TOOLS, explicit_cache(GOAL_THEN_TOOLS, warm=False, fixed_prefix=2200), strict=True
        )
    ]
    assert plain == [579, 949, 1177]


def test_warm_first_call_reads_the_system_prompt_and_tools_and_writes_the_goal():
    assert explicit_cache(GOAL_THEN_TOOLS[:2], warm=True, fixed_prefix=2200) == [(2200, 150), (2350, 0)]


def test_a_repair_note_moves_the_marker_and_writes_from_the_goal_to_the_note():
    calls = [*GOAL_THEN_TOOLS, _turn(3800, 3200, marked_index=8)]
    assert explicit_cache(calls, warm=False, fixed_prefix=2200)[3] == (2350, 850)


def test_a_marked_prefix_keeps_the_estimate_of_the_call_that_wrote_it():
    # The same goal prefix at another tokens-per-character ratio would estimate 2,584 tokens.
    calls = [GOAL_THEN_TOOLS[0], _turn(3299, 2350, request_chars=3000)]
    assert explicit_cache(calls, warm=False, fixed_prefix=2200) == [(0, 2350), (2350, 0)]


def test_a_call_that_does_not_extend_the_previous_reads_only_the_system_marker():
    calls = [GOAL_THEN_TOOLS[0], _turn(3100, 2400, extends_previous=False)]
    assert explicit_cache(calls, warm=False, fixed_prefix=2200) == [(0, 2350), (2200, 200)]


def test_a_marker_more_than_20_blocks_back_is_not_found():
    calls = [GOAL_THEN_TOOLS[0], _turn(6000, 5000, marked_index=22)]
    assert explicit_cache(calls, warm=False, fixed_prefix=2200) == [(0, 2350), (2200, 2800)]


def test_blocks_under_1024_tokens_are_not_cached():
    calls = [_turn(1000, 950, extends_previous=False), _turn(1500, 1100, marked_index=3)]
    assert explicit_cache(calls, warm=True, fixed_prefix=900) == [(0, 0), (0, 1100)]


def test_without_a_user_marker_only_the_system_prompt_is_cached():
    calls = [_turn(2929, 0, marked_index=0, extends_previous=False), _turn(3299, 0, marked_index=0)]
    assert explicit_cache(calls, warm=False, fixed_prefix=2200) == [(0, 2200), (2200, 0)]


# --- configuration ------------------------------------------------------------------------------


@pytest.fixture
def fresh_providers():
    reset_providers()
    yield
    reset_providers()


def _provider(brand, merchant, **environ: str) -> OpenAiCompatibleChat:
    planner = configured_planner(brand, merchant, environ={"CARTPILOT_PLANNER": "openai", **environ})
    model = planner.model if isinstance(planner, RulesFirstPlanner) else planner
    assert isinstance(model, LlmPlanner) and isinstance(model.provider, OpenAiCompatibleChat)
    return model.provider


def test_the_brand_switches_explicit_caching_on_and_the_environment_can_switch_it_off(
    brand, merchant, fresh_providers
):
    assert _provider(brand, merchant).context_cache == "explicit"
    assert _provider(brand, merchant, CARTPILOT_LLM_CONTEXT_CACHE="implicit").context_cache == "implicit"
    implicit = brand.model_copy(
        update={"planner": brand.planner.model_copy(update={"contextCache": "implicit"})}
    )
    assert _provider(implicit, merchant).context_cache == "implicit"


def test_an_unknown_context_cache_is_refused(brand, merchant, fresh_providers):
    with pytest.raises(MissingSetting, match="contextCache"):
        _provider(brand, merchant, CARTPILOT_LLM_CONTEXT_CACHE="always")
    with pytest.raises(ValidationError, match="contextCache"):
        brand.planner.model_validate({**brand.planner.model_dump(), "contextCache": "on"})
