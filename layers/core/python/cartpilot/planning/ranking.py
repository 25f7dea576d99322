"""Which products a goal's words name, best first: word coverage, then BM25.

For a goal, a product must carry its last product word (English and Chinese name the kind of
thing last: "running *shoes*", "跑步*鞋*"), so "running shoes" never finds running socks; a search
box (the feed's ``search``) takes any of the words. Products that carry more of the words come first, and BM25 orders products that carry the
same ones and leaves out those that mention them only in passing.

BM25 is rank-bm25's BM25L. rank-bm25 is small, pure Python over numpy (which the Lambda layer can
carry); bm25s is faster on large corpora but brings scipy, and a feed or a page of search results is
small. BM25L rather than Okapi: Okapi's idf turns negative for a word in more than half the
documents, which is the normal case when re-ranking results that all matched the query; BM25L's
idf stays positive and a word a product lacks adds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cartpilot.commerce.ports import Product
from cartpilot.planning.words import Group, document_terms, term_groups, words

if TYPE_CHECKING:
    from rank_bm25 import BM25L

# Within a coverage tier, a product scoring below this share of the best is a passing mention.
RELATIVE_SCORE_FLOOR = 0.3
# The title and the category say what the product is; counted twice, they outweigh a long description.
TITLE_WEIGHT = 2
CATEGORY_WEIGHT = 2


@dataclass(frozen=True)
class Ranked:
    product: Product
    covered: int
    """How many of the goal's words the product carries."""
    score: float


def product_text(product: Product) -> str:
    """Everything a product says about itself that a goal's words may name, each thing once: a feed's
    variant titles repeat the product's title ("Trail Tee (Black / M)"), which would drown the rest."""
    distinguishing = []
    for variant in product.variants:
        title = variant.title
        if title.startswith(product.title):
            title = title[len(product.title) :]
        distinguishing += [title, variant.color or ""]
    return " ".join(
        (
            *([product.title] * TITLE_WEIGHT),
            *([product.category.replace("-", " ")] * CATEGORY_WEIGHT),
            product.description,
            " ".join(dict.fromkeys(part.strip(" ()-/") for part in distinguishing if part.strip(" ()-/"))),
        )
    )


class ProductIndex:
    """Products indexed once (a feed), or per search (a page of a merchant's results)."""

    def __init__(self, products: Sequence[Product]) -> None:
        self.products = list(products)
        corpus = [document_terms(product_text(product)) for product in self.products]
        self._terms = [frozenset(terms) for terms in corpus]
        self._bm25: BM25L | None = None
        if any(corpus):
            # rank-bm25 loads numpy; imported with the first index, not by every module that ranks.
            from rank_bm25 import BM25L

            self._bm25 = BM25L(corpus)

    def rank(self, text: str, *, boost: Sequence[str] = (), require_last: bool = False) -> list[Ranked]:
        """The products ``text``'s words name, best first; ``boost`` words (a colour) only reorder.

        With ``require_last`` a product must carry the last word (what the goal names); otherwise
        any one of the words will do, as a search box would answer.
        """
        return self.rank_groups(term_groups(words(text)), boost=boost, require_last=require_last)

    def rank_groups(
        self, groups: Sequence[Group], *, boost: Sequence[str] = (), require_last: bool = False
    ) -> list[Ranked]:
        if not groups or self._bm25 is None:
            return []
        head = groups[-1]
        query = sorted({term for group in groups for phrase in group for term in phrase})
        query += [term for word in boost for group in term_groups(words(word)) for p in group for term in p]
        scores = self._bm25.get_scores(query)
        matched: list[Ranked] = []
        for index, (product, terms) in enumerate(zip(self.products, self._terms, strict=True)):
            if require_last and not _covers(terms, head):
                continue
            covered = sum(1 for group in groups if _covers(terms, group))
            if covered == 0:
                continue
            matched.append(Ranked(product=product, covered=covered, score=float(scores[index])))
        best_in_tier: dict[int, float] = {}
        for hit in matched:
            best_in_tier[hit.covered] = max(best_in_tier.get(hit.covered, 0.0), hit.score)
        kept = [hit for hit in matched if hit.score >= RELATIVE_SCORE_FLOOR * best_in_tier[hit.covered]]
        return sorted(kept, key=lambda hit: (-hit.covered, -hit.score, hit.product.id))


def _covers(terms: frozenset[str], group: Group) -> bool:
    return any(all(term in terms for term in phrase) for phrase in group)


def rank_products(
    products: Sequence[Product], text: str, *, boost: Sequence[str] = (), require_last: bool = False
) -> list[Ranked]:
    """Re-ranks a merchant's search results by the goal's words, as a feed is ranked."""
    return ProductIndex(products).rank(text, boost=boost, require_last=require_last)
