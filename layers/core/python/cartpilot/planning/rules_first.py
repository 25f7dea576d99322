"""Rules first, the model when it matters: a goal whose plan the shop's own rules fix is planned
without a model call.

The model is told to choose the cheapest variant that matches the goal's size and colour and is in
stock, the saved recipient the goal names, the default payment method and the cheapest shipping that
arrives in time. When the goal is plain and those rules leave exactly one answer, the rules planner
finds that answer from the same catalog and quote, and a model call (about 3,000 prompt tokens each,
three calls a plan) would only restate it. The gate below says when that is so; anything it cannot
verify goes to the model, so a wrong "not confident" costs tokens and a wrong "confident" is what
the gate is written to rule out.

Confident when, and only when:

- every word of the goal is explained by what the rules planner read (``explained``): the product's
  words, a quantity, size, colour, recipient, deadline, budget or gift-wrap phrase, or a filler word
  ("for me", "please", "给我"); a budget's currency is written as a word naming one currency; and
  the request's own budget, deadline or recipient does not set aside what the goal says;
- the goal has no text that reads like instructions (the model's rules handle those, and the audit
  shows its reasoning); the product's title and description have none either;
- the goal reads into something to buy (a product named, a quantity that was read), to a recipient
  that is saved or in the request and a payment method the shopper holds, with no destination the
  profile lacks;
- every word of the product's name is carried by the product chosen, and no other in-stock variant
  that fits the size, colour and quantity costs as little, except the same product in the same size
  and another colour when the goal names none (the rules planner's order settles that tie, and the
  shopper sees the colour before approving; a tie in size or between products goes to the model);
- a goal that asks for several products (one size each: ``items``) meets all of the above for each
  of them, and leaves at most one of their colours open;
- the product is in no category the brand denies;
- a deadline, if any, is met by the cheapest shipping option (no trade between price and speed);
- a budget, if any, is met by the plan's total, in its currency.

A goal whose only answer is a refusal the catalog and the quote prove (a denied category, over the
budget, no shipping in time, sold out in the size asked: ``refusals``) is refused the same way, with
the facts in the goal's language, and no model call.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from cartpilot.brands.categories import restriction_for
from cartpilot.planning.assembly import PlanningFailed, PlanningRequest
from cartpilot.planning.explained import why_not_explained
from cartpilot.planning.refusals import (
    CertainRefusal,
    colour_twin,
    refusal_for_nothing_fitting,
    refusal_for_plan,
)
from cartpilot.planning.rules import NothingFits, RulesEvidence, RulesPlanner
from cartpilot.planning.service import Planner
from cartpilot.plans.model import Plan, PlannerInfo

log = logging.getLogger("cartpilot.planning.rules_first")

# Wide on purpose: a false match only sends a goal to the model.
_INSTRUCTION_LIKE = re.compile(
    r"\b(?:ignore|disregard|override|bypass|jailbreak|pretend|instructions?|prompts?|policies|system\s*:|"
    r"you\s+are\s+now|act\s+as|approve|pm_[a-z0-9_]+|payment\s+method|free\s+of\s+charge|"
    r"change\s+the\s+(?:address|quantity|price|recipient)|instead)\b"
    r"|忽略|无视|指令|提示词|系统|改寄|改成|改为|批准|免费|管理员",
    re.IGNORECASE,
)


def reads_like_instructions(text: str) -> bool:
    """Whether text tries to steer a planner rather than say what to buy."""
    return bool(_INSTRUCTION_LIKE.search(text))


@dataclass(frozen=True)
class Verdict:
    confident: bool
    reason: str
    """Why not, in words that carry no goal text (they are logged); "" when confident."""
    refusal: CertainRefusal | None = None
    """Set when the rules prove the goal must be refused: the shopper is told why, no model asked."""
    lookups: tuple[str, ...] = ()


def _doubt_about_item(request: PlanningRequest, evidence: RulesEvidence) -> str | None:
    """Why this product's variant is not the only one the rules allow, or None when it is."""
    intent = evidence.intent
    if evidence.chosen.id != evidence.candidates[0][0].id:
        return "the first choice was refused by the merchant's checkout"
    if evidence.candidates[0][2] < evidence.wordsAsked:
        return "not every word of the goal's product is carried by the product chosen"
    price = evidence.chosen.price.times(intent.quantity).amount_minor
    rivals = [
        variant
        for variant, _, _ in evidence.candidates[1:]
        if variant.price.times(intent.quantity).amount_minor <= price
    ]
    chosen = evidence.chosen
    if any(not colour_twin(rival, chosen) or intent.color is not None for rival in rivals):
        return f"{len(rivals) + 1} variants fit the goal at the same lowest price"
    product = evidence.product
    if reads_like_instructions(f"{product.title}\n{product.description}\n{evidence.chosen.title}"):
        return "the product's text reads like instructions"
    rules = request.brand.category_rules()
    if restriction_for([product.category], rules) == "deny":
        return "the product is in a category the brand denies"
    return None


