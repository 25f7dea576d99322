"""The model planner: a bounded tool loop, a structured plan draft, repair rounds, hybrid checks, fallback.

Why a draft and not the Plan itself: the Plan is mostly derived data (unit prices, subtotals, the
total, the payment amount, delivery windows, the recipient's address) that the catalog and the
shopper's profile already hold exactly. Asking a model to copy or add them up invites the one
kind of error a purchase cannot have. So the model calls read-only tools and ends with a compact
draft (item ids and quantities, gift-wrap, recipient id, shipping option id, payment method id,
a one-line justification each) whose JSON Schema is the provider's structured-output schema. This
module grounds every id in the tool results, checks the draft against the live catalog
(``checks.py``) and builds the Plan with the same code as the rules planner (``assembly.py``), so
the result validates against ``plans.Plan`` and therefore against ``schemas/plan.schema.json``.

Failure modes, in order:

- the draft is unusable (not JSON, wrong shape, an id no tool returned): the errors go back to the
  model, at most ``maxRepairRounds`` (two) times;
- the model keeps failing, calls tools past its budget, or its provider times out or errors: the
  fallback planner (the rules planner) plans instead, and the plan says why;
- the model refuses (ambiguous goal, over budget, nothing in stock, a denied category): that is an
  answer, not a failure, and becomes the PlanningFailed reason the shopper sees.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from cartpilot.brands.config import MerchantConfig, ModelPrice, PlannerConfig
from cartpilot.commerce.ports import Catalog, Merchant
from cartpilot.kernel.money import Money
from cartpilot.planning.assembly import PlanningFailed, PlanningRequest, assemble_plan
from cartpilot.planning.checks import check_draft
from cartpilot.planning.conversation import (
    AssistantTurn,
    ChatProvider,
    Message,
    ModelReply,
    ModelRequest,
    ModelUnavailable,
    ToolResults,
    Usage,
    UserText,
)
from cartpilot.planning.drafts import DraftRejected, Refusal, ground_draft, parse_draft
from cartpilot.planning.prompts import DRAFT_SCHEMA_NAME, PromptSet, load_prompts
from cartpilot.planning.service import Planner
from cartpilot.planning.storefront import HandlerChooser, Storefronts, StorefrontSource
from cartpilot.planning.tools import ShoppingTools
from cartpilot.plans.model import Plan, PlannerInfo, TokenUsage

log = logging.getLogger("cartpilot.planning.llm")

# Below this, a model call cannot finish in time and only delays the fallback.
_MIN_CALL_SECONDS = 1.0
_REASON_LIMIT = 300


class ModelOutputInvalid(Exception):
    """The model did not produce a usable draft within its repair and tool budgets."""


@dataclass
class PlanningTrace:
    """What one plan cost: model turns, tokens, and where the time went."""

    kind: str
    model: str
    toolRounds: int = 0
    repairRounds: int = 0
    modelCalls: int = 0
    usage: Usage = field(default_factory=Usage)
    modelSeconds: float = 0.0
    totalSeconds: float = 0.0
    fallbackReason: str | None = None

    @property
    def overheadSeconds(self) -> float:
        """The planner's own time: everything but waiting for the model."""
        return max(0.0, self.totalSeconds - self.modelSeconds)


def estimate_cost(usage: Usage, price: ModelPrice | None) -> Money | None:
    """Tokens times the per-million price, rounded up: an estimate should not read as free.

    Prompt tokens the provider served from its context cache are priced at the cached rate, those it
    wrote to an explicit cache at the cache-creation rate (each the input rate when the table has
    none), the rest at the input rate."""
    if price is None:
        return None
    cached = min(usage.cached_prompt_tokens, usage.prompt_tokens)
    created = min(usage.cache_creation_prompt_tokens, usage.prompt_tokens - cached)
    micro = (
        (usage.prompt_tokens - cached - created) * price.inputPerMillion.amount_minor
        + cached * price.cachedInput.amount_minor
        + created * price.cacheCreation.amount_minor
        + usage.completion_tokens * price.outputPerMillion.amount_minor
    )
    return Money(amount_minor=math.ceil(micro / 1_000_000), currency=price.inputPerMillion.currency)


