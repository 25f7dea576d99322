"""Prompt tokens per plan over the recorded corpus, with the planner as it ships.

Replays every recording in ``tests/fixtures/llm/openai`` (model answers in the chat-completions wire
format, served by httpx.MockTransport in the order they were recorded) through the brand's planner
as ``planning.setup.configured_planner`` builds it for a model provider, against the sandbox
merchant on loopback with its clock fixed, as the regression tests do. Only the model calls the
planner actually makes are counted: a goal the rules planner serves first costs no tokens, and the
tokens of a call are the ``usage`` the provider reported for that recorded answer.

    .venv/bin/python bench/corpus_tokens.py [--json] [GOAL ...]

``corpus_usage()`` is the library entry point (``bench/cost.py`` prices the planner with it).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass
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


class RecordedAnswers:
    """Serves one recording's answers in order; counts what was asked for."""

    def __init__(self, responses: list[dict[str, Any]]) -> None:
        self.responses = responses
        self.served = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.served >= len(self.responses):
            return httpx.Response(500, json={"error": {"code": "replay_exhausted"}})
        self.served += 1
        return httpx.Response(200, json=self.responses[self.served - 1])

    def usage(self) -> tuple[int, int]:
        answered = self.responses[: self.served]
        return (
            sum(answer["usage"]["prompt_tokens"] for answer in answered),
            sum(answer["usage"]["completion_tokens"] for answer in answered),
        )


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
        base_url=DASHSCOPE, model=MODEL, api_key=lambda: "sk-replay", transport=httpx.MockTransport(answers)
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
    return CaseUsage(name, kind, answers.served, prompt, completion, outcome)


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
        return [replay_case(name, merchant, brand, users) for name in (names or corpus_names())]
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
        print(json.dumps({"cases": [asdict(case) for case in cases], "summary": totals}, indent=2))
    else:
        header = f"{'recording':34} {'planner':14} {'outcome':8} {'calls':>5} {'prompt':>7} {'compl.':>6}"
        print(header)
        print("-" * len(header))
        for case in cases:
            print(
                f"{case.name:34} {case.planner_kind:14} {case.outcome:8} {case.model_calls:5d} "
                f"{case.prompt_tokens:7d} {case.completion_tokens:6d}"
            )
        print("-" * len(header))
        print(
            f"{totals['cases']} goals, {totals['servedByRulesFirst']} served without a model call; prompt tokens "
            f"per plan: median {totals['medianPromptTokens']:g}, mean {totals['meanPromptTokens']}; median "
            f"over the goals that reach the model {totals['medianPromptTokensReachingModel']:g}"
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
