"""Goals that ask for several products, one size each: "running shoes size 42 and running socks size M".

A goal names one product unless it cannot: two different sizes are never one product's, so only such
a goal is read as several. It is split where it joins them ("and", "plus", "和", "以及", "还有", "、")
and each part is read as a goal of its own (its product words, size, colour, quantity). What the
order as a whole asks (who it is for and where, the deadline, the budget, gift-wrap) may be written
in any one part, and is then the whole order's; two parts that say it differently make the goal
unreadable, as one size too many did. Anything that does not read cleanly this way fails with the
one-size message the shopper would have seen anyway.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date
from typing import Any

from cartpilot.planning.intent import GoalNotUnderstood, GoalReading, SeveralSizes, ShoppingIntent, read_goal

MAX_ITEMS = 5
# Where a goal joins two products; a size is what tells the parts apart, so each part must name one.
_JOINS = re.compile(r"\s+(?:and|plus|as\s+well\s+as)\s+|\s*(?:以及|还有|和|、)\s*", re.IGNORECASE)
# What a part may say for the whole order: (field, its value when the part says nothing).
_ORDER_FIELDS: tuple[tuple[str, Any], ...] = (
    ("relation", None),
    ("person", None),
    ("city", None),
    ("place", None),
    ("deliverBy", None),
    ("budget", None),
    ("giftWrap", False),
    ("giftWrapDeclined", False),
)


def read_items(goal: str, *, today: date, currency: str) -> tuple[ShoppingIntent, ...]:
    """The goal read as one product (``parse_goal``), or, when it names several sizes, as one
    product per size, each carrying the order's recipient, deadline, budget and gift-wrap."""
    return tuple(reading.intent for reading in read_items_in_full(goal, today=today, currency=currency))


def read_items_in_full(goal: str, *, today: date, currency: str) -> tuple[GoalReading, ...]:
    """``read_items``, each product with the part of the goal its reading did not read."""
    try:
        return (read_goal(goal, today=today, currency=currency),)
    except SeveralSizes as several:
        items = _several(goal, today=today, currency=currency)
        if items is None:
            raise several from None
        return items


def _several(goal: str, *, today: date, currency: str) -> tuple[GoalReading, ...] | None:
    parts = [part for part in _JOINS.split(goal) if part.strip()]
    if not 2 <= len(parts) <= MAX_ITEMS:
        return None
    try:
        read = [read_goal(part, today=today, currency=currency) for part in parts]
    except GoalNotUnderstood:
        return None
    if any(not item.intent.keywords or item.intent.size is None for item in read):
        return None
    order: dict[str, Any] = {}
    for field, unsaid in _ORDER_FIELDS:
        said = {getattr(item.intent, field) for item in read} - {unsaid}
        if len(said) > 1:
            return None
        order[field] = said.pop() if said else unsaid
    return tuple(replace(item, intent=item.intent.model_copy(update=order)) for item in read)
