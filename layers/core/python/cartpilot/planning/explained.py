"""Whether the rules planner's reading explains every word of a goal.

The rules planner reads a goal into parts it acts on (the product's words, quantity, size, colour,
recipient, deadline, budget, gift-wrap) and passes over the rest. That is right for a planner that
does its best, and wrong for the rules-first gate: "not from Stridex", "delivered tomorrow", "ship
to my office" or "under 10 EUR" each say something the reading did not take in, so the rules plan
may answer another goal than the one written. The gate keeps a rules answer only when every word
is accounted for: read as one of those parts, one of the product's words, or on the short list of
words below that say nothing the plan could get wrong ("for me", "please", "a pair of"). Any other
word, a number, or a sign left over (not, except, tomorrow, office, EUR, dollar, 美元, 不要, 明天, €)
sends the goal to the model.
"""

from __future__ import annotations

import re

from cartpilot.planning.assembly import PlanningRequest
from cartpilot.planning.intent import GoalNotUnderstood, GoalReading
from cartpilot.planning.items import read_items_in_full
from cartpilot.planning.words import words

# Words that carry nothing a plan could honour or miss, around what the goal asks for. Kept short on
# purpose: a word missing here costs a model call, a word wrongly here is a confident wrong answer.
# No negation, no time, no place, no currency, no person belongs here.
FILLER_WORDS = frozenset(
    {
        # English
        "a", "an", "the", "i", "i'd", "i'm", "we", "me", "my", "it", "them", "they", "you", "please", "pls",
        "buy", "get", "order", "purchase", "want", "need", "would", "like", "for", "to", "of", "in", "and",
        "pair", "pairs", "pack", "packs", "ship", "shipped", "send", "deliver", "delivered", "arrive",
        "arrives", "must", "home", "thanks",
        # Chinese
        "给", "我", "帮", "帮我", "请", "麻烦", "买", "要", "想", "想要", "需要", "购买", "的", "了", "一下", "吧",
        "谢谢", "送到", "寄到", "送", "寄", "到", "在",
    }
)  # fmt: skip
# What may stand between words without saying anything: spaces, Latin and Chinese letters (read as
# words above) and ordinary punctuation. Any other sign (€, £, %, +, /) is left over as it is.
_SAID_IN_WORDS = re.compile(r"[\sA-Za-z0-9'’\-\u3400-\u4dbf\u4e00-\u9fff,.;:!?，。；：！？、\"“”()（）]")


def unexplained(reading: GoalReading) -> list[str]:
    """The words and signs of the goal's text that its reading neither read nor took as the product's."""
    product = set(reading.intent.keywords)
    left = [word for word in words(reading.unread) if word not in product and word not in FILLER_WORDS]
    return left + list(_SAID_IN_WORDS.sub("", reading.unread))


def why_not_explained(request: PlanningRequest) -> str | None:
    """Why the rules planner's reading of the goal cannot be trusted to be the goal, or None when it
    can; the reason carries no goal text (it is logged)."""
    try:
        readings = read_items_in_full(request.goal, today=request.today, currency=request.brand.currency)
    except GoalNotUnderstood:
        return "the rules planner cannot read the goal"
    left = sum(len(unexplained(reading)) for reading in readings)
    if left:
        return f"the goal says what the rules planner did not read ({left} words or signs)"
    intents = [reading.intent for reading in readings]
    if any(reading.budgetCurrencyGuessed for reading in readings):
        return "the goal's budget does not say its currency in a word that names one"
    context = request.context
    budget, deadline = intents[0].budget, intents[0].deliverBy
    if context.budget is not None and budget is not None and context.budget != budget:
        return "the goal's budget and the request's differ"
    if context.deliverBy is not None and deadline is not None and context.deliverBy != deadline:
        return "the goal's deadline and the request's differ"
    if context.recipient is not None and any(
        intent.relation not in (None, "self") or intent.city is not None for intent in intents
    ):
        return "the goal names a recipient and the request gives one"
    return None
