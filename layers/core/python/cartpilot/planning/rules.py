"""The deterministic planner: the goal's words find the product in the merchant's catalog or feed.

Every price, item id and delivery estimate in the plan comes from the merchant: products from its
catalog (or the brand's feed for it), prices and shipping from a pricing checkout session
(``Fulfillment.quote``), which is what the merchant will actually charge. Nothing is taken from the
goal's text except what to look for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

from cartpilot.brands.config import MerchantConfig
from cartpilot.brands.users import SavedRecipient
from cartpilot.commerce.errors import MerchantRejected
from cartpilot.commerce.ports import (
    CartLine,
    Catalog,
    Merchant,
    Product,
    ProductVariant,
    Quote,
    Recipient,
    SearchQuery,
    ShippingOption,
)
from cartpilot.kernel.money import Money
from cartpilot.planning.assembly import (
    GIFT_WRAP_CATEGORY,
    ChosenItem,
    GoalUnclear,
    PlanChoices,
    PlanningFailed,
    PlanningRequest,
    assemble_plan,
)
from cartpilot.planning.intent import PERSON_NAMES, GoalNotUnderstood, ShoppingIntent
from cartpilot.planning.items import read_items
from cartpilot.planning.ranking import Ranked, rank_products
from cartpilot.planning.storefront import HandlerChooser, Negotiated, Storefronts, StorefrontSource
from cartpilot.planning.variants import fits
from cartpilot.planning.words import document_terms, fold, is_cjk, lexicon, term_groups, words
from cartpilot.plans.model import Plan, PlannerInfo

__all__ = [
    "GIFT_WRAP_CATEGORY",
    "NothingFits",
    "PlanningFailed",
    "PlanningRequest",
    "RulesEvidence",
    "RulesPlanner",
    "choose_shipping",
    "priced_options",
    "resolve_recipient",
]

SEARCH_LIMIT = 20
MAX_SEARCHES = 3
# A refused quote (sold out since the catalog was read) moves on to the next candidate, a few times.
MAX_QUOTE_ATTEMPTS = 3
_GENERIC_PEOPLE = frozenset({"self", "friend", "family", "colleague", "partner", "neighbour", "teacher"})


# --- recipients ------------------------------------------------------------------------------------


def _describe_person(intent: ShoppingIntent) -> str:
    who = {None: None, "self": "home"}.get(intent.person, f"your {intent.person}")
    where = intent.city or intent.place
    return " ".join(part for part in (who, f"in {where}" if where else None) if part) or "home"


def _is_person(saved: SavedRecipient, relation: str | None, person: str | None) -> bool:
    """Whether a saved recipient is who the goal names: "my sister" is not any family member."""
    if relation is None:
        return True
    filed_under = saved.relation.lower()
    if person is not None and filed_under == person:
        return True
    if filed_under != relation:
        return False
    if person is None or person in _GENERIC_PEOPLE:
        return True
    named = set(saved.id.lower().replace("_", "-").split("-"))
    return bool(named & set(PERSON_NAMES.get(person, (person,))))


def resolve_recipient(request: PlanningRequest, intent: ShoppingIntent) -> tuple[str, Recipient]:
    """The context's recipient if given, else the saved one the goal names; never home by default
    when the goal names someone or somewhere the profile does not hold."""
    if request.context.recipient is not None:
        return "context", request.context.recipient
    ask = "add the recipient's name, phone and address to the request's context"
    if intent.place is not None:
        raise PlanningFailed(f"no saved recipient is in {intent.place}; {ask}")
    relation = intent.relation or ("self" if intent.city is None else None)
    person = intent.person if intent.relation else None
    candidates = [
        saved
        for saved in request.profile.recipients
        if _is_person(saved, relation, person)
        and (intent.city is None or saved.recipient.address.city.lower() == intent.city.lower())
    ]
    if not candidates:
        raise PlanningFailed(f"no saved recipient matches {_describe_person(intent)}; {ask}")
    cities = {saved.recipient.address.city for saved in candidates}
    if relation != "self" and len(cities) > 1:
        raise PlanningFailed(
            f"several saved recipients match {_describe_person(intent)} (in {', '.join(sorted(cities))}); "
            "name the city in the goal or " + ask
        )
    return candidates[0].id, candidates[0].recipient


# --- shipping --------------------------------------------------------------------------------------


def priced_options(quote: Quote) -> list[ShippingOption]:
    """The session's options priced in its currency: another currency cannot be added to the total."""
    return [option for option in quote.options if option.price.currency == quote.currency]


