"""Prompt tokens per plan over the recorded corpus, with the planner as it ships.

Replays every recording in ``tests/fixtures/llm/openai`` (model answers in the chat-completions wire
format, served by httpx.MockTransport in the order they were recorded) through the brand's planner
as ``planning.setup.configured_planner`` builds it for a model provider, against the sandbox
merchant on loopback with its clock fixed, as the regression tests do. Only the model calls the
planner actually makes are counted: a goal the rules planner serves first costs no tokens, and the
tokens of a call are the ``usage`` the provider reported for that recorded answer.

    .venv/bin/python bench/corpus_tokens.py [--json] [GOAL ...]

``corpus_usage()`` is the library entry point (``bench/cost.py`` prices the planner with it).

Context cache. DashScope caches prompt prefixes on its own (the implicit cache: no request change,
cannot be turned off, at least 256 tokens, hits billed at 20% of the input price, no guaranteed
hit or lifetime), and reports the hits in ``usage.prompt_tokens_details.cached_tokens``. Each
case carries three counts of cache-hit prompt tokens:

- ``recorded_cached_prompt_tokens``: what the provider reported when the answers were recorded;
- ``cached_prompt_tokens``: the documented rule simulated over the corpus in order, the cache warm
  after the first plan: a call hits the longest prefix it shares with an earlier request, if that
  is at least 256 tokens. Within a plan, a call whose request is the previous request plus the
  model's answer and the tool results (checked on the wire: same model, tools, schema and options,
  the earlier messages unchanged) shares the previous call's recorded ``prompt_tokens``; across plans
  every call shares the system prompt and the tool definitions, which every plan sends first;
- ``cached_prompt_tokens_cold``: the same rule with nothing cached between plans.

The explicit cache (the brand's ``contextCache: explicit``: ``cache_control`` on the system message
and on the last user message, where the replayed requests carry them) is priced by its documented
rule, deterministically: the prefix up to a marker is written to the cache (125% of the input
price) unless a cached prefix matches, and a match is a hit (10%) for 5 minutes, reset by each hit;
at least 1,024 tokens; the lookup searches back at most 20 content blocks from a marker. A call's
cached prefix is the longest one ending at a marker of an earlier call of the plan whose request
this one extends (the system message, or that call's last user message, at most 20 messages back):
tokens before it are hits, tokens from there to this call's last marker are written, and the
assistant's tool calls and the tool results after the last user message are plain input (nothing
marks them). Each token is billed once, as a hit, a creation or plain input. Across plans:

- ``explicit_*_cold``: no plan's cache survives to the next (the headline: at low volume more than
  5 minutes pass between plans), so each plan's first call writes its whole prompt;
- ``explicit_*_warm``: planning traffic keeps the system prompt and tools cached, so each first
  call (after the corpus's first) hits them and writes the rest.

The replay sends what the brand's planner sends, markers included; markers are taken off before
requests are compared, so a marked message and the same message unmarked are one prefix.

The token count of the shared system prompt and tool definitions is not in the usage of any call:
it is the first call's ``prompt_tokens`` times their share of the characters the request sends
(system prompt, tools, the draft schema and the messages), the smallest such figure over the corpus.
Counting the schema, which the provider may place after the messages, keeps the estimate low.
Per-message token counts are not recorded either: the prefix up to a call's last marked message is
estimated the same way, the call's ``prompt_tokens`` times the prefix's share of its characters.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "fixtures" / "llm" / "openai"
TODAY = date(2026, 11, 25)
MERCHANT_NOW = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
MODEL = "qwen-plus"
DASHSCOPE = "https://dashscope.aliyuncs.com/compatible-mode/v1"
TARGET_MEDIAN_PROMPT_TOKENS = 3_000
# DashScope's implicit cache: "content under 256 tokens is not cached"; no block size is documented.
IMPLICIT_CACHE_MIN_TOKENS = 256
CACHE_BLOCK_TOKENS = 1
# DashScope's explicit cache: "a cache block must contain at least 1024 tokens"; the lookup "searches
# backward up to 20 content blocks from each cache_control marker".
EXPLICIT_CACHE_MIN_TOKENS = 1_024
EXPLICIT_CACHE_LOOKBACK_BLOCKS = 20


@dataclass(frozen=True)
class CallTokens:
    """One model call of a plan, as recorded and as sent."""

    prompt_tokens: int
    recorded_cached_tokens: int
    extends_previous: bool
    """The request is the previous call's request with messages appended, all else equal."""
    fixed_prefix_chars: int
    """Characters of the system prompt and tool definitions, which every plan sends first."""
    request_chars: int
    """Characters of everything the request asks the model to read (prompt, tools, schema, messages)."""
    appended_messages: int = 0
    """Messages this request added to the previous one (the answer, tool results, notes)."""
    cache_markers: int = 0
    """``cache_control`` markers the request carried (the explicit cache)."""
    marked_index: int = 0
    """Index in ``messages`` of the last message carrying a marker (0: the system message alone)."""
    marked_prefix_chars: int = 0
    """Characters of the system prompt, tools and messages up to and including that message."""


