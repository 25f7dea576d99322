"""Reads a shopping goal, in English or Chinese, into what it asks besides the product itself.

The product is found by the goal's own words in the merchant's catalog or feed (``ranking.py``);
this module reads everything else: quantity, size, colour, who it is for and where, the deadline,
the budget, and whether gift-wrap is wanted or declined. Each part it reads is blanked out of the
text, and the words left over (less words that name no product: "buy", "please", "给我") are the
product's key words.

Deterministic on purpose: this is the offline planner and the fallback when a model is unavailable,
so the same words always give the same intent. A quantity that was written is never dropped: it
is read (digits, "two", "a dozen", "十双") or planning fails saying why.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from pydantic import BaseModel, ConfigDict

from cartpilot.kernel.money import Money
from cartpilot.planning.variants import COLOURS, normalize_size
from cartpilot.planning.words import is_cjk, words

MAX_QUANTITY = 20  # plans.model.LineRef: a plan buys at most 20 of one item

_MONTHS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
_MONTH_NAMES = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"

_EN_NUMBERS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30,
    "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
# Words that multiply what comes before them: "two million" is 2,000,000, never 2 (nor 2 + a million).
_EN_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_ZH_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8,
              "九": 9}  # fmt: skip
_ZH_UNITS = {"十": 10, "百": 100, "千": 1_000}

_CITIES = {
    "beijing": "Beijing", "北京": "Beijing", "shanghai": "Shanghai", "上海": "Shanghai",
    "shenzhen": "Shenzhen", "深圳": "Shenzhen", "hangzhou": "Hangzhou", "杭州": "Hangzhou",
    "chengdu": "Chengdu", "成都": "Chengdu", "guangzhou": "Guangzhou", "广州": "Guangzhou",
    "nanjing": "Nanjing", "南京": "Nanjing", "wuhan": "Wuhan", "武汉": "Wuhan", "xi'an": "Xi'an",
    "xian": "Xi'an", "西安": "Xi'an", "chongqing": "Chongqing", "重庆": "Chongqing", "tianjin": "Tianjin",
    "天津": "Tianjin", "suzhou": "Suzhou", "苏州": "Suzhou", "xiamen": "Xiamen", "厦门": "Xiamen",
    "qingdao": "Qingdao", "青岛": "Qingdao", "changsha": "Changsha", "长沙": "Changsha",
    "kunming": "Kunming", "昆明": "Kunming", "hong kong": "Hong Kong", "香港": "Hong Kong",
    "san francisco": "San Francisco", "旧金山": "San Francisco", "new york": "New York", "纽约": "New York",
    "london": "London", "伦敦": "London", "singapore": "Singapore", "新加坡": "Singapore",
    "tokyo": "Tokyo", "东京": "Tokyo",
}  # fmt: skip

_CITY_IN_CHINESE = {city: name for name, city in _CITIES.items() if is_cjk(name)}


def city_in_chinese(city: str) -> str:
    """The city as a Chinese goal writes it ("Beijing" is 北京), else as given."""
    return _CITY_IN_CHINESE.get(city, city)


# (words that name the person, who they are, the relation saved recipients are filed under)
_PEOPLE: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("girlfriend", "女朋友", "女友"), "girlfriend", "partner"),
    (("boyfriend", "男朋友", "男友"), "boyfriend", "partner"),
    (("partner",), "partner", "partner"),
    (("grandmother", "grandma", "granny", "奶奶", "外婆", "姥姥"), "grandmother", "family"),
    (("grandfather", "grandpa", "爷爷", "外公", "姥爷"), "grandfather", "family"),
    (("mother", "mom", "mum", "mommy", "妈妈", "母亲", "老妈"), "mother", "family"),
    (("father", "dad", "daddy", "爸爸", "父亲", "老爸"), "father", "family"),
    (("sister", "姐姐", "妹妹"), "sister", "family"),
    (("brother", "哥哥", "弟弟"), "brother", "family"),
    (("wife", "老婆", "妻子", "太太"), "wife", "family"),
    (("husband", "老公", "丈夫"), "husband", "family"),
    (("daughter", "女儿"), "daughter", "family"),
    (("son", "儿子"), "son", "family"),
    (("aunt", "auntie", "阿姨", "姑姑", "舅妈"), "aunt", "family"),
    (("uncle", "叔叔", "舅舅", "伯伯"), "uncle", "family"),
    (("cousin", "表哥", "表姐", "表妹", "表弟", "堂哥", "堂姐"), "cousin", "family"),
    (("parents", "父母", "爸妈"), "parents", "family"),
    (("family", "家人"), "family", "family"),
    (("granddaughter", "孙女", "外孙女"), "granddaughter", "family"),
    (("grandson", "孙子", "外孙"), "grandson", "family"),
    (("niece", "侄女", "外甥女"), "niece", "family"),
    (("nephew", "侄子", "外甥"), "nephew", "family"),
    (
        ("my child", "my kid", "my kids", "my children", "our kids", "our children", "孩子", "小孩"),
        "child",
        "family",
    ),
    (("colleague", "coworker", "co-worker", "boss", "同事", "老板", "领导"), "colleague", "colleague"),
    (("neighbour", "neighbor", "邻居"), "neighbour", "neighbour"),
    (("teacher", "老师"), "teacher", "teacher"),
    (("friend", "buddy", "朋友", "好友", "闺蜜"), "friend", "friend"),
)
# The English names of each person, as saved recipients' ids use them ("mother-hangzhou").
PERSON_NAMES: dict[str, tuple[str, ...]] = {
    person: tuple(
        dict.fromkeys(
            word for name in names if not is_cjk(name) for word in name.split() if word not in {"my", "our"}
        )
    )
    for names, person, _ in _PEOPLE
}
_SELF = re.compile(
    r"\b(?:for\s+(?:me|myself)|to\s+me|myself|(?:to\s+)?my\s+(?:home\s+address|home|place|address|flat|apartment)"
    r"|home\s+address|ship\s+(?:it\s+|them\s+)?home)\b|我自己|给我自己|我家|家里|给我|寄给我|送给我",
    re.IGNORECASE,
)

_GIFT_WRAP_DECLINED = re.compile(
    r"\b(?:no|without|w/o|skip(?:\s+the)?|don'?t|do\s+not|not|never|no\s+need\s+(?:for|to))\s+"
    r"(?:any\s+|the\s+|a\s+)?(?:gift[\s-]*)?wrap(?:ping|ped|s)?\b(?:\s+(?:them|it|needed|please))?"
    r"|\bgift[\s-]*wrap(?:ping)?\s*(?::\s*no|not\s+needed)\b"
    r"|(?:不要|不用|不需要|无需|无须|别|不必|免)(?:给我)?(?:做|加|进行)?(?:礼品|礼物)?包装",
    re.IGNORECASE,
)
_GIFT_WRAP = re.compile(
    r"\bgift[\s-]*wrap(?:ping|ped|s)?\b|\bwrap(?:ped)?\s+(?:them|it|this|as\s+a\s+gift)\b"
    r"|礼品包装|礼物包装|包装成礼物|礼盒装?|礼品装|包装一下",
    re.IGNORECASE,
)

_LETTERS = r"XXXL|XXL|XXS|XL|XS|2XL|3XL|S|M|L"
# Longest first: "extra large" is XL, never L with "extra" left over for the search.
_COMPOUND_SIZE_WORDS = (
    r"(?:double|extra)[\s-]+extra[\s-]+(?:large|small)|xx-(?:large|small)"
    r"|extra[\s-]+(?:large|small)|x-(?:large|small)"
)
_SIZE_WORDS = rf"{_COMPOUND_SIZE_WORDS}|small|medium|large"
_SIZE_PATTERNS = (
    re.compile(
        rf"(?:\bsize|\beu|尺码|码数|鞋码)\s*[:：]?\s*(\d{{1,2}}(?:[.,]5)?|{_LETTERS}|{_SIZE_WORDS})(?![\w.])",
        re.IGNORECASE,
    ),
    re.compile(rf"\b({_SIZE_WORDS})\s+size\b", re.IGNORECASE),
    # Only a compound size word stands alone as a size: "a large mug" may describe the mug.
    re.compile(rf"\b({_COMPOUND_SIZE_WORDS})\b", re.IGNORECASE),
    re.compile(r"(?<![\d.])(\d{2}(?:\.5)?)\s*(?:码|号)"),
    re.compile(rf"(?<![A-Za-z])({_LETTERS})\s*(?:码|号)", re.IGNORECASE),
    re.compile(r"(加小号|加小码|小号|小码|中号|中码|加大号|加大码|特大号|特大码|加加大|大号|大码)"),
    # A letter size on its own, in capitals, as shoppers write it: "a black tee, M".
    re.compile(rf"(?<![\w\-'’])({_LETTERS})(?![\w\-'’])"),
)

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
    rf"\b(before|by|until|no later than)\s+(?:the\s+)?"
    rf"(?:({_MONTH_NAMES})\s+(\d{{1,2}})(?:st|nd|rd|th)?|(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH_NAMES}))",
    re.IGNORECASE,
)
_DATE_ZH = re.compile(r"(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]\s*(之前|前|以前)?")

_NUMBER_WORD = "|".join(sorted(_EN_NUMBERS, key=len, reverse=True))
_SCALE_WORD = "|".join(_EN_SCALES)
# A number in words, whole: "twenty-five", "a hundred", "two million", "one hundred and twenty",
# "3 thousand"; "a" and digits count only before a scale word.
_NUMBER_PHRASE = (
    rf"(?:(?:\ba|(?<![\w.,/:])\d+)\s+(?={_SCALE_WORD}))?\b(?:{_NUMBER_WORD}|{_SCALE_WORD})"
    rf"(?:(?:[\s-]+|\s+and\s+)(?:{_NUMBER_WORD}|{_SCALE_WORD})\b)*"
)
_ZH_NUMERAL = r"\d+[十百千万亿]*|[零〇一二两三四五六七八九十百千万亿]+"
_MEASURES_EN = (
    r"pairs?|pieces?|pcs|units?|items?|packs?|sets?|boxes|box|bottles?|cans?|bags?|copies|copy|rolls?"
)
# "two *pairs of* socks": the measure and "of" go with the number; a measure alone may be the product.
_MEASURE_OF = re.compile(rf"\s*(?:{_MEASURES_EN})\s+of\b", re.IGNORECASE)
_QUANTITY_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b(?:qty|quantity)\s*[:=]?\s*([-−]?\d+)\b", re.IGNORECASE), "digits"),
    (
        re.compile(rf"(?<![\w.,/:])([-−]?\d+)(?:\s*(?:×|x\b)|(?=\s*(?:{_MEASURES_EN})\b))", re.IGNORECASE),
        "digits",
    ),
    (re.compile(r"(?:^|\s)(?:x|×)\s*([-−]?\d+)\b", re.IGNORECASE), "digits"),
    (re.compile(r"\b(half\s+a|a|one|two|three|four|five|\d+)\s+dozens?\b", re.IGNORECASE), "dozen"),
    (re.compile(r"(半|[一两二三四五六七八九十\d]+)打(?!折|印|包|开|车|电话|算)"), "zh-dozen"),
    (
        re.compile(r"\ba\s+(?:couple|pair)\s+of\b|\ba(?=\s+(?:" + _MEASURES_EN + r")\s+of\b)", re.IGNORECASE),
        "phrase",
    ),
    (
        re.compile(
            rf"(负|[-−])?({_ZH_NUMERAL})\s*"
            r"(双|件|个|条|只|支|瓶|盒|套|本|把|副|张|顶|台|包|袋|罐|对|份|部|组|卷|枚|片|盏|床)"
        ),
        "zh",
    ),
    # A quantity written without a number: how many is for the shopper to say, not for us to guess.
    (
        re.compile(r"\b(?:a\s+few|several|many|lots\s+of|a\s+lot\s+of|a\s+bunch\s+of)\b", re.IGNORECASE),
        "vague",
    ),
    (re.compile(r"(?:好|若干)?几(?:双|件|个|条|只|支|瓶|盒|套|本|把|副|张|顶|台|包|袋|罐|对|份)"), "vague"),
    (
        re.compile(
            rf"({_NUMBER_PHRASE})\b(?!\s*-|\s+of\s+(?:the|them|these|those)\b)",
            re.IGNORECASE,
        ),
        "words",
    ),
)
# A bare number is a quantity when it comes right after a verb or the start ("buy 2 tees"), not
# after a product word ("iPhone 15 case") and not before a unit ("750 ml", "2 days").
_BARE_NUMBER = re.compile(r"(?<![\w.,/:\-−])([-−]?\d+)(?![\w.,/:%\-])")
# A number no plan can carry as a count, where a count goes: "1,000 pairs", "3.5 pairs", "get 1e3
# socks", "½ dozen". Refused rather than read as the whole number it starts with, or as none.
_ODD_NUMBER = re.compile(r"(?<![\w.,/:])(\d+(?:[.,]\d+)+|\d+(?:\.\d+)?e\d+|\d*[½¼¾⅓⅔⅛]|\d+/\d+)(?![\w%])")
_QUANTITY_LEADS = frozenset(
    {"buy", "get", "order", "purchase", "want", "need", "send", "ship", "me", "us", "him", "her", "them",
     "please", "and", "grab", "pick", "买", "要", "来", "订", "购买"}
)  # fmt: skip
_UNITS = frozenset(
    {"ml", "l", "litre", "litres", "liter", "liters", "mah", "w", "mm", "cm", "m", "kg", "g", "gb", "tb", "inch", "inches", "in", "oz", "lb", "lbs",
     "km", "v", "hz", "percent", "cny", "rmb", "usd", "yuan", "dollars", "day", "days", "week", "weeks",
     "hour", "hours", "pm", "am", "元", "块", "码", "号", "月", "日", "年", "岁", "天", "小时"}
)  # fmt: skip

_PLACE_EN = re.compile(
    r"\b(?i:ship|send|deliver|mail|post)\b[^.,;:!?]{0,60}?\b(?i:to)\s+"
    r"([A-Z][\w'’\-]+(?:\s+[A-Z][\w'’\-]+)?)"
    r"|\b(?i:in|at)\s+([A-Z][a-z][\w'’\-]*(?:\s+[A-Z][a-z][\w'’\-]*)?)"
    # A street address written into the goal ("ship to 12 Baker Street"): somewhere not on file.
    r"|\b(?i:ship|send|deliver|mail|post)\b[^.,;:!?]{0,60}?\b(?i:to)\s+"
    r"(\d+[A-Za-z]?\s+[A-Za-z][\w'’\-]*(?:\s+[A-Za-z][\w'’\-]*){0,3})"
)
_PLACE_ZH = re.compile(
    r"(?:送到|寄到|发到|送去|寄去|邮到|住在)([\u4e00-\u9fff]{2,6}?)(?=的|给|，|,|。|\s|$|前|之前|以前|\d)"
)
_NOT_PLACES = frozenset(
    {"black", "white", "red", "blue", "navy", "grey", "gray", "green", "pink", "yellow", "orange", "purple",
     "brown", "beige", "silver", "gold", "size", "stock", "total", "christmas", "person", "store", "the",
     "me", "my", "home", "our"}
)  # fmt: skip

# Words that name no product: what shoppers say around the thing they want.
GOAL_STOPWORDS = frozenset(
    {
        "buy", "get", "order", "purchase", "find", "want", "need", "like", "would", "please", "pls", "me", "my",
        "i", "i'm", "we", "us", "our", "you", "your", "him", "her", "his", "hers", "them", "they", "it", "its",
        "a", "an", "the", "some", "any", "for", "to", "of", "and", "with", "in", "on", "at", "by", "from", "new",
        "nice", "good", "great", "best", "cheap", "cheapest", "affordable", "gift", "gifts", "present",
        "birthday", "ship", "send", "deliver", "delivered", "delivery", "arrive", "arrives", "pair", "pairs",
        "piece", "pieces", "unit", "units", "item", "items", "size", "sizes", "color", "colour", "also", "just",
        "really", "very", "can", "could", "should", "will", "that", "this", "these", "those", "as", "so", "be",
        "is", "are", "asap", "soon", "quickly", "fast", "urgently", "there", "here", "something", "thing",
        "things", "stuff", "thanks", "thank", "hi", "hello", "budget", "price", "under", "max", "or", "one",
        "which", "what", "up", "ones", "too", "make", "sure", "needs", "needed", "let", "let's", "do", "does", "did",
        "have", "has", "had", "am", "go", "comfortable", "comfy", "pretty", "cute", "quality",
        "给", "我", "我的", "帮", "帮我", "请", "麻烦", "一下", "的", "了", "要", "想", "想要", "需要", "买", "购买", "下单",
        "订", "送", "送给", "送到", "寄", "寄给", "寄到", "到", "和", "跟", "与", "个", "一个", "件", "双", "条", "只",
        "款", "些", "一些", "吧", "呢", "啊", "吗", "在", "用", "她", "他", "她的", "他的", "下", "能", "可以", "礼物",
        "生日", "新", "新的", "好", "好的", "便宜", "最", "最便宜", "关于", "配送", "发", "发到", "邮寄", "尽快",
        "快点", "家", "地址", "尺码", "颜色", "码", "号", "那", "这", "这个", "那个", "一", "两", "之前", "以前", "前",
        "内", "以内", "左右", "大概", "合适", "适合", "谢谢", "您", "们", "我们", "一份", "东西", "点", "送去",
        "买个", "买些", "买点", "来个", "来一个", "买一个", "address", "place",
    }
)  # fmt: skip


class ShoppingIntent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    keywords: tuple[str, ...] = ()
    """The goal's words that name the product, in order, as written (lowercased)."""
    size: str | None = None
    color: str | None = None
    excludedColors: tuple[str, ...] = ()
    """Colours the goal rules out ("not black", "不要黑色的"): never chosen."""
    quantity: int = 1
    quantityText: str | None = None
    """How the goal wrote the quantity ("two pairs of", "十双"); None when it wrote none."""
    budget: Money | None = None
    giftWrap: bool = False
    giftWrapDeclined: bool = False
    relation: str | None = None
    person: str | None = None
    """Who the goal names ("sister", "friend"), more precise than the relation it is filed under."""
    city: str | None = None
    place: str | None = None
    """A destination the goal names that is not a city this planner knows."""
    deliverBy: date | None = None

    @property
    def query(self) -> str:
        return " ".join(self.keywords)


