"""The model planner over the recorded corpus: tokens, tool rounds and the planner's own overhead.

Replays every recording in ``tests/fixtures/llm/openai`` (model responses in the chat-completions
wire format) through httpx.MockTransport against the sandbox merchant on loopback, with its clock
fixed so delivery windows do not move. Per goal it prints the prompt and completion tokens the
recordings report, the tool and repair rounds, and the planner's overhead per plan: the whole plan
minus the time spent waiting for the model (a replayed model answers in microseconds, and that is
subtracted too). That overhead is shown whole and split into the merchant's read-only lookups
(loopback HTTP to the sandbox) and the planner's own code (prompts, tool dispatch, parsing,
grounding, checks, assembly). Targets: the seed goal in at most 3 tool rounds; overhead excluding
the model call under 20 ms per plan, lookups included.

    .venv/bin/python bench/planner.py [--runs 15] [GOAL ...]

``--record --llm-url URL --model M [--api-key-env VAR]`` runs the corpus goals against a live
OpenAI-compatible model instead and writes its answers over the recordings (network!), for when the
prompts or the model change; ``--record --provider bedrock --model M [--region R]`` does the same for
the Converse recordings in ``tests/fixtures/llm/bedrock`` (your AWS credentials). Every recording
written carries the ``promptVersion`` and ``promptHash`` of the prompts it was made with (the sandbox
brand's, as the tests load them); the regression tests refuse recordings whose prompts are not the
shipped ones, so a prompt change cannot pass on answers the model gave to the old prompts.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
RECORDINGS = ROOT / "tests" / "fixtures" / "llm"
CORPUS = RECORDINGS / "openai"
TODAY = date(2026, 11, 25)
SEED = "seed_en"
TARGET_TOOL_ROUNDS = 3
TARGET_OVERHEAD_MS = 20.0


class Timed:
    """Adds the time spent in every call of the wrapped port to a shared counter."""

    def __init__(self, inner: Any, spent: list[float]) -> None:
        self._inner = inner
        self._spent = spent

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self._spent[0] += time.perf_counter() - started

        return timed


class TimedMerchant:
    """The merchant with its catalog and fulfillment timed (negotiation is not the planner's time)."""

    def __init__(self, inner: Any, spent: list[float]) -> None:
        self._inner = inner
        self.catalog = Timed(inner.catalog, spent)
        self.fulfillment = Timed(inner.fulfillment, spent)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class Recorder(httpx.BaseTransport):
    """Passes requests to a live OpenAI-compatible endpoint and keeps every chat-completion body it answers with."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.bodies: list[dict[str, Any]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.read()
        if response.status_code == 200:
            self.bodies.append(response.json())
        return response


class ConverseRecorder:
    """Passes Converse calls to a live Bedrock client and keeps every response, as botocore's Stubber takes it."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.bodies: list[dict[str, Any]] = []

    def converse(self, **params: Any) -> Any:
        response = self.client.converse(**params)
        self.bodies.append({key: value for key, value in response.items() if key != "ResponseMetadata"})
        return response


def shipped_prompts(brand: Any) -> Any:
    """The prompt set the planner loads for this brand: what a recording made now is made with."""
    from cartpilot.planning.prompts import load_prompts

    config = brand.planner
    return load_prompts(config.promptVersion, brand, max_tool_rounds=config.maxToolRounds)


def recording(fixture: dict[str, Any], prompts: Any, responses: list[dict[str, Any]]) -> dict[str, Any]:
    """The fixture with new answers, stamped with the prompts that produced them (before the answers)."""
    kept = {
        key: value
        for key, value in fixture.items()
        if key not in {"promptVersion", "promptHash", "responses"}
    }
    return {**kept, "promptVersion": prompts.version, "promptHash": prompts.hash, "responses": responses}


def run_goal(
    fixture: dict[str, Any],
    merchant: Any,
    brand: Any,
    users: Any,
    *,
    provider: Any,
) -> dict[str, Any]:
    from cartpilot.goals.model import GoalContext
    from cartpilot.planning.llm import LlmPlanner, PlanningTrace
    from cartpilot.planning.rules import PlanningFailed, PlanningRequest, RulesPlanner

    merchant_seconds = [0.0]
    timed = TimedMerchant(merchant, merchant_seconds)
    planner = LlmPlanner(
        provider,
        timed,
        brand.merchant(),
        config=brand.planner,
        fallback=RulesPlanner(timed, brand.merchant()),
    )
    request = PlanningRequest(
        goalId="g-bench",
        goal=fixture["goal"],
        context=GoalContext.model_validate(fixture.get("context", {})),
        profile=users.get(fixture["userId"]),
        brand=brand,
        today=TODAY,
    )
    trace = PlanningTrace(kind=provider.kind, model=provider.model)
    outcome = "plan"
    try:
        plan, _ = planner.plan_with_trace(request, trace)
        if plan.planner.fallbackFrom:
            outcome = "fallback"
    except PlanningFailed:
        outcome = "refused"
    return {
        "outcome": outcome,
        "prompt": trace.usage.prompt_tokens,
        "completion": trace.usage.completion_tokens,
        "tool_rounds": trace.toolRounds,
        "repairs": trace.repairRounds,
        "overhead_ms": trace.overheadSeconds * 1000,
        "merchant_ms": merchant_seconds[0] * 1000,
        "own_ms": (trace.overheadSeconds - merchant_seconds[0]) * 1000,
    }


def replay_once(name: str, merchant: Any, brand: Any, users: Any) -> dict[str, Any]:
    from cartpilot.planning.providers.openai import OpenAiCompatibleChat

    fixture = json.loads((CORPUS / f"{name}.json").read_text(encoding="utf-8"))
    responses = iter(fixture["responses"])

    def model(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=next(responses))

    provider = OpenAiCompatibleChat(
        base_url="https://dashscope.aliyuncs.com/compatible-mode/v1",
        model="qwen-plus",
        api_key=lambda: None,
        context_cache=brand.planner.contextCache,
        transport=httpx.MockTransport(model),
    )
    try:
        return run_goal(fixture, merchant, brand, users, provider=provider)
    finally:
        provider.close()


def stale_recordings(names: list[str], brand: Any) -> list[str]:
    """The replayed recordings that were not made with the shipped prompts."""
    prompts = shipped_prompts(brand)
    stale = []
    for name in names:
        fixture = json.loads((CORPUS / f"{name}.json").read_text(encoding="utf-8"))
        if (fixture.get("promptVersion"), fixture.get("promptHash")) != (prompts.version, prompts.hash):
            stale.append(name)
    return stale


def live_provider(args: argparse.Namespace, brand: Any) -> tuple[Any, Any]:
    """The provider to record with, and the recorder that keeps what the live model answers."""
    if args.provider == "bedrock":
        from cartpilot.adapters.aws.bedrock import bedrock_converse

        config = brand.planner.model_copy(
            update={"provider": "bedrock", "model": args.model, "region": args.region}
        )
        bedrock = bedrock_converse(config)
        converse = ConverseRecorder(bedrock.client)
        bedrock.client = converse
        return bedrock, converse
    from cartpilot.planning.providers.openai import OpenAiCompatibleChat

    api_key = os.environ.get(args.api_key_env) if args.api_key_env else None
    recorder = Recorder()
    chat = OpenAiCompatibleChat(
        base_url=args.llm_url,
        model=args.model,
        api_key=lambda: api_key,
        context_cache=brand.planner.contextCache,
        transport=recorder,
    )
    return chat, recorder


def record(names: list[str], merchant: Any, brand: Any, users: Any, args: argparse.Namespace) -> int:
    """Runs each recorded goal against a live model and writes its answers over the recording."""
    corpus = RECORDINGS / args.provider
    prompts = shipped_prompts(brand)
    for name in names:
        path = corpus / f"{name}.json"
        fixture = json.loads(path.read_text(encoding="utf-8"))
        if args.provider == "bedrock":
            fixture["modelId"] = args.model
        provider, recorder = live_provider(args, brand)
        try:
            result = run_goal(fixture, merchant, brand, users, provider=provider)
        finally:
            if hasattr(provider, "close"):
                provider.close()
        written = recording(fixture, prompts, recorder.bodies)
        path.write_text(json.dumps(written, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        print(
            f"{name:34} {result['outcome']:8} {result['tool_rounds']} tool rounds, {len(recorder.bodies)} answers"
        )
    print(f"re-recorded with prompts {prompts.version} {prompts.hash}")
    print("run tests/unit/test_llm_planner_regression.py (and test_llm_bedrock.py) to see what changed")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="replays per recording (the median is shown)")
    parser.add_argument(
        "--record",
        action="store_true",
        help="re-record the corpus against a live model instead of replaying it",
    )
    parser.add_argument(
        "--provider",
        choices=("openai", "bedrock"),
        default="openai",
        help="with --record: which recordings, and the API to record them from (default: openai)",
    )
    parser.add_argument("--llm-url", help="with --record: OpenAI-compatible base URL")
    parser.add_argument("--model", help="with --record: model name (Bedrock: model id)")
    parser.add_argument("--api-key-env", help="with --record: environment variable holding the API key")
    parser.add_argument("--region", help="with --record --provider bedrock: AWS region")
    parser.add_argument("goals", nargs="*", help="recording names (default: all)")
    args = parser.parse_args()
    if args.record and not args.model:
        parser.error("--record needs --model")
    if args.record and args.provider == "openai" and not args.llm_url:
        parser.error("--record needs --llm-url for the openai recordings")
    # Fallbacks are counted in the table; their log lines would only interleave with it.
    logging.getLogger("cartpilot.planning").setLevel(logging.ERROR)

    from cartpilot.brands.config import load_brand
    from cartpilot.brands.users import directory_for
    from cartpilot.commerce.ucp import UcpMerchant
    from cartpilot_local.merchant.app import create_app
    from cartpilot_local.servers import serve_in_thread

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    # The platform's profile served in memory, as the regression tests serve it to the sandbox: the
    # merchant verifies the platform's signed requests against it.
    from tests.fakes.platform import LocalPlatform

    brand = load_brand("sandbox")
    users = directory_for(brand)
    platform = LocalPlatform()
    server = serve_in_thread(
        create_app(clock=lambda: datetime(2026, 11, 25, 1, 0, tzinfo=UTC), profile_fetcher=platform.fetch)
    )
    merchant = UcpMerchant.for_url(server.url, identity=platform.identity())
    corpus = RECORDINGS / args.provider if args.record else CORPUS
    names = args.goals or sorted(path.stem for path in corpus.glob("*.json"))
    if args.record:
        try:
            return record(names, merchant, brand, users, args)
        finally:
            merchant.close()
            server.stop()
    rows: list[tuple[str, dict[str, Any], dict[str, float]]] = []
    try:
        for name in names:
            replay_once(name, merchant, brand, users)  # warm connections and caches
            runs = [replay_once(name, merchant, brand, users) for _ in range(args.runs)]
            medians = {
                key: statistics.median(run[key] for run in runs)
                for key in ("overhead_ms", "merchant_ms", "own_ms")
            }
            rows.append((name, runs[0], medians))
    finally:
        merchant.close()
        server.stop()

    header = (
        f"{'recording':34} {'outcome':8} {'prompt':>7} {'compl.':>6} {'tools':>5} {'repairs':>7} "
        f"{'excl. model ms':>14} {'lookups ms':>10} {'own code ms':>11}"
    )
    print(f"Model planner over {len(rows)} recorded goals, median of {args.runs} replays each")
    stale = stale_recordings(names, brand)
    if stale:
        print(
            f"note: {len(stale)} recordings were made with other prompts than the shipped ones "
            f"({', '.join(stale[:3])}{', ...' if len(stale) > 3 else ''}); re-record them with --record"
        )
    print(header)
    print("-" * len(header))
    for name, first, medians in rows:
        print(
            f"{name:34} {first['outcome']:8} {first['prompt']:7d} {first['completion']:6d} "
            f"{first['tool_rounds']:5d} {first['repairs']:7d} {medians['overhead_ms']:14.2f} "
            f"{medians['merchant_ms']:10.2f} {medians['own_ms']:11.2f}"
        )
    print("-" * len(header))

    def spread(key: str) -> str:
        values = sorted(medians[key] for _, _, medians in rows)
        p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
        return f"median {statistics.median(values):.2f} ms, p95 {p95:.2f} ms, max {values[-1]:.2f} ms"

    print(
        f"per plan: prompt tokens mean {statistics.mean(r[1]['prompt'] for r in rows):.0f}, "
        f"completion tokens mean {statistics.mean(r[1]['completion'] for r in rows):.0f}, "
        f"tool rounds mean {statistics.mean(r[1]['tool_rounds'] for r in rows):.2f} "
        f"(max {max(r[1]['tool_rounds'] for r in rows)})"
    )
    print(f"overhead excl. model call: {spread('overhead_ms')}")
    print(f"  merchant lookups:        {spread('merchant_ms')}")
    print(f"  planner's own code:      {spread('own_ms')}")
    seed_rounds = next(first["tool_rounds"] for name, first, _ in rows if name == SEED)
    worst = max(medians["overhead_ms"] for _, _, medians in rows)
    rounds_ok = seed_rounds <= TARGET_TOOL_ROUNDS
    overhead_ok = worst < TARGET_OVERHEAD_MS
    print(
        f"target: seed goal in <= {TARGET_TOOL_ROUNDS} tool rounds: {seed_rounds} {'OK' if rounds_ok else 'MISSED'}"
    )
    print(
        f"target: overhead excl. model < {TARGET_OVERHEAD_MS:.0f} ms per plan: worst {worst:.2f} ms "
        f"{'OK' if overhead_ok else 'MISSED'}"
    )
    return 0 if rounds_ok and overhead_ok else 1


if __name__ == "__main__":
    sys.exit(main())
