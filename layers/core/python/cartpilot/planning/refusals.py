"""Refusals the shop's own data proves: a goal whose only answer is "no" is told so without a model call.

The model is told to refuse a goal for a product in a category the brand denies, a goal whose
cheapest fitting item is over its budget, one no shipping option can deliver in time, and one whose
item is sold out in the size asked for. When the rules planner's catalog reads and quote prove that
refusal for the one product the goal's words name, the model's three calls (about 3,000 prompt
tokens each) would only restate it. The checks below say when the proof is complete; anything short
of that returns None and the goal goes to the model (so does every goal for several products).

Certain when the goal's product words are each carried by what was found (a partial match is the
model's to weigh), the search that found it returned fewer than it could (so nothing else matches),
and:

- denied category: every fitting variant's product is in a category the brand denies;
- over budget: every fitting variant costs more than the budget for the quantity asked, in the
  budget's currency, and the merchant's checkout charges what its listing says;
- no shipping in time: one product fits (or the same product in other colours at one price when the
  goal names none) and no option the merchant quoted for it promises to arrive by the deadline;
- sold out: exactly one product carries every word, it comes in the size and colour asked, and every
  such variant has none in stock.

The reason is written in the goal's language (Chinese when the goal is) and states the facts the
shopper can act on: the category, the amount and the budget, the date and the fastest option, the
size sold out and the sizes in stock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from cartpilot.brands.categories import key_matches
from cartpilot.commerce.ports import Product, ProductVariant
from cartpilot.kernel.money import Money
from cartpilot.planning.assembly import PlanningRequest
from cartpilot.planning.intent import city_in_chinese
from cartpilot.planning.rules import NothingFits, RulesEvidence
from cartpilot.planning.variants import COLOURS, LETTER_SIZES, colour_name, fits, is_coloured, normalize_size
from cartpilot.plans.model import Plan

_CHINESE = re.compile(r"[\u4e00-\u9fff]")
_COLOUR_IN_CHINESE = {name: word for word, name in reversed(COLOURS.items()) if _CHINESE.search(word)}


@dataclass(frozen=True)
class CertainRefusal:
    """A refusal the data proves: what it is about, the reason the shopper reads, and the products
    it rests on (the gate still sends a product whose text reads like instructions to the model)."""

    kind: str
    reason: str
    products: tuple[Product, ...]


def colour_twin(rival: ProductVariant, chosen: ProductVariant) -> bool:
    """The same product in the same size at the same price, another colour: a goal that names no
    colour leaves that open, and the shopper sees the colour before approving."""
    return (
        rival.productId == chosen.productId
        and rival.size == chosen.size
        and rival.price == chosen.price
        and rival.color != chosen.color
    )


def in_chinese(request: PlanningRequest) -> bool:
    return bool(_CHINESE.search(request.goal))


def _amount(money: Money, zh: bool) -> str:
    if zh and money.currency == "CNY":
        return f"{money.to_decimal():.2f}元"
    return money.format()


def _day(day: date, today: date, zh: bool) -> str:
    if not zh:
        return day.isoformat()
    return f"{day.month}月{day.day}日" if day.year == today.year else f"{day.year}年{day.month}月{day.day}日"


def _denied_key(categories: list[str], rules: Mapping[str, str]) -> str | None:
    """The brand's denied key (or alias) that one of the categories falls in."""
    for key, rule in rules.items():
        if rule == "deny" and any(key_matches(key, category) for category in categories):
            return key
    return None


def _categories(variant: ProductVariant, product: Product) -> list[str]:
    return [product.category, variant.category, *variant.categoryPath]


def _only_one_choice(evidence: RulesEvidence) -> bool:
    """The rules leave one variant (or its colour twins, when the goal names no colour)."""
    chosen, quantity = evidence.chosen, evidence.intent.quantity
    price = chosen.price.times(quantity).amount_minor
    rivals = [v for v, _, _ in evidence.candidates[1:] if v.price.times(quantity).amount_minor <= price]
    return all(colour_twin(rival, chosen) and evidence.intent.color is None for rival in rivals)