@dataclass(frozen=True)
class CaseUsage:
    """One recorded goal: who planned it, how many model calls it made and the tokens they cost."""

    name: str
    planner_kind: str
    """``openai`` (the model's plan or refusal), ``rules`` (served first, no model call) or
    ``rules-fallback`` (the model failed and the rules planner planned)."""
    model_calls: int
    prompt_tokens: int
    completion_tokens: int
    outcome: str = "plan"
    """``plan`` or ``refused``."""
    cached_prompt_tokens: int = 0
    """Prompt tokens the implicit cache serves by its documented rule, the cache warm between plans."""
    cached_prompt_tokens_cold: int = 0
    """The same with nothing cached between plans (each plan's first call a miss)."""
    recorded_cached_prompt_tokens: int = 0
    """Prompt tokens the provider reported as cache hits when the answers were recorded."""
    explicit_cached_prompt_tokens_cold: int = 0
    """Explicit cache, nothing cached between plans: prompt tokens read from the cache."""
    explicit_cache_creation_tokens_cold: int = 0
    """Explicit cache, nothing cached between plans: prompt tokens written to the cache."""
    explicit_cached_prompt_tokens_warm: int = 0
    """Explicit cache, the system prompt and tools cached between plans: tokens read."""
    explicit_cache_creation_tokens_warm: int = 0
    """Explicit cache, the system prompt and tools cached between plans: tokens written."""
    calls: tuple[CallTokens, ...] = ()


class RecordedAnswers:
    """Serves one recording's answers in order; counts what was asked for."""

    def __init__(self, responses: list[dict[str, Any]]) -> None:
        self.responses = responses
        self.served = 0
        self.requests: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.served >= len(self.responses):
            return httpx.Response(500, json={"error": {"code": "replay_exhausted"}})
        self.requests.append(json.loads(request.content))
        self.served += 1
        return httpx.Response(200, json=self.responses[self.served - 1])

    def calls(self) -> tuple[CallTokens, ...]:
        """Each answered call's recorded usage beside what its request sent."""
        calls: list[CallTokens] = []
        previous: dict[str, Any] | None = None
        for sent, answer in zip(self.requests, self.responses, strict=False):
            body = unmarked(sent)
            usage = answer["usage"]
            fixed = len(body["messages"][0]["content"]) + len(_compact(body.get("tools", [])))
            sizes = [len(_compact(message)) for message in body["messages"][1:]]
            marked = last_marked_index(sent)
            calls.append(
                CallTokens(
                    prompt_tokens=usage["prompt_tokens"],
                    recorded_cached_tokens=(usage.get("prompt_tokens_details") or {}).get("cached_tokens")
                    or 0,
                    extends_previous=previous is not None and extends(body, previous),
                    fixed_prefix_chars=fixed,
                    request_chars=fixed + len(_compact(body.get("response_format", {}))) + sum(sizes),
                    appended_messages=len(body["messages"]) - len(previous["messages"]) if previous else 0,
                    cache_markers=cache_markers(sent),
                    marked_index=marked,
                    marked_prefix_chars=fixed + sum(sizes[:marked]),
                )
            )
            previous = body
        return tuple(calls)

    def usage(self) -> tuple[int, int]:
        answered = self.responses[: self.served]
        return (
            sum(answer["usage"]["prompt_tokens"] for answer in answered),
            sum(answer["usage"]["completion_tokens"] for answer in answered),
        )


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def unmarked(body: dict[str, Any]) -> dict[str, Any]:
    """A request with its cache markers taken off: a message whose content is one marked text part
    becomes the plain-text message the planner would send without markers (the same prompt)."""
    messages = []
    for message in body["messages"]:
        content = message.get("content")
        if isinstance(content, list) and len(content) == 1 and content[0].get("type") == "text":
            message = {**message, "content": content[0]["text"]}
        messages.append(message)
    return {**body, "messages": messages}