def choose_shipping(options: list[ShippingOption], deliver_by: date | None) -> ShippingOption:
    """The cheapest option that arrives in time; else the fastest that promises a date (the validator
    will say it is late); an option without a delivery window never counts as in time."""
    if not options:
        raise PlanningFailed("the merchant offers no shipping to this address")
    if deliver_by is None:
        return min(
            options,
            key=lambda o: (
                o.price.amount_minor,
                o.latestDelivery is None,
                o.latestDelivery or date.max,
                o.id,
            ),
        )
    in_time = [option for option in options if option.arrives_by(deliver_by)]
    if in_time:
        return min(in_time, key=lambda o: (o.price.amount_minor, o.latestDelivery or date.max, o.id))
    dated = [option for option in options if option.latestDelivery is not None]
    if dated:
        return min(dated, key=lambda o: (o.latestDelivery or date.max, o.price.amount_minor, o.id))
    return min(options, key=lambda o: (o.price.amount_minor, o.id))


# --- products --------------------------------------------------------------------------------------


def _other_language(query: str) -> str:
    """The goal's key words in the lexicon's other language ("跑鞋" -> "running shoe"), or ""."""
    vocabulary = lexicon()
    translated = []
    for word in words(query):
        choices = vocabulary.translations(word if is_cjk(word) else fold(word))
        if choices:
            translated.append(choices[0])
    return " ".join(translated)


def _singular(query: str) -> str:
    return " ".join(word if is_cjk(word) else fold(word) for word in words(query))


@dataclass(frozen=True)
class _Candidate:
    variant: ProductVariant
    product: Product
    score: float
    covered: int


def _variant_terms(candidate: _Candidate) -> set[str]:
    """What tells this variant from its siblings ("Hardcover", "50ml"): a goal naming it prefers it."""
    title = candidate.variant.title.removeprefix(candidate.product.title)
    return set(document_terms(" ".join(part for part in (title, candidate.variant.size) if part)))


@dataclass(frozen=True)
class RulesEvidence:
    """What a rules plan was chosen from: the goal as read, the candidate variants best first (each
    with its product and how many of the goal's words that product carries), the merchant's options."""

    intent: ShoppingIntent
    candidates: tuple[tuple[ProductVariant, Product, int], ...]
    chosen: ProductVariant
    product: Product
    wordsAsked: int
    options: tuple[ShippingOption, ...]
    deliverBy: date | None
    budget: Money | None
    searchComplete: bool = False
    """The search the products came from returned fewer than it could: the merchant sells no other."""
    more: tuple[RulesEvidence, ...] = ()
    """The same for each further product of a goal that asks for several (``items``)."""


class NothingFits(PlanningFailed):
    """No variant of any product the goal's words find fits its size, colour, quantity and stock.

    Raised by ``plan_with_evidence`` only, with what was found, so the rules-first gate can tell a
    certain "sold out" from a goal it cannot read; ``plan`` raises it as a plain ``PlanningFailed``
    (the failure's name is what the shopper's reason is looked up by).
    """

    def __init__(
        self,
        reason: str,
        *,
        intent: ShoppingIntent,
        ranked: tuple[Ranked, ...],
        wordsAsked: int,
        currency: str,
        searchComplete: bool,
        lookups: list[str],
    ) -> None:
        super().__init__(reason)
        self.lookups = lookups
        self.intent = intent
        self.ranked = ranked
        self.wordsAsked = wordsAsked
        self.currency = currency
        self.searchComplete = searchComplete


