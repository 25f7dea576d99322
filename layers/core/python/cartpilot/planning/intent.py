"""Reads a shopping goal, in English or Chinese, into a structured intent.

Deterministic on purpose: this is the offline planner and the fallback when a
model is unavailable, so the same words always give the same intent.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from pydantic import BaseModel, ConfigDict

from cartpilot.kernel.money import Money

_PRODUCTS: tuple[tuple[tuple[str, ...], str, str | None], ...] = (
    # (words that name it, search text, category)
    (
        ("running shoes", "running shoe", "running sneakers", "跑鞋", "跑步鞋", "运动鞋"),
        "running shoes",
        "running-shoes",
    ),
    (("running socks", "sport socks", "跑步袜", "运动袜"), "running socks", "socks"),
    (("socks", "袜子"), "socks", "socks"),
    (("backpack", "双肩包", "背包"), "backpack", "bags"),
    (("water bottle", "水壶", "水杯"), "water bottle", None),
    (("headphones", "earbuds", "耳机"), "headphones", None),
    (("t-shirt", "tee", "t恤", "短袖"), "t-shirt", "apparel"),
    (("jacket", "夹克", "外套"), "jacket", "apparel"),
    (("kitchen knife", "knife", "刀"), "knife", "knives"),
    (("wine", "红酒", "葡萄酒"), "wine", "alcohol"),
    (("book", "书"), "book", "books"),
)

_COLOURS = {
    "black": "black", "white": "white", "red": "red", "blue": "blue", "navy": "navy", "grey": "grey",
    "gray": "grey", "green": "green", "pink": "pink", "yellow": "yellow", "orange": "orange",
    "黑色": "black", "白色": "white", "红色": "red", "蓝色": "blue", "灰色": "grey", "绿色": "green",
    "粉色": "pink", "黄色": "yellow", "橙色": "orange",
}  # fmt: skip

_CITIES = {
    "beijing": "Beijing", "北京": "Beijing", "shanghai": "Shanghai", "上海": "Shanghai",
    "shenzhen": "Shenzhen", "深圳": "Shenzhen", "hangzhou": "Hangzhou", "杭州": "Hangzhou",
    "chengdu": "Chengdu", "成都": "Chengdu", "guangzhou": "Guangzhou", "广州": "Guangzhou",
    "san francisco": "San Francisco", "旧金山": "San Francisco",
}  # fmt: skip

_RELATIONS = (
    (("my friend", "a friend", "friend", "朋友"), "friend"),
    (("my mom", "my mother", "my mum", "my dad", "my father", "my sister", "my brother", "妈妈", "母亲",
      "爸爸", "父亲", "家人"), "family"),
    (("for me", "me a", "myself", "my home", "my address", "home address", "给我", "我自己", "我家"), "self"),
)  # fmt: skip

_GIFT_WRAP = ("gift-wrap", "gift wrap", "giftwrap", "gift wrapped", "wrap them", "wrap it", "礼品包装", "礼物包装",
              "包装成礼物", "礼盒")  # fmt: skip

_MONTHS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip

_NUMBER_WORDS = {"a": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "一": 1, "两": 2, "二": 2, "三": 3,
                 "四": 4, "五": 5}  # fmt: skip

_SIZE = re.compile(r"(?:size|eu|尺码|码数)\s*[:：]?\s*(\d{2}(?:\.5)?)|(\d{2}(?:\.5)?)\s*码", re.IGNORECASE)
_BUDGET_EN = re.compile(
    r"(?:under|below|less than|at most|no more than|max(?:imum)?|budget(?: of| is)?|up to)\s*"
    r"(¥|\$|cny|rmb|usd)?\s*(\d+(?:[.,]\d{1,2})?)\s*(cny|rmb|yuan|usd|dollars|元)?",
    re.IGNORECASE,
)
_BUDGET_ZH = re.compile(
    r"(?:预算|不超过|不要超过|最多)\s*(\d+(?:\.\d{1,2})?)\s*(元|块)?|(\d+(?:\.\d{1,2})?)\s*(?:元|块)以(?:内|下)"
)
_DATE_ISO = re.compile(
    r"(before|by|until|no later than|之前|前)?\s*(\d{4})-(\d{2})-(\d{2})\s*(之前|前)?", re.IGNORECASE
)
_DATE_EN = re.compile(
    r"\b(before|by|until|no later than)\s+(?:the\s+)?"
    r"(?:(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+(\d{1,2})(?:st|nd|rd|th)?"
    r"|(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*)",
    re.IGNORECASE,
)
_DATE_ZH = re.compile(r"(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]\s*(之前|前|以前)?")
_QUANTITY_EN = re.compile(r"\b(a|one|two|three|four|five|\d)\s+(?:pairs?|pieces?|units?|of)\b", re.IGNORECASE)
_QUANTITY_ZH = re.compile(r"([一两二三四五\d])\s*[双件个条]")


class ShoppingIntent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    query: str
    category: str | None = None
    size: str | None = None
    color: str | None = None
    quantity: int = 1
    budget: Money | None = None
    giftWrap: bool = False
    relation: str | None = None
    city: str | None = None
    deliverBy: date | None = None


class GoalNotUnderstood(ValueError):
    """The goal names nothing the planner can buy."""


def _next_occurrence(month: int, day: int, today: date) -> date:
    candidate = date(today.year, month, day)
    return candidate if candidate >= today else date(today.year + 1, month, day)


def _deadline(text: str, today: date) -> date | None:
    """The last acceptable delivery day; "before Feb 5" means Feb 4 at the latest."""
    if match := _DATE_ISO.search(text):
        strict = bool(match.group(1) and match.group(1).lower() in {"before", "之前", "前"}) or bool(
            match.group(5)
        )
        day = date(int(match.group(2)), int(match.group(3)), int(match.group(4)))
        return day - timedelta(days=1) if strict else day
    if match := _DATE_EN.search(text):
        month_name = match.group(2) or match.group(5)
        day_number = int(match.group(3) or match.group(4))
        day = _next_occurrence(_MONTHS[month_name[:3].lower()], day_number, today)
        return day - timedelta(days=1) if match.group(1).lower() == "before" else day
    if match := _DATE_ZH.search(text):
        day = _next_occurrence(int(match.group(1)), int(match.group(2)), today)
        return day - timedelta(days=1) if match.group(3) else day
    return None


def _budget(text: str, default_currency: str) -> Money | None:
    if match := _BUDGET_EN.search(text):
        symbol = (match.group(1) or match.group(3) or "").lower()
        currency = "USD" if symbol in {"$", "usd", "dollars"} else "CNY" if symbol else default_currency
        return Money.from_decimal(match.group(2).replace(",", "."), currency)
    if match := _BUDGET_ZH.search(text):
        return Money.from_decimal(match.group(1) or match.group(3), "CNY")
    return None


def _quantity(text: str) -> int:
    match = _QUANTITY_EN.search(text) or _QUANTITY_ZH.search(text)
    if not match:
        return 1
    word = match.group(1).lower()
    return int(word) if word.isdigit() else _NUMBER_WORDS.get(word, 1)


def _first(text: str, table: dict[str, str]) -> str | None:
    # Longest names first, so "san francisco" wins over a shorter overlapping name.
    for name in sorted(table, key=len, reverse=True):
        if name in text:
            return table[name]
    return None


def parse_goal(goal: str, *, today: date, currency: str) -> ShoppingIntent:
    text = goal.lower()
    product = next(
        ((query, category) for names, query, category in _PRODUCTS if any(name in text for name in names)),
        None,
    )
    if product is None:
        raise GoalNotUnderstood("the goal does not name a product this planner knows how to find")
    size_match = _SIZE.search(goal)
    relation = next((rel for names, rel in _RELATIONS if any(name in text for name in names)), None)
    return ShoppingIntent(
        query=product[0],
        category=product[1],
        size=(size_match.group(1) or size_match.group(2)) if size_match else None,
        color=_first(text, _COLOURS),
        quantity=_quantity(goal),
        budget=_budget(goal, currency),
        giftWrap=any(word in text for word in _GIFT_WRAP),
        relation=relation,
        city=_first(text, _CITIES),
        deliverBy=_deadline(goal, today),
    )