def cache_markers(body: dict[str, Any]) -> int:
    """How many ``cache_control`` markers a request carries."""
    return sum(
        1
        for message in body["messages"]
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if isinstance(part, dict) and "cache_control" in part
    )


def last_marked_index(body: dict[str, Any]) -> int:
    """Index of the last message carrying a ``cache_control`` marker, 0 when none does."""
    marked = [
        index
        for index, message in enumerate(body["messages"])
        if isinstance(message.get("content"), list)
        and any(isinstance(part, dict) and "cache_control" in part for part in message["content"])
    ]
    return marked[-1] if marked else 0


def extends(body: dict[str, Any], previous: dict[str, Any]) -> bool:
    """Whether a request is an earlier one with messages appended: the earlier messages unchanged and
    every other field (model, tools, schema, options) equal, so its prompt starts with the earlier one."""
    messages, before = body["messages"], previous["messages"]
    rest = {key: value for key, value in body.items() if key != "messages"}
    earlier = {key: value for key, value in previous.items() if key != "messages"}
    return rest == earlier and len(messages) > len(before) and messages[: len(before)] == before


def fixed_prefix_tokens(cases: Iterable[CaseUsage]) -> int:
    """Tokens of the system prompt and tool definitions every plan sends first: each plan's first
    prompt_tokens times their share of the request's characters, the smallest over the cases."""
    estimates = [
        case.calls[0].prompt_tokens * case.calls[0].fixed_prefix_chars // case.calls[0].request_chars
        for case in cases
        if case.calls
    ]
    return min(estimates) if estimates else 0


def cache_hits(
    calls: Sequence[CallTokens],
    *,
    warm: bool,
    fixed_prefix: int,
    min_tokens: int = IMPLICIT_CACHE_MIN_TOKENS,
    block: int = CACHE_BLOCK_TOKENS,
) -> list[int]:
    """Cache-hit prompt tokens of each call of one plan, by the implicit cache's documented rule: the
    longest prefix shared with an earlier request, counted in whole blocks, if at least ``min_tokens``.

    An earlier plan leaves the fixed prefix cached (``warm``); an earlier call of this plan leaves the
    fixed prefix too, and its whole prompt when this request extends it."""
    hits: list[int] = []
    for index, call in enumerate(calls):
        shared = fixed_prefix if warm or index > 0 else 0
        if index > 0 and call.extends_previous:
            shared = max(shared, calls[index - 1].prompt_tokens)
        shared = min(shared, call.prompt_tokens)
        shared -= shared % block
        hits.append(shared if shared >= min_tokens else 0)
    return hits


def marked_prefix_tokens(call: CallTokens, fixed_prefix: int) -> int:
    """Estimated tokens up to and including the call's last marked message: its ``prompt_tokens``
    times the prefix's share of the request's characters, never less than the system prompt and tools."""
    if not call.marked_index or not call.request_chars:
        return min(fixed_prefix, call.prompt_tokens)
    estimate = call.prompt_tokens * call.marked_prefix_chars // call.request_chars
    return min(call.prompt_tokens, max(fixed_prefix, estimate))