def refusal_for_plan(request: PlanningRequest, plan: Plan, evidence: RulesEvidence) -> CertainRefusal | None:
    """The refusal the rules plan's own evidence proves, if it proves one."""
    intent = evidence.intent
    if evidence.more or intent.place is not None or not evidence.searchComplete or not evidence.candidates:
        return None  # a goal for several products: which to drop or change is the model's to weigh
    if evidence.chosen.id != evidence.candidates[0][0].id:
        return None  # the merchant's checkout refused the first choice: its stock is in question
    if any(covered < evidence.wordsAsked for _, _, covered in evidence.candidates):
        return None
    zh = in_chinese(request)
    products = tuple({product.id: product for _, product, _ in evidence.candidates}.values())

    keys = [_denied_key(_categories(v, p), request.brand.category_rules()) for v, p, _ in evidence.candidates]
    if all(keys):
        key = keys[0] or ""
        title = evidence.product.title
        reason = (
            f"本店的购物助手不能代购{title}：它属于本店不经购物助手出售的类别（{key}），请直接在店内购买。"
            if zh
            else f"{title} is in a category ({key}) the shop does not sell through the shopping assistant; "
            "please buy it in the shop directly."
        )
        return CertainRefusal("denied-category", reason, products)

    budget = evidence.budget
    if budget is not None and budget.currency == plan.currency:
        quoted = plan.summary.items[0].unitPrice
        costs = [variant.price.times(intent.quantity) for variant, _, _ in evidence.candidates]
        if quoted == evidence.chosen.price and all(
            cost.currency == budget.currency and cost.amount_minor > budget.amount_minor for cost in costs
        ):
            cheapest = min(costs, key=lambda cost: cost.amount_minor)
            size = f" in size {intent.size}" if intent.size else ""
            size_zh = f"{intent.size}码" if intent.size else ""
            count = f"{intent.quantity} of " if intent.quantity > 1 else ""
            reason = (
                f"{size_zh}有货的{intent.query}最便宜也要{_amount(cheapest, zh)}"
                f"{f'（{intent.quantity}件）' if intent.quantity > 1 else ''}，超出了您{_amount(budget, zh)}的预算。"
                if zh
                else f"The cheapest {count}{intent.query!r}{size} in stock costs {cheapest.format()}, "
                f"over your {budget.format()} budget."
            )
            return CertainRefusal("over-budget", reason, products)

    deadline = evidence.deliverBy
    if deadline is None or not evidence.options or not _only_one_choice(evidence):
        return None
    if any(option.arrives_by(deadline) for option in evidence.options):
        return None
    city = plan.summary.recipient.address.city
    dated = [option for option in evidence.options if option.latestDelivery is not None]
    fastest = min(dated, key=lambda o: (o.latestDelivery or date.max, o.id), default=None)
    latest = fastest.latestDelivery if fastest is not None else None
    if zh:
        reason = f"没有能在{_day(deadline, request.today, zh)}（含）之前送到{city_in_chinese(city)}的配送方式"
        reason += (
            f"，最快的{fastest.title}可能{_day(latest, request.today, zh)}才到。"
            if fastest is not None and latest is not None
            else "，也没有承诺送达日期的方式。"
        )
    else:
        reason = f"No shipping option reaches {city} by {deadline.isoformat()}"
        reason += (
            f"; the fastest, {fastest.title}, may arrive {latest.isoformat()}."
            if fastest is not None and latest is not None
            else "; none promises a delivery date."
        )
    return CertainRefusal("no-shipping-in-time", reason, (evidence.product,))


def _size_order(size: str) -> tuple[int, float, str]:
    if size in LETTER_SIZES:
        return 0, LETTER_SIZES.index(size), size
    try:
        return 1, float(size), size
    except ValueError:
        return 2, 0.0, size


def refusal_for_nothing_fitting(request: PlanningRequest, failed: NothingFits) -> CertainRefusal | None:
    """ "Sold out", when the one product the goal names comes in its size and colour and has none."""
    intent = failed.intent
    if intent.place is not None or not failed.searchComplete:
        return None
    named = [hit.product for hit in failed.ranked if hit.covered >= failed.wordsAsked]
    if len(named) != 1:
        return None
    product = named[0]
    variants = product.variants
    if not variants or any(variant.price.currency != failed.currency for variant in variants):
        return None
    rules = request.brand.category_rules()
    if any(_denied_key(_categories(variant, product), rules) for variant in variants):
        return None  # not the shop's to sell at all: the model says so rather than "sold out"
    colour, excluded = intent.color, intent.excludedColors
    asked = [
        variant
        for variant in variants
        if fits(variant, variants, size=intent.size, colour=colour, quantity=0, excluded=excluded)
    ]
    if not asked or any(variant.stock > 0 for variant in asked):
        return None  # not made in that size or colour, or some in stock but fewer than asked: the model says which
    in_stock = sorted(
        {
            normalize_size(variant.size) or variant.size
            for variant in variants
            if variant.size
            and fits(variant, variants, size=None, colour=colour, quantity=intent.quantity, excluded=excluded)
        },
        key=_size_order,
    )
    zh = in_chinese(request)
    size = normalize_size(intent.size) if intent.size else None
    colours = len({colour_name(variant.color) for variant in asked}) > 1 and is_coloured(variants)
    if zh:
        colour_zh = _COLOUR_IN_CHINESE.get(colour, colour) if colour else None
        what = "".join(part for part in (f"{size}码" if size else None, colour_zh) if part)
        reason = f"{product.title}的{what}{'所有颜色都' if colours and not colour else ''}已售罄"
        reason += f"，{'、'.join(in_stock)}码有货。" if in_stock and size else "。"
    else:
        what = " ".join(
            part for part in (f"in size {size}" if size else None, f"in {colour}" if colour else None) if part
        )
        reason = f"{product.title} is sold out{f' {what}' if what else ''}"
        reason += " in every colour" if colours and not colour else ""
        reason += (
            f"; size{'s' if len(in_stock) > 1 else ''} {', '.join(in_stock)} "
            f"{'are' if len(in_stock) > 1 else 'is'} in stock."
            if in_stock and size
            else "."
        )
    return CertainRefusal("sold-out", reason, (product,))
