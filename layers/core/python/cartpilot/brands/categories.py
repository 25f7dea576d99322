"""Whether an item falls in one of a brand's restricted categories, whatever taxonomy its merchant uses.

A merchant names its categories in its own words, often as a path ("Home & Garden > Kitchen >
Kitchen Knives", Google's "Food, Beverages & Tobacco > Beverages > Alcoholic Beverages > Wine").
Comparing the brand's key with the last level alone lets ``kitchen-knives`` past ``knives: deny``,
so a restricted key matches when its words appear, in order, in any level of the path, each word
compared with plurals folded ("knives" is "knife", "beverages" is "beverage"). Brands list the
aliases their taxonomies use (``alcohol``, ``alcoholic``, ``wine``, ...) as further keys.

Matching errs towards restriction: an item whose path merely mentions a restricted word (a knife
block under "Kitchen Knives") is restricted too; the brand's staff or the shopper's approval is
the cost of that, an unchecked knife the cost of the opposite.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Literal

Restriction = Literal["deny", "staff", "none"]
PATH_SEPARATOR = ">"

_STRICTNESS: dict[str, int] = {"none": 0, "staff": 1, "deny": 2}
_WORD = re.compile(r"[^\W_]+")


def _singular_forms(word: str) -> frozenset[str]:
    """The word and what it is when read as a plural; two words match when these meet."""
    forms = {word}
    if len(word) > 3 and word.endswith("ies"):
        forms.add(word[:-3] + "y")  # batteries, accessories
    if len(word) > 3 and word.endswith("ves"):
        forms |= {word[:-3] + "f", word[:-3] + "fe"}  # shelves, knives
    if len(word) > 2 and word.endswith("es"):
        forms.add(word[:-2])  # boxes, glasses
    if len(word) > 1 and word.endswith("s") and not word.endswith("ss"):
        forms.add(word[:-1])  # spirits, beverages, gloves
    return frozenset(forms)


def category_words(text: str) -> list[frozenset[str]]:
    """Each word of a category level (or of a restricted key), with its singular forms."""
    return [_singular_forms(word) for word in _WORD.findall(text.lower())]


def category_levels(category: str) -> list[str]:
    """The levels of a category path ("Apparel > Shoes" is two); a plain category is one level."""
    return [level.strip() for level in category.split(PATH_SEPARATOR) if level.strip()]


def key_matches(key: str, category: str) -> bool:
    """The key's words appear, in order and next to each other, in one level of the category."""
    wanted = category_words(key)
    if not wanted:
        return False
    for level in category_levels(category):
        words = category_words(level)
        for start in range(len(words) - len(wanted) + 1):
            if all(words[start + i] & forms for i, forms in enumerate(wanted)):
                return True
    return False


def restriction_for(categories: Iterable[str], restricted: Mapping[str, str]) -> Restriction:
    """The strictest rule of every restricted key matching any of the categories; "none" if none does."""
    strictest: Restriction = "none"
    for category in categories:
        for key, rule in restricted.items():
            if _STRICTNESS.get(rule, 0) > _STRICTNESS[strictest] and key_matches(key, category):
                strictest = "deny" if rule == "deny" else "staff"
    return strictest