def explicit_cache(
    calls: Sequence[CallTokens],
    *,
    warm: bool,
    fixed_prefix: int,
    min_tokens: int = EXPLICIT_CACHE_MIN_TOKENS,
    lookback: int = EXPLICIT_CACHE_LOOKBACK_BLOCKS,
) -> list[tuple[int, int]]:
    """Each call's (hit, creation) prompt tokens under the explicit cache, the markers where the
    requests carry them (the system message and the last user message).

    A call hits the longest cached prefix ending at one of its markers: the system prompt and tools
    (cached by an earlier call of the plan, or by an earlier plan when ``warm``), or an earlier call's
    last marked message, if every request since extends the one before and that message is at most
    ``lookback`` messages before this call's. It writes the rest of its prompt up to its last marker
    that ends a block of at least ``min_tokens``; tokens after its last marker are plain input.

    A marked prefix keeps the estimate of the first call that sent it: later calls send the same
    characters, and re-estimating them at another call's tokens per character would move the hit."""
    result: list[tuple[int, int]] = []
    system_cached = warm
    # Marked message index -> estimated prefix tokens, for the chain of requests extending each other.
    marked: dict[int, int] = {}
    for call in calls:
        if not call.extends_previous:
            marked = {}
        system = min(fixed_prefix, call.prompt_tokens)
        last = system
        if call.marked_index:
            last = marked.get(call.marked_index) or min(
                call.prompt_tokens, max([marked_prefix_tokens(call, fixed_prefix), *marked.values()])
            )
        found = [system] if system_cached else []
        found += [
            tokens
            for index, tokens in marked.items()
            if call.marked_index - index <= lookback and tokens <= last
        ]
        hit = max((tokens for tokens in found if tokens >= min_tokens), default=0)
        written_to = max((tokens for tokens in (system, last) if tokens >= min_tokens), default=0)
        result.append((hit, max(0, written_to - hit)))
        system_cached = system_cached or system >= min_tokens
        if call.marked_index and last >= min_tokens:
            marked[call.marked_index] = last
    return result


def with_cache_hits(cases: list[CaseUsage]) -> list[CaseUsage]:
    """The cases in run order with their simulated cache hits: the first plan that calls the model
    finds the cache cold, every later one finds the fixed prefix there (warm), or none does (cold)."""
    fixed = fixed_prefix_tokens(cases)
    result: list[CaseUsage] = []
    warm = False
    for case in cases:
        hits = cache_hits(case.calls, warm=warm, fixed_prefix=fixed)
        cold = cache_hits(case.calls, warm=False, fixed_prefix=fixed)
        explicit_cold = explicit_cache(case.calls, warm=False, fixed_prefix=fixed)
        explicit_warm = explicit_cache(case.calls, warm=warm, fixed_prefix=fixed)
        result.append(
            replace(
                case,
                cached_prompt_tokens=sum(hits),
                cached_prompt_tokens_cold=sum(cold),
                explicit_cached_prompt_tokens_cold=sum(hit for hit, _ in explicit_cold),
                explicit_cache_creation_tokens_cold=sum(created for _, created in explicit_cold),
                explicit_cached_prompt_tokens_warm=sum(hit for hit, _ in explicit_warm),
                explicit_cache_creation_tokens_warm=sum(created for _, created in explicit_warm),
            )
        )
        warm = warm or bool(case.calls)
    return result


def corpus_names() -> list[str]:
    return sorted(path.stem for path in CORPUS.glob("*.json"))