class RulesPlanner:
    kind = "rules"

    def __init__(
        self,
        merchant: Merchant,
        merchant_config: MerchantConfig,
        feed: Catalog | None = None,
        *,
        elsewhere: StorefrontSource | None = None,
        choose_handler: HandlerChooser | None = None,
    ) -> None:
        self.storefronts = Storefronts(
            merchant, merchant_config, feed, elsewhere=elsewhere, choose_handler=choose_handler
        )

    def plan(self, request: PlanningRequest) -> Plan:
        try:
            return self.plan_with_evidence(request)[0]
        except NothingFits as failed:
            raise PlanningFailed(str(failed)) from None

    def plan_with_evidence(self, request: PlanningRequest) -> tuple[Plan, RulesEvidence]:
        """The plan and what it was chosen from (``rules_first`` judges from it whether the choice
        was the only one the shop's rules allow)."""
        try:
            intents = read_items(request.goal, today=request.today, currency=request.brand.currency)
        except GoalNotUnderstood as exc:
            raise GoalUnclear(str(exc)) from exc
        intent = intents[0]  # every item carries the order's recipient, deadline, budget and gift-wrap
        if not intent.keywords:
            raise GoalUnclear("the goal does not say what to buy")
        deliver_by = request.context.deliverBy or intent.deliverBy
        recipient_id, recipient = resolve_recipient(request, intent)
        saved_method = request.profile.default_payment_method()
        payment_method = request.context.paymentMethodId or (saved_method.id if saved_method else None)
        if payment_method is None:
            raise PlanningFailed("the shopper has no saved payment method and none was given")

        lookups: list[str] = []
        negotiated = self.storefronts.negotiate(request, lookups)
        currency = negotiated.currency(request.brand.currency)
        budget = request.context.budget or intent.budget
        if len(intents) == 1:
            candidates, complete = self._candidates(intent, negotiated, currency, budget, lookups)
            found = [(intent, candidates, complete)]
        else:
            # The budget is the order's: it is checked on the plan's total, not spent per product.
            try:
                found = [
                    (item, *self._candidates(item, negotiated, currency, None, lookups)) for item in intents
                ]
            except NothingFits as failed:
                raise PlanningFailed(str(failed)) from None
        wrap = self._gift_wrap(negotiated, currency, lookups) if intent.giftWrap else None
        if len(found) == 1:
            main, quote = self._quote(
                candidates, wrap, intent.quantity, recipient, negotiated, currency, lookups
            )
            chosen = [main]
        else:
            chosen, quote = self._quote_together(found, wrap, recipient, negotiated, currency, lookups)

        items: list[ChosenItem] = []
        evidence: list[RulesEvidence] = []
        for (item, item_candidates, item_complete), main in zip(found, chosen, strict=True):
            asked = len(term_groups(words(item.query)))
            partial = (
                f"Nothing the merchant sells matches every word of '{item.query}'; "
                f"{main.product.title} matches {main.covered} of {asked}."
                if main.covered < asked
                else None
            )
            items.append(_priced(main.variant, item.quantity, quote, negotiated.source, note=partial))
            evidence.append(
                RulesEvidence(
                    intent=item,
                    candidates=tuple(
                        (candidate.variant, candidate.product, candidate.covered)
                        for candidate in item_candidates
                    ),
                    chosen=main.variant,
                    product=main.product,
                    wordsAsked=asked,
                    options=tuple(priced_options(quote)),
                    deliverBy=deliver_by,
                    budget=budget,
                    searchComplete=item_complete,
                )
            )
        if wrap is not None:
            items.append(_priced(wrap, 1, quote, negotiated.source, optional=True))
        plan = assemble_plan(
            request,
            PlanChoices(
                items=items,
                recipientId=recipient_id,
                recipient=recipient,
                shipping=choose_shipping(priced_options(quote), deliver_by),
                paymentMethodId=payment_method,
                deliverBy=deliver_by,
                budget=budget,
                tax=quote.tax,
            ),
            planner=PlannerInfo(kind="rules", model=None, promptVersion="rules-2", lookups=lookups),
            payment_label="the saved payment method",
            merchant=negotiated.terms(),
            currency=quote.currency,
        )
        return plan, replace(evidence[0], more=tuple(evidence[1:]))

    # --- choosing ---

    def _search(self, negotiated: Negotiated, text: str, currency: str, lookups: list[str]) -> list[Product]:
        products = negotiated.products.search(SearchQuery(text=text, currency=currency, limit=SEARCH_LIMIT))
        lookups.append(f"{negotiated.source}.search {text!r}")
        return products

    def _ranked(
        self, intent: ShoppingIntent, negotiated: Negotiated, currency: str, lookups: list[str]
    ) -> tuple[list[Ranked], bool]:
        """The products the goal's words name, as the merchant's search (or the feed) finds them,
        and whether that search returned fewer than it could (so no other product matches).

        A merchant's search box may be stricter or plainer than ours, or not read the goal's
        language: when the key words find nothing we rank, the last word alone (what the goal names,
        singular) and then the other language are tried, a few searches at most.
        """
        boost = [intent.color] if intent.color else []
        head = intent.keywords[-1]
        attempts = [intent.query, _singular(head), _other_language(intent.query), _other_language(head)]
        tried: list[str] = []
        for text in attempts:
            if not text or text in tried or len(tried) >= MAX_SEARCHES:
                continue
            tried.append(text)
            found = self._search(negotiated, text, currency, lookups)
            ranked = rank_products(found, intent.query, boost=boost, require_last=True)
            ranked = [hit for hit in ranked if hit.product.category != GIFT_WRAP_CATEGORY]
            if ranked:
                return ranked, len(found) < SEARCH_LIMIT
        return [], False

    def _candidates(
        self,
        intent: ShoppingIntent,
        negotiated: Negotiated,
        currency: str,
        budget: Money | None,
        lookups: list[str],
    ) -> tuple[list[_Candidate], bool]:
        """The variants to try, best first: the products that carry most of the goal's words, and
        among them the cheapest variant that fits (within the budget when one does), a variant the
        goal names ("hardcover", "50ml") before its siblings; and whether the search was complete."""
        ranked, complete = self._ranked(intent, negotiated, currency, lookups)
        if not ranked:
            raise PlanningFailed(f"the merchant sells nothing that matches {intent.query!r}")
        for covered in sorted({hit.covered for hit in ranked}, reverse=True):
            fitting = [
                _Candidate(variant, hit.product, hit.score, hit.covered)
                for hit in ranked
                if hit.covered == covered
                for variant in hit.product.variants
                if variant.price.currency == currency
                and fits(
                    variant,
                    hit.product.variants,
                    size=intent.size,
                    colour=intent.color,
                    quantity=intent.quantity,
                    excluded=intent.excludedColors,
                )
            ]
            if budget is not None and budget.currency == currency:
                affordable = [
                    c
                    for c in fitting
                    if c.variant.price.times(intent.quantity).amount_minor <= budget.amount_minor
                ]
                fitting = affordable or fitting
            if fitting:
                named = {term for word in intent.keywords for term in document_terms(word)}
                return sorted(
                    fitting,
                    key=lambda c: (
                        -len(named & _variant_terms(c)),
                        c.variant.price.amount_minor,
                        -c.score,
                        c.variant.id,
                    ),
                ), complete
        wanted = ", ".join(
            part
            for part in (
                intent.query,
                f"size {intent.size}" if intent.size else None,
                intent.color,
                *(f"not {colour}" for colour in intent.excludedColors),
                f"{intent.quantity} in stock" if intent.quantity > 1 else None,
            )
            if part
        )
        raise NothingFits(
            f"nothing in stock matches {wanted}",
            intent=intent,
            ranked=tuple(ranked),
            wordsAsked=len(term_groups(words(intent.query))),
            currency=currency,
            searchComplete=complete,
            lookups=lookups,
        )

    def _gift_wrap(self, negotiated: Negotiated, currency: str, lookups: list[str]) -> ProductVariant:
        products = negotiated.products.search(
            SearchQuery(text="gift wrap", currency=currency, category=GIFT_WRAP_CATEGORY)
        )
        lookups.append(f"{negotiated.source}.search 'gift wrap'")
        wraps = [p for p in products if p.category == GIFT_WRAP_CATEGORY]
        if not wraps:
            wraps = [
                hit.product
                for hit in rank_products(products, "gift wrap", require_last=True)
                if hit.covered == 2
            ]
        variants = [
            variant
            for product in wraps
            for variant in product.variants
            if variant.in_stock and variant.price.currency == currency
        ]
        if not variants:
            raise PlanningFailed("the goal asks for gift-wrap and the merchant offers none")
        return min(variants, key=lambda variant: (variant.price.amount_minor, variant.id))

    def _quote(
        self,
        candidates: list[_Candidate],
        wrap: ProductVariant | None,
        quantity: int,
        recipient: Recipient,
        negotiated: Negotiated,
        currency: str,
        lookups: list[str],
    ) -> tuple[_Candidate, Quote]:
        """The merchant's prices and options for the first candidate its checkout accepts."""
        address = recipient.address
        refusal: MerchantRejected | None = None
        for candidate in candidates[:MAX_QUOTE_ATTEMPTS]:
            lines = [CartLine(itemId=candidate.variant.id, quantity=quantity)]
            if wrap is not None:
                lines.append(CartLine(itemId=wrap.id, quantity=1))
            try:
                quote = negotiated.merchant.fulfillment.quote(lines, recipient, currency)
            except MerchantRejected as refused:
                refusal = refused
                lookups.append(
                    f"fulfillment.quote refused {candidate.variant.id} ({refused.code or 'refused'})"
                )
                continue
            lookups.append(f"fulfillment.quote {address.city}, {address.country}")
            return candidate, quote
        assert refusal is not None
        raise PlanningFailed(
            f"the merchant's checkout would not sell {candidates[0].variant.title}: {refusal}"
        )

    def _quote_together(
        self,
        found: list[tuple[ShoppingIntent, list[_Candidate], bool]],
        wrap: ProductVariant | None,
        recipient: Recipient,
        negotiated: Negotiated,
        currency: str,
        lookups: list[str],
    ) -> tuple[list[_Candidate], Quote]:
        """One session for the first choice of every product a goal asks for: an order ships and is
        priced as one. A refusal is not worked around here (which item to swap is a judgement)."""
        chosen = [candidates[0] for _, candidates, _ in found]
        if len({candidate.variant.id for candidate in chosen}) < len(chosen):
            raise PlanningFailed(
                "the goal's products name the same item twice; ask for it once, with its quantity"
            )
        lines = [
            CartLine(itemId=c.variant.id, quantity=item.quantity)
            for (item, _, _), c in zip(found, chosen, strict=True)
        ]
        if wrap is not None:
            lines.append(CartLine(itemId=wrap.id, quantity=1))
        try:
            quote = negotiated.merchant.fulfillment.quote(lines, recipient, currency)
        except MerchantRejected as refused:
            lookups.append(f"fulfillment.quote refused ({refused.code or 'refused'})")
            raise PlanningFailed(
                f"the merchant's checkout would not sell these items together: {refused}"
            ) from None
        lookups.append(f"fulfillment.quote {recipient.address.city}, {recipient.address.country}")
        return chosen, quote


def _priced(
    variant: ProductVariant,
    quantity: int,
    quote: Quote,
    source: str,
    *,
    optional: bool = False,
    note: str | None = None,
) -> ChosenItem:
    """The item as the merchant's session confirmed it (its price and its title), saying so when
    the listing differed: the session is what the merchant charges and calls the item."""
    line = next((line for line in quote.lines if line.itemId == variant.id), None)
    if line is None:
        raise PlanningFailed(f"the merchant's checkout did not price {variant.title}")
    confirmed = line.unitPrice
    if confirmed.currency != quote.currency:
        raise PlanningFailed(f"the merchant's checkout priced {variant.title} in {confirmed.currency}")
    reasons = [note] if note else []
    if line.title != variant.title:
        reasons.append(f"The {source} calls it {variant.title!r}; the merchant's checkout, {line.title!r}.")
    if confirmed != variant.price:
        reasons.append(
            f"The {source} lists {variant.price.format()}; the merchant's checkout asks {confirmed.format()}, "
            "the price this plan pays."
        )
    return ChosenItem(
        variant.model_copy(update={"price": confirmed, "title": line.title}),
        quantity,
        optional=optional,
        reason=" ".join(reasons) or None,
    )