class GoalNotUnderstood(ValueError):
    """The goal cannot be read into something to buy; the message says what is missing or wrong."""


class QuantityNotPlannable(GoalNotUnderstood):
    """The goal writes a quantity no plan can carry: zero, negative, or more than a plan buys."""


class SeveralSizes(GoalNotUnderstood):
    """The goal names two different sizes: one product cannot have both (``items`` reads whether
    it asks for several products, one size each)."""


class _Text:
    """The goal with the parts already read blanked out, so no part is read twice."""

    def __init__(self, goal: str) -> None:
        self.original = goal
        self.masked = goal

    def take(self, match: re.Match[str], group: int = 0) -> None:
        start, end = match.span(group)
        self.masked = self.masked[:start] + " " * (end - start) + self.masked[end:]

    def find(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        return pattern.search(self.masked)


def _next_occurrence(month: int, day: int, today: date) -> date:
    candidate = date(today.year, month, day)
    return candidate if candidate >= today else date(today.year + 1, month, day)


def _deadline(text: _Text, today: date) -> date | None:
    """The last acceptable delivery day; "before Feb 5" means Feb 4 at the latest."""
    try:
        if match := text.find(_DATE_ISO):
            text.take(match)
            strict = bool(match.group(1) and match.group(1).lower() in {"before", "之前", "前"}) or bool(
                match.group(5)
            )
            day = date(int(match.group(2)), int(match.group(3)), int(match.group(4)))
            return day - timedelta(days=1) if strict else day
        if match := text.find(_DATE_EN):
            text.take(match)
            month_name = match.group(2) or match.group(5)
            day_number = int(match.group(3) or match.group(4))
            day = _next_occurrence(_MONTHS[month_name[:3].lower()], day_number, today)
            return day - timedelta(days=1) if match.group(1).lower() == "before" else day
        if match := text.find(_DATE_ZH):
            text.take(match)
            day = _next_occurrence(int(match.group(1)), int(match.group(2)), today)
            return day - timedelta(days=1) if match.group(3) else day
    except ValueError:
        raise GoalNotUnderstood("the goal's delivery date is not a date on the calendar") from None
    return None


# Currency words that name one currency only; "$" and "dollars" are several countries' money, and
# "¥" is the yen's sign as well as the yuan's.
_CURRENCIES_WRITTEN = {"usd": "USD", "cny": "CNY", "rmb": "CNY", "yuan": "CNY", "元": "CNY", "块": "CNY"}


def _budget(text: _Text, default_currency: str) -> tuple[Money | None, bool]:
    """The budget, and whether its currency was guessed (not written as a word naming one currency)."""
    if match := text.find(_BUDGET_EN):
        text.take(match)
        symbol = (match.group(1) or match.group(3) or "").lower()
        currency = "USD" if symbol in {"$", "usd", "dollars"} else "CNY" if symbol else default_currency
        amount = Money.from_decimal(match.group(2).replace(",", "."), currency)
        return amount, symbol not in _CURRENCIES_WRITTEN
    if match := text.find(_BUDGET_ZH):
        text.take(match)
        unit = match.group(2) or ("元" if match.group(3) else None)
        return Money.from_decimal(match.group(1) or match.group(3), "CNY"), unit is None
    return None, False


def _gift_wrap(text: _Text) -> tuple[bool, bool]:
    """(wanted, declined); a refusal anywhere wins: "no gift wrap" names gift wrap too."""
    declined = False
    while match := text.find(_GIFT_WRAP_DECLINED):
        declined = True
        text.take(match)
    wanted = False
    while match := text.find(_GIFT_WRAP):
        wanted = True
        text.take(match)
    return wanted and not declined, declined


def _size(text: _Text) -> str | None:
    """The one size the goal names; two different sizes for one product is a goal no plan can
    serve, said plainly rather than one of them dropped."""
    size: str | None = None
    for pattern in _SIZE_PATTERNS:
        while match := text.find(pattern):
            text.take(match)
            found = normalize_size(match.group(1))
            if size is not None and found != size:
                raise SeveralSizes(
                    f"one size per goal: the goal names size {size} and size {found}; "
                    "make one goal for each size"
                )
            size = size or found
    return size


def _alternation(names: Iterable[str]) -> str:
    return "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))


def _person(text: _Text) -> tuple[str | None, str | None]:
    for names, person, relation in _PEOPLE:
        latin = [name for name in names if not is_cjk(name)]
        chinese = [name for name in names if is_cjk(name)]
        patterns = []
        if latin:
            patterns.append(rf"\b(?:(?:my|our)\s+)?(?:{_alternation(latin)})(?:'s|s)?\b")
        if chinese:
            patterns.append(rf"(?:我的?)?(?:{_alternation(chinese)})")
        if match := text.find(re.compile("|".join(patterns), re.IGNORECASE)):
            text.take(match)
            return relation, person
    if match := text.find(_SELF):
        text.take(match)
        return "self", "self"
    return None, None


def _city(text: _Text) -> tuple[str | None, str | None]:
    """A city this planner knows, else a place the goal names that it does not."""
    pattern = re.compile(rf"(?<![A-Za-z])(?:{_alternation(_CITIES)})(?![A-Za-z])", re.IGNORECASE)
    if match := text.find(pattern):
        text.take(match)
        return _CITIES[match.group().lower()], None
    if match := text.find(_PLACE_ZH):
        text.take(match, 1)
        return None, match.group(1)
    for match in _PLACE_EN.finditer(text.masked):
        group = next(number for number in (1, 2, 3) if match.group(number))
        place = match.group(group)
        first = place.split()[0].lower()
        if first in _NOT_PLACES or first[:3] in _MONTHS or first in GOAL_STOPWORDS:
            continue
        text.take(match, group)  # only the place: "ship *a blue backpack* to Guilin" names the product
        return None, place
    return None, None


def _colour_list(names: str) -> str:
    """One or more colours: "black", "black or white", "black/white", "黑色、白色"."""
    return rf"(?:{names})(?:\s*(?:,|/|、|\bor\b|\bnor\b|或者?|和)\s*(?:{names}))*"


# Chinese colours without 色 ("不要黑的"), read only where nothing follows them: 白酒 is no colour.
_ZH_COLOUR_STEMS = {
    name.removesuffix("色"): colour
    for name, colour in COLOURS.items()
    if is_cjk(name) and name.endswith("色")
}
_COLOUR = re.compile(rf"(?<![A-Za-z])(?:{_alternation(COLOURS)})(?![A-Za-z])", re.IGNORECASE)
_ZH_NEGATED_COLOUR = (
    rf"(?:{_alternation(name for name in COLOURS if is_cjk(name))})的?"
    rf"|(?:{_alternation(_ZH_COLOUR_STEMS)})(?:的|(?=[\s,，。;；、]|$))"
)
_NEGATED_COLOURS = re.compile(
    r"(?:(?<![A-Za-z])(?:not|no|never|without|anything\s+(?:but|except)|except(?:\s+for)?|but\s+not"
    r"|other\s+than)\s+(?:in\s+)?(?:the\s+)?|(?<![A-Za-z])non-?)"
    rf"({_colour_list(_alternation(name for name in COLOURS if not is_cjk(name)))})(?![A-Za-z])"
    rf"|(?:不要|不想要|不需要|不买|不选|别买|别选|别要|别)({_colour_list(_ZH_NEGATED_COLOUR)})",
    re.IGNORECASE,
)


def _excluded_colours(text: _Text) -> tuple[str, ...]:
    """The colours the goal rules out; read before the colours it asks for, so "not black" never
    selects black."""
    excluded: list[str] = []
    while match := text.find(_NEGATED_COLOURS):
        text.take(match)
        listed = match.group(1) or match.group(2)
        for name in re.findall(_ZH_NEGATED_COLOUR + "|" + _COLOUR.pattern, listed, re.IGNORECASE):
            stem = name.removesuffix("的")
            colour = COLOURS.get(stem.lower()) or _ZH_COLOUR_STEMS.get(stem)
            if colour is not None and colour not in excluded:
                excluded.append(colour)
    return tuple(excluded)


def _colour(text: _Text) -> str | None:
    """The one colour the goal asks for; two different ones for one product is refused plainly."""
    colour: str | None = None
    while match := text.find(_COLOUR):
        text.take(match)
        found = COLOURS[match.group().lower()]
        if colour is not None and found != colour:
            raise GoalNotUnderstood(
                f"one colour per goal: the goal names {colour} and {found}; make one goal for each colour"
            )
        colour = colour or found
    return colour


def _zh_number(numeral: str) -> int:
    """三十 is 30, 两百 200, 一千五百 1500, 两百万 2,000,000, 3万 30,000."""
    total, section, current = 0, 0, 0
    for digits, char in re.findall(r"(\d+)|(.)", numeral):
        if digits:
            current = int(digits)
        elif char in _ZH_DIGITS:
            current = _ZH_DIGITS[char]
        elif char in _ZH_UNITS:
            section += (current or 1) * _ZH_UNITS[char]
            current = 0
        elif char == "万":
            total += (section + current or 1) * 10_000
            section, current = 0, 0
        elif char == "亿":
            total = (total + section + current or 1) * 100_000_000
            section, current = 0, 0
    return total + section + current


def _en_number(phrase: str) -> int:
    """Digits, or a number in words read whole: "twenty-five" 25, "a hundred" 100, "two million" 2,000,000."""
    phrase = phrase.lower().replace("−", "-")
    if re.fullmatch(r"-?\d+", phrase):
        return int(phrase)
    total, current = 0, 0
    for word in re.findall(r"\d+|[a-z]+", phrase):
        if word.isdigit():
            current = int(word)
        elif word == "a":
            current = 1
        elif word in _EN_NUMBERS:
            current += _EN_NUMBERS[word]
        elif word == "hundred":
            current = (current or 1) * 100
        elif word in _EN_SCALES:
            total += (current or 1) * _EN_SCALES[word]
            current = 0
    return total + current


def _read_quantity(match: re.Match[str], kind: str) -> int:
    if kind == "digits":
        return _en_number(match.group(1))
    if kind == "dozen":
        count = match.group(1).lower()
        return 6 if count.startswith("half") else 12 * (1 if count == "a" else _en_number(count))
    if kind == "zh-dozen":
        count = match.group(1)
        return 6 if count == "半" else 12 * (_zh_number(count) if count else 1)
    if kind == "phrase":
        return 2 if "couple" in match.group().lower() else 1
    if kind == "zh":
        value = _zh_number(match.group(2))
        return -value if match.group(1) else value
    return _en_number(match.group(1))


def _bare_number(text: _Text) -> re.Match[str] | None:
    for match in _BARE_NUMBER.finditer(text.masked):
        before = re.findall(r"[\w']+|[\u4e00-\u9fff]", text.masked[: match.start()].lower())
        after = re.match(r"\s*([a-z]+|[\u4e00-\u9fff])", text.masked[match.end() :].lower())
        if after is None or after.group(1) in _UNITS:
            continue
        if not before or before[-1] in _QUANTITY_LEADS:
            return match
    return None


def _odd_quantity(text: _Text) -> re.Match[str] | None:
    """A number that is not a whole count, standing where a count goes: before a measure or a
    dozen, or right after a verb or the start (but not before a unit: "1.5 l")."""
    for match in _ODD_NUMBER.finditer(text.masked):
        after = text.masked[match.end() :].lower()
        if re.match(rf"\s*(?:{_MEASURES_EN}|dozens?)\b", after):
            return match
        following = re.match(r"\s*([a-z]+|[\u4e00-\u9fff])", after)
        before = re.findall(r"[\w']+|[\u4e00-\u9fff]", text.masked[: match.start()].lower())
        if (
            following is not None
            and following.group(1) not in _UNITS
            and (not before or before[-1] in _QUANTITY_LEADS)
        ):
            return match
    return None


def _quantity(text: _Text) -> tuple[int, str | None]:
    """The quantity the goal writes, and how it wrote it; (1, None) when it writes none."""
    if odd := _odd_quantity(text):
        raise QuantityNotPlannable(
            f"the goal asks for {odd.group()!r}: write how many as a plain whole number (1 to {MAX_QUANTITY})"
        )
    found: list[tuple[int, re.Match[str], str]] = []
    for pattern, kind in _QUANTITY_PATTERNS:
        if match := text.find(pattern):
            found.append((match.start(), match, kind))
    if bare := _bare_number(text):
        found.append((bare.start(), bare, "digits"))
    if not found:
        return 1, None
    _, match, kind = min(found, key=lambda hit: hit[0])
    if kind == "vague":
        raise QuantityNotPlannable(f"the goal asks for {match.group()!r}: say how many (1 to {MAX_QUANTITY})")
    quantity = _read_quantity(match, kind)
    text.take(match)
    written = match.group()
    if measure := _MEASURE_OF.match(text.masked, match.end()):
        text.take(measure)
        written += measure.group()
    written = " ".join(written.split())
    if quantity < 1:
        raise QuantityNotPlannable(f"the goal asks for {written!r}: a quantity must be at least 1")
    if quantity > MAX_QUANTITY:
        raise QuantityNotPlannable(
            f"the goal asks for {quantity} ({written!r}); a plan buys at most {MAX_QUANTITY} of an item"
        )
    return quantity, written


# Clauses end at sentence marks and commas, in both scripts; a goal names its product in one of them
# and may chatter in the others ("...; call me on ... or mail ..."), which must not join the search.
_CLAUSE_END = re.compile(r"[;；。.!！?？,，:：\n]+")
_PURCHASE_VERB = re.compile(
    r"\b(?:buy|get|order|purchase|find|want|need|send)\b|买|要|订|来一|购", re.IGNORECASE
)


def _product_words(clause: str) -> list[str]:
    kept: list[str] = []
    for word in words(clause):
        if word in GOAL_STOPWORDS or word in _UNITS or word.isdigit() or (len(word) == 1 and word.isascii()):
            continue
        if word not in kept:
            kept.append(word)
    return kept


def _keywords(text: _Text) -> tuple[str, ...]:
    """The product's words, from the clause that asks to buy something (else the first that names
    anything); specifications ("20l", "1000-piece") first, so the last word is the kind."""
    clauses = [clause for clause in _CLAUSE_END.split(text.masked) if clause.strip()]
    named = [(clause, found) for clause in clauses if (found := _product_words(clause))]
    asking = [found for clause, found in named if _PURCHASE_VERB.search(clause)]
    kept = asking[0] if asking else (named[0][1] if named else [])
    specifications = [word for word in kept if re.search(r"\d", word)]
    return (*specifications, *(word for word in kept if word not in specifications))


@dataclass(frozen=True)
class GoalReading:
    """A goal as read: the intent, and what of the goal's text no part of the intent was read from."""

    intent: ShoppingIntent
    unread: str
    """The goal with every part read blanked out: the product's words and whatever else it says."""
    budgetCurrencyGuessed: bool = False
    """The budget's currency is the brand's (or a sign several currencies share), not written."""


def parse_goal(goal: str, *, today: date, currency: str) -> ShoppingIntent:
    """The intent the goal's words give; raises GoalNotUnderstood for a quantity no plan can carry."""
    return read_goal(goal, today=today, currency=currency).intent


def read_goal(goal: str, *, today: date, currency: str) -> GoalReading:
    """``parse_goal``, keeping the text it did not read (``rules_first`` asks what that says)."""
    text = _Text(goal)
    deliver_by = _deadline(text, today)
    budget, guessed = _budget(text, currency)
    gift_wrap, declined = _gift_wrap(text)
    size = _size(text)
    relation, person = _person(text)
    city, place = _city(text)
    excluded = _excluded_colours(text)
    colour = _colour(text)
    quantity, written = _quantity(text)
    intent = ShoppingIntent(
        keywords=_keywords(text),
        size=size,
        color=colour,
        excludedColors=excluded,
        quantity=quantity,
        quantityText=written,
        budget=budget,
        giftWrap=gift_wrap,
        giftWrapDeclined=declined,
        relation=relation,
        person=person,
        city=city,
        place=place,
        deliverBy=deliver_by,
    )
    return GoalReading(intent, text.masked, budgetCurrencyGuessed=guessed)
