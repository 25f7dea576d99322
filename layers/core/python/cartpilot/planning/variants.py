"""Sizes and colours as shoppers write them and as merchants list them, compared on one footing.

A goal says "size M", "M码", "中号" or "42.5"; a merchant lists "Medium", "M", "EU 42.5" or "42,5".
Both sides are brought to one form before they are compared, and a variant is picked by size,
colour and stock.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from cartpilot.commerce.ports import ProductVariant

LETTER_SIZES = ("XXS", "XS", "S", "M", "L", "XL", "XXL", "XXXL")
_LETTER_ALIASES = {
    "XXS": "XXS", "XS": "XS", "S": "S", "M": "M", "L": "L", "XL": "XL", "XXL": "XXL", "XXXL": "XXXL",
    "2XL": "XXL", "3XL": "XXXL", "2XS": "XXS",
    "EXTRA SMALL": "XS", "EXTRA-SMALL": "XS", "X-SMALL": "XS", "SMALL": "S", "MEDIUM": "M", "LARGE": "L",
    "EXTRA LARGE": "XL", "EXTRA-LARGE": "XL", "X-LARGE": "XL", "XX-LARGE": "XXL",
    "DOUBLE EXTRA LARGE": "XXL", "DOUBLE EXTRA-LARGE": "XXL", "EXTRA EXTRA LARGE": "XXL",
    "XX-SMALL": "XXS", "DOUBLE EXTRA SMALL": "XXS", "DOUBLE EXTRA-SMALL": "XXS", "EXTRA EXTRA SMALL": "XXS",
    "加小号": "XS", "加小码": "XS", "小号": "S", "小码": "S", "中号": "M", "中码": "M", "大号": "L", "大码": "L",
    "加大号": "XL", "加大码": "XL", "特大号": "XXL", "特大码": "XXL", "加加大": "XXL",
}  # fmt: skip
_NUMERIC = re.compile(r"^(?:EU|UK|US|CN)?\s*(\d{1,3})(?:[.,](\d))?\s*(?:码|号)?$")

# Colour words shoppers write -> the one name they are compared by.
COLOURS = {
    "black": "black", "white": "white", "red": "red", "blue": "blue", "navy": "navy", "grey": "grey",
    "gray": "grey", "green": "green", "pink": "pink", "yellow": "yellow", "orange": "orange",
    "purple": "purple", "brown": "brown", "beige": "beige", "silver": "silver", "gold": "gold",
    "黑色": "black", "白色": "white", "红色": "red", "蓝色": "blue", "藏青色": "navy", "藏青": "navy",
    "深蓝色": "navy", "海军蓝": "navy", "灰色": "grey", "绿色": "green", "粉色": "pink", "粉红色": "pink",
    "黄色": "yellow", "橙色": "orange", "橘色": "orange", "紫色": "purple", "棕色": "brown",
    "咖啡色": "brown", "米色": "beige", "银色": "silver", "金色": "gold",
}  # fmt: skip


def normalize_size(size: str | None) -> str | None:
    """One form per size: "EU 42" and "42" are "42", "42,5" is "42.5", "Medium" and "中号" are "M"."""
    if size is None:
        return None
    text = " ".join(size.strip().upper().split())
    if not text:
        return None
    if text in _LETTER_ALIASES:
        return _LETTER_ALIASES[text]
    spaced = " ".join(text.replace("-", " ").split())  # "extra-extra-large" as "extra extra large"
    if spaced in _LETTER_ALIASES:
        return _LETTER_ALIASES[spaced]
    if match := _NUMERIC.match(text):
        whole, tenth = match.groups()
        return whole if tenth in (None, "0") else f"{whole}.{tenth}"
    stripped = text.removesuffix("码").removesuffix("号").strip()
    return _LETTER_ALIASES.get(stripped, text)


def same_size(wanted: str | None, listed: str | None) -> bool:
    return wanted is None or normalize_size(wanted) == normalize_size(listed)


def colour_name(colour: str | None) -> str | None:
    """The colour a merchant's label names ("Navy Blue" is navy, "黑色" is black), else the label."""
    if colour is None:
        return None
    label = colour.strip().lower()
    for word in sorted(COLOURS, key=len, reverse=True):
        if word in label:
            return COLOURS[word]
    return label or None


def same_colour(wanted: str | None, listed: str | None) -> bool:
    if wanted is None:
        return True
    if listed is None:
        return False
    return colour_name(wanted) == colour_name(listed) or wanted.lower() in listed.lower()


def is_sized(variants: list[ProductVariant]) -> bool:
    return any(variant.size for variant in variants)


def is_coloured(variants: list[ProductVariant]) -> bool:
    return any(variant.color for variant in variants)


def fits(
    variant: ProductVariant,
    siblings: list[ProductVariant],
    *,
    size: str | None,
    colour: str | None,
    quantity: int,
    excluded: Collection[str] = (),
) -> bool:
    """Whether this variant is what the goal asked for, in stock for the quantity.

    A size or colour filters only products that come in sizes or colours: "a large mug" is a mug,
    whatever the merchant's mugs are; "size M" of a T-shirt must be M. A colour in ``excluded``
    (normalized names, "black") is never a fit.
    """
    if size is not None and is_sized(siblings) and not same_size(size, variant.size):
        return False
    if colour is not None and is_coloured(siblings) and not same_colour(colour, variant.color):
        return False
    if excluded and colour_name(variant.color) in excluded:
        return False  # "not black": whatever else fits, never a colour the goal ruled out
    return variant.stock >= quantity