def replay_case(name: str, merchant: Any, brand: Any, users: Any) -> CaseUsage:
    """Plans one recorded goal with the shipped planner and the recorded answers as the model."""
    from cartpilot.goals.model import GoalContext
    from cartpilot.planning.providers.openai import OpenAiCompatibleChat
    from cartpilot.planning.rules import PlanningFailed, PlanningRequest
    from cartpilot.planning.setup import PlannerOverrides, configured_planner

    fixture = json.loads((CORPUS / f"{name}.json").read_text(encoding="utf-8"))
    answers = RecordedAnswers(fixture["responses"])
    provider = OpenAiCompatibleChat(
        base_url=DASHSCOPE,
        model=MODEL,
        api_key=lambda: "sk-replay",
        context_cache=brand.planner.contextCache,
        transport=httpx.MockTransport(answers),
    )
    planner = configured_planner(
        brand,
        merchant,
        environ={},
        overrides=PlannerOverrides(provider="openai", base_url=DASHSCOPE, model=MODEL),
        provider=provider,
    )
    request = PlanningRequest(
        goalId=f"g-corpus-{name}",
        goal=fixture["goal"],
        context=GoalContext.model_validate(fixture.get("context", {})),
        profile=users.get(fixture["userId"]),
        brand=brand,
        today=TODAY,
    )
    outcome = "plan"
    try:
        info = planner.plan(request).planner
        kind = "rules-fallback" if info.fallbackFrom else info.kind
    except PlanningFailed as refused:
        outcome = "refused"
        kind = refused.planner.kind if refused.planner is not None else "rules"
    finally:
        provider.close()
    prompt, completion = answers.usage()
    calls = answers.calls()
    return CaseUsage(
        name,
        kind,
        answers.served,
        prompt,
        completion,
        outcome,
        recorded_cached_prompt_tokens=sum(call.recorded_cached_tokens for call in calls),
        calls=calls,
    )


def corpus_usage(names: Iterable[str] | None = None) -> list[CaseUsage]:
    """Every recorded corpus goal (or the ``names`` given) replayed through the planner as it ships,
    against the sandbox merchant on loopback with its clock fixed at 01:00 UTC on 2026-11-25."""
    from cartpilot.brands.config import load_brand
    from cartpilot.brands.users import directory_for
    from cartpilot.commerce.ucp import UcpMerchant
    from cartpilot_local.merchant.app import create_app
    from cartpilot_local.servers import serve_in_thread

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    # The platform's profile served in memory, as the regression tests serve it to the sandbox.
    from tests.fakes.platform import LocalPlatform

    brand = load_brand("sandbox")
    users = directory_for(brand)
    platform = LocalPlatform()
    server = serve_in_thread(create_app(clock=lambda: MERCHANT_NOW, profile_fetcher=platform.fetch))
    merchant = UcpMerchant.for_url(server.url, identity=platform.identity())
    try:
        return with_cache_hits(
            [replay_case(name, merchant, brand, users) for name in (names or corpus_names())]
        )
    finally:
        merchant.close()
        server.stop()