def _colour_left_open(evidence: RulesEvidence) -> bool:
    """Another colour of the chosen variant fits the goal at the same price (the rules' order chose)."""
    chosen = evidence.chosen
    return any(colour_twin(variant, chosen) for variant, _, _ in evidence.candidates[1:])


def judge(request: PlanningRequest, plan: Plan, evidence: RulesEvidence) -> Verdict:
    """Whether the rules plan is the only one the shop's rules allow for this goal (for each of
    its products, when it asks for several)."""
    if evidence.intent.place is not None:
        return Verdict(False, "the goal names a destination the profile does not hold")
    items = (evidence, *evidence.more)
    for item in items:
        if (doubt := _doubt_about_item(request, item)) is not None:
            return Verdict(False, doubt)
    if sum(1 for item in items if _colour_left_open(item)) > 1:
        # One open colour is a detail the shopper checks; several are combinations to weigh.
        return Verdict(False, "the goal leaves more than one product's colour open")
    if evidence.deliverBy is not None:
        cheapest = min(evidence.options, key=lambda o: (o.price.amount_minor, o.id), default=None)
        if cheapest is None or not cheapest.arrives_by(evidence.deliverBy):
            return Verdict(False, "meeting the deadline needs a faster, dearer option, or none does")
        if plan.summary.shipping.optionId != cheapest.id:
            return Verdict(False, "the shipping chosen is not the cheapest option")
    if evidence.budget is not None:
        total = plan.summary.total
        if total.currency != evidence.budget.currency or total.amount_minor > evidence.budget.amount_minor:
            return Verdict(False, "the plan's total is not within the budget")
    return Verdict(True, "")


class RulesFirstPlanner:
    """The rules planner's plan when the gate is confident; otherwise the model planner's."""

    def __init__(self, rules: RulesPlanner, model: Planner) -> None:
        self.rules = rules
        self.model = model
        self.kind = getattr(model, "kind", "rules")

    def plan(self, request: PlanningRequest) -> Plan:
        verdict, plan = self.try_rules(request)
        if plan is not None:
            log.info("planned by the rules planner first; no model call", extra={"goalId": request.goalId})
            return plan
        if verdict.refusal is not None:
            log.info(
                "refused by the rules planner first; no model call",
                extra={"goalId": request.goalId, "refusal": verdict.refusal.kind},
            )
            raise PlanningFailed(
                verdict.refusal.reason,
                planner=PlannerInfo(
                    kind="rules", model=None, promptVersion="rules-2", lookups=list(verdict.lookups)
                ),
            )
        log.info("asking the model", extra={"goalId": request.goalId, "reason": verdict.reason})
        return self.model.plan(request)

    def try_rules(self, request: PlanningRequest) -> tuple[Verdict, Plan | None]:
        """The gate's verdict, and the rules plan when it is confident (a certain refusal is a
        confident verdict with ``refusal`` set and no plan)."""
        if reads_like_instructions(request.goal):
            return Verdict(False, "the goal has text that reads like instructions"), None
        verdict, plan = self._rules_answer(request)
        if verdict.confident and (doubt := why_not_explained(request)) is not None:
            # The rules answered the goal as they read it; words they did not read may change it.
            return Verdict(False, doubt), None
        return verdict, plan

    def _rules_answer(self, request: PlanningRequest) -> tuple[Verdict, Plan | None]:
        try:
            plan, evidence = self.rules.plan_with_evidence(request)
        except NothingFits as failed:
            refusal = refusal_for_nothing_fitting(request, failed)
            return _refused(refusal, failed.lookups) or Verdict(
                False, "the rules planner cannot plan this goal"
            ), None
        except PlanningFailed:
            # The model may still plan it, or refuse it with a reason the shopper can act on.
            return Verdict(False, "the rules planner cannot plan this goal"), None
        verdict = judge(request, plan, evidence)
        if verdict.confident:
            return verdict, plan
        return _refused(refusal_for_plan(request, plan, evidence), plan.planner.lookups) or verdict, None


def _refused(refusal: CertainRefusal | None, lookups: list[str]) -> Verdict | None:
    """The verdict for a refusal the rules prove, unless a product it rests on has text that reads
    like instructions (the model's rules handle those, and the audit shows its reasoning)."""
    if refusal is None:
        return None
    if any(
        reads_like_instructions(f"{product.title}\n{product.description}") for product in refusal.products
    ):
        return None
    return Verdict(True, "", refusal=refusal, lookups=tuple(lookups))