def _short(text: str, limit: int = _REASON_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class LlmPlanner:
    def __init__(
        self,
        provider: ChatProvider,
        merchant: Merchant,
        merchant_config: MerchantConfig,
        *,
        config: PlannerConfig,
        feed: Catalog | None = None,
        elsewhere: StorefrontSource | None = None,
        choose_handler: HandlerChooser | None = None,
        fallback: Planner | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.provider = provider
        self.kind = provider.kind
        self.storefronts = Storefronts(
            merchant, merchant_config, feed, elsewhere=elsewhere, choose_handler=choose_handler
        )
        self._config = config
        self.fallback = fallback
        self._clock = clock

    def plan(self, request: PlanningRequest) -> Plan:
        return self.plan_with_trace(request)[0]

    def plan_with_trace(
        self, request: PlanningRequest, trace: PlanningTrace | None = None
    ) -> tuple[Plan, PlanningTrace]:
        """The plan and what it cost; a trace passed in is filled in even when planning fails."""
        trace = trace or PlanningTrace(kind=self.kind, model=self.provider.model)
        config = self._config
        prompts = load_prompts(config.promptVersion, request.brand, max_tool_rounds=config.maxToolRounds)
        started = self._clock()
        try:
            plan = self._plan_with_model(request, prompts, trace)
        except (ModelUnavailable, ModelOutputInvalid) as failure:
            trace.fallbackReason = _short(f"{self.kind} {self.provider.model}: {failure}")
            log.warning(
                "model planning failed; %s",
                "falling back to the rules planner" if self.fallback else "no fallback configured",
                extra={"goalId": request.goalId, "reason": trace.fallbackReason},
            )
            plan = self._fall_back(request, prompts, trace)
        finally:
            trace.totalSeconds = self._clock() - started
        return plan, trace

    # --- the loop ------------------------------------------------------------------------------

    def _plan_with_model(self, request: PlanningRequest, prompts: PromptSet, trace: PlanningTrace) -> Plan:
        config = self._config
        # Negotiation before the first model call: a merchant that cannot be bought from costs no tokens.
        negotiation: list[str] = []
        negotiated = self.storefronts.negotiate(request, negotiation)
        currency = negotiated.currency(request.brand.currency)
        fulfillment = negotiated.merchant.fulfillment
        tools = ShoppingTools(negotiated.products, fulfillment, request, currency=currency)
        conversation: list[Message] = [
            UserText(
                prompts.user_message(
                    goal=request.goal,
                    today=request.today,
                    currency=request.brand.currency,
                    context=_context_for_model(request),
                )
            )
        ]
        deadline = self._clock() + config.budgetSeconds
        while True:
            allow_tools = trace.toolRounds < config.maxToolRounds
            reply = self._ask(prompts, conversation, allow_tools, deadline, trace)
            conversation.append(AssistantTurn(reply))
            if reply.tool_calls:
                if not allow_tools:
                    raise ModelOutputInvalid(f"still calling tools after {config.maxToolRounds} tool rounds")
                trace.toolRounds += 1
                results = tuple(tools.call(call) for call in reply.tool_calls)
                last = trace.toolRounds >= config.maxToolRounds
                conversation.append(ToolResults(results, note=prompts.finish_message() if last else None))
                continue
            try:
                if reply.finish_reason in {"length", "max_tokens"}:
                    raise DraftRejected(
                        ["the answer was cut off at the token limit; answer with a shorter draft"]
                    )
                outcome = ground_draft(parse_draft(reply.text), tools, request)
            except DraftRejected as rejected:
                if trace.repairRounds >= config.maxRepairRounds:
                    raise ModelOutputInvalid(
                        f"no valid plan draft after {trace.repairRounds} repair rounds: {rejected.errors[0]}"
                    ) from None
                trace.repairRounds += 1
                log.info("plan draft rejected; asking for a repair", extra={"errors": len(rejected.errors)})
                conversation.append(UserText(prompts.repair_message(rejected.errors)))
                continue
            if isinstance(outcome, Refusal):
                raise PlanningFailed(_short(outcome.reason, 500), planner=self._info(trace, prompts))
            lookups = [*negotiation, *tools.memory.lookups]
            checked = check_draft(
                outcome,
                catalog=negotiated.products,
                fulfillment=fulfillment,
                request=request,
                lookups=lookups,
                currency=currency,
            )
            info = self._info(trace, prompts).model_copy(
                update={"adjustments": checked.adjustments, "lookups": lookups}
            )
            return assemble_plan(
                request,
                checked.choices,
                planner=info,
                payment_label="the chosen payment method",
                merchant=negotiated.terms(),
                currency=checked.currency,
            )

    def _ask(
        self,
        prompts: PromptSet,
        conversation: list[Message],
        allow_tools: bool,
        deadline: float,
        trace: PlanningTrace,
    ) -> ModelReply:
        remaining = deadline - self._clock()
        if remaining < _MIN_CALL_SECONDS:
            raise ModelUnavailable(f"the planning time budget of {self._config.budgetSeconds:g} s is spent")
        request = ModelRequest(
            system=prompts.system,
            messages=tuple(conversation),
            tools=prompts.tools,
            response_schema=prompts.draft_schema,
            schema_name=DRAFT_SCHEMA_NAME,
            allow_tools=allow_tools,
            timeout=min(self._config.timeoutSeconds, remaining),
        )
        started = self._clock()
        try:
            reply = self.provider.complete(request)
        finally:
            elapsed = self._clock() - started
            trace.modelSeconds += elapsed
            trace.modelCalls += 1
        trace.usage = trace.usage + reply.usage
        log.info(
            "model turn",
            extra={
                "model": self.provider.model,
                "turn": trace.modelCalls,
                "toolCalls": len(reply.tool_calls),
                "finishReason": reply.finish_reason,
                "promptTokens": reply.usage.prompt_tokens,
                "cachedPromptTokens": reply.usage.cached_prompt_tokens,
                "cacheCreationPromptTokens": reply.usage.cache_creation_prompt_tokens,
                "completionTokens": reply.usage.completion_tokens,
                "ms": round(elapsed * 1000),
            },
        )
        return reply

    # --- results -------------------------------------------------------------------------------

    def _info(self, trace: PlanningTrace, prompts: PromptSet) -> PlannerInfo:
        return PlannerInfo(
            kind=cast(Literal["openai", "bedrock"], self.kind),
            model=self.provider.model,
            promptVersion=prompts.version,
            promptHash=prompts.hash,
            usage=TokenUsage(
                promptTokens=trace.usage.prompt_tokens, completionTokens=trace.usage.completion_tokens
            ),
            estimatedCost=estimate_cost(trace.usage, self._config.prices.get(self.provider.model)),
            toolRounds=trace.toolRounds,
            repairRounds=trace.repairRounds,
        )

    def _fall_back(self, request: PlanningRequest, prompts: PromptSet, trace: PlanningTrace) -> Plan:
        reason = trace.fallbackReason or "the model failed"
        spent = self._info(trace, prompts)
        if self.fallback is None:
            raise PlanningFailed(
                f"the model planner failed and no fallback is configured: {reason}", planner=spent
            )
        try:
            plan = self.fallback.plan(request)
        except PlanningFailed as exc:
            raise PlanningFailed(
                _short(f"{reason}; the rules planner could not plan either: {exc}", 500), planner=spent
            ) from exc
        planner = plan.planner.model_copy(
            update={
                "fallbackFrom": self.kind,
                "fallbackReason": reason,
                "model": spent.model,
                "usage": spent.usage,
                "estimatedCost": spent.estimatedCost,
                "toolRounds": spent.toolRounds,
                "repairRounds": spent.repairRounds,
            }
        )
        return plan.model_copy(update={"planner": planner})


def _context_for_model(request: PlanningRequest) -> dict[str, Any]:
    """What the request's context tells the model: never a name, phone or street."""
    context = request.context
    shown: dict[str, Any] = {}
    if context.recipient is not None:
        address = context.recipient.address
        shown["recipient"] = {"recipientId": "context", "city": address.city, "country": address.country}
    if context.paymentMethodId:
        shown["paymentMethodId"] = context.paymentMethodId
    if context.budget is not None:
        shown["budget"] = context.budget.format()
    if context.deliverBy is not None:
        shown["deliverBy"] = context.deliverBy.isoformat()
    return shown