def summary(cases: list[CaseUsage]) -> dict[str, Any]:
    """Medians and means per plan over the corpus, and over the goals that still reach the model."""
    prompt = [case.prompt_tokens for case in cases]
    modelled = [case.prompt_tokens for case in cases if case.model_calls]
    return {
        "cases": len(cases),
        "servedByRulesFirst": sum(1 for case in cases if case.model_calls == 0),
        "medianPromptTokens": statistics.median(prompt) if prompt else 0,
        "meanPromptTokens": round(statistics.mean(prompt)) if prompt else 0,
        "medianCompletionTokens": statistics.median(case.completion_tokens for case in cases) if cases else 0,
        "medianModelCalls": statistics.median(case.model_calls for case in cases) if cases else 0,
        "medianPromptTokensReachingModel": statistics.median(modelled) if modelled else 0,
        "targetMedianPromptTokens": TARGET_MEDIAN_PROMPT_TOKENS,
        "fixedPrefixTokens": fixed_prefix_tokens(cases),
        "everyCallExtendsThePrevious": all(
            call.extends_previous for case in cases for call in case.calls[1:]
        ),
        "meanCachedPromptTokens": round(statistics.mean(c.cached_prompt_tokens for c in cases))
        if cases
        else 0,
        "meanCachedPromptTokensCold": round(statistics.mean(c.cached_prompt_tokens_cold for c in cases))
        if cases
        else 0,
        "meanRecordedCachedPromptTokens": round(
            statistics.mean(c.recorded_cached_prompt_tokens for c in cases)
        )
        if cases
        else 0,
        "cacheMarkersPerRequest": sorted({call.cache_markers for case in cases for call in case.calls}),
        "mostMessagesAppendedByACall": max(
            (call.appended_messages for case in cases for call in case.calls), default=0
        ),
        **{
            key: round(statistics.mean(getattr(c, field) for c in cases)) if cases else 0
            for key, field in (
                ("meanExplicitCachedPromptTokensCold", "explicit_cached_prompt_tokens_cold"),
                ("meanExplicitCacheCreationTokensCold", "explicit_cache_creation_tokens_cold"),
                ("meanExplicitCachedPromptTokensWarm", "explicit_cached_prompt_tokens_warm"),
                ("meanExplicitCacheCreationTokensWarm", "explicit_cache_creation_tokens_warm"),
            )
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the cases and the summary as JSON")
    parser.add_argument("goals", nargs="*", help="recording names (default: all)")
    args = parser.parse_args()
    logging.getLogger("cartpilot.planning").setLevel(logging.ERROR)
    cases = corpus_usage(args.goals or None)
    totals = summary(cases)
    if args.json:
        shown = [{key: value for key, value in asdict(case).items() if key != "calls"} for case in cases]
        print(json.dumps({"cases": shown, "summary": totals}, indent=2))
    else:
        header = (
            f"{'recording':34} {'planner':14} {'outcome':8} {'calls':>5} {'prompt':>7} {'compl.':>6} "
            f"{'hits':>6} {'cold':>6} {'rec.':>6}"
        )
        print(header)
        print("-" * len(header))
        for case in cases:
            print(
                f"{case.name:34} {case.planner_kind:14} {case.outcome:8} {case.model_calls:5d} "
                f"{case.prompt_tokens:7d} {case.completion_tokens:6d} {case.cached_prompt_tokens:6d} "
                f"{case.cached_prompt_tokens_cold:6d} {case.recorded_cached_prompt_tokens:6d}"
            )
        print("-" * len(header))
        print(
            f"{totals['cases']} goals, {totals['servedByRulesFirst']} served without a model call; prompt tokens "
            f"per plan: median {totals['medianPromptTokens']:g}, mean {totals['meanPromptTokens']}; median "
            f"over the goals that reach the model {totals['medianPromptTokensReachingModel']:g}"
        )
        print(
            f"cache hits per plan (mean; implicit cache, >= {IMPLICIT_CACHE_MIN_TOKENS} tokens, fixed prefix "
            f"~{totals['fixedPrefixTokens']} tokens; every call extends the previous: "
            f"{totals['everyCallExtendsThePrevious']}): {totals['meanCachedPromptTokens']} warm between "
            f"plans, {totals['meanCachedPromptTokensCold']} cold, {totals['meanRecordedCachedPromptTokens']} "
            f"as the provider reported when recorded"
        )
        print(
            f"explicit cache per plan (mean; markers per request {totals['cacheMarkersPerRequest']}): "
            f"cold between plans {totals['meanExplicitCachedPromptTokensCold']} read, "
            f"{totals['meanExplicitCacheCreationTokensCold']} written; warm "
            f"{totals['meanExplicitCachedPromptTokensWarm']} read, "
            f"{totals['meanExplicitCacheCreationTokensWarm']} written"
        )
    met = totals["medianPromptTokens"] <= TARGET_MEDIAN_PROMPT_TOKENS
    if not args.json:
        print(
            f"target: median prompt tokens per plan <= {TARGET_MEDIAN_PROMPT_TOKENS}: "
            f"{totals['medianPromptTokens']:g} {'OK' if met else 'MISSED'}"
        )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
