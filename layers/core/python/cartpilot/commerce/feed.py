"""A merchant's products from a Google Merchant Center product feed, for merchants without a catalog.

Both formats Merchant Center takes are read: a tab-separated file whose first row names the
attributes (``image_link`` or ``image link``), one row per line and no quoting, and XML (RSS 2.0 ``<item>`` or Atom ``<entry>``)
with the attributes in the ``g:`` namespace (``http://base.google.com/ns/1.0``). The attributes
used: id, title, description, link, price ("129.00 CNY"), sale_price, availability (in_stock,
out_of_stock, preorder, backorder), image_link, product_type ("Apparel > Shoes"),
google_product_category (Google's taxonomy path or id), brand, size, color and item_group_id (the
rows of one product's variants). The item's category is product_type's last level; every level of
both paths is kept too (``ProductVariant.categoryPath``), as brand restrictions read them all.

A feed is outside input: XML is parsed by defusedxml (no DTDs, no entity expansion, no external
fetches), a download has a timeout and a size cap, and every value is checked before it becomes a
product.

Bad rows are skipped, not fatal: a feed of thousands of rows should not stop every purchase for one
malformed price. Each skipped row is kept in ``FeedCatalog.skipped`` as row, column and reason (and
logged as a count), so the brand can fix its feed; a feed with no usable row at all, one missing a
required column, or one that is not a feed, is a ``FeedError``.

Availability carries no count, so a row in stock is listed as ``IN_STOCK_WITHOUT_COUNT`` (the most
one checkout line takes): the merchant's checkout session is what confirms stock and prices.
Preorder and backorder items cannot arrive on a promised date, so they are listed with no stock.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from cartpilot.commerce.ports import Product, ProductVariant, SearchQuery
from cartpilot.kernel.money import Money
from cartpilot.planning.ranking import ProductIndex
from cartpilot.planning.variants import same_colour, same_size
from cartpilot.planning.words import term_groups, words

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("cartpilot.commerce.feed")

GOOGLE_NAMESPACE = "http://base.google.com/ns/1.0"
ATOM_NAMESPACE = "http://www.w3.org/2005/Atom"
REQUIRED_ATTRIBUTES = ("id", "title", "price", "availability")
MAX_FEED_BYTES = 20 * 1024 * 1024
FETCH_TIMEOUT_SECONDS = 15.0
FETCH_CONNECT_TIMEOUT_SECONDS = 5.0
IN_STOCK_WITHOUT_COUNT = 99
MAX_ID_LENGTH = 80  # a plan's line item id (plans.model.LineRef)
MAX_TITLE_LENGTH = 200  # a plan item's title
DEFAULT_CATEGORY = "general"

_AVAILABILITY = {"in_stock": True, "out_of_stock": False, "preorder": False, "backorder": False}
_PRICE = re.compile(r"^(?:([A-Za-z]{3})\s+)?(\d[\d,]*(?:\.\d+)?)\s*([A-Za-z]{3})?$")


class FeedError(ValueError):
    """The feed cannot be used at all: unreadable, not a feed, a required column missing, no usable row."""


@dataclass(frozen=True)
class SkippedRow:
    """A row left out of the catalog, and why; ``row`` is the TSV line or the XML item's position."""

    row: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.column}: {self.reason}"


class _BadValue(ValueError):
    def __init__(self, column: str, reason: str) -> None:
        super().__init__(reason)
        self.column = column


@dataclass
class _Row:
    number: int
    values: dict[str, str]


# --- reading ---------------------------------------------------------------------------------------


def _attribute_name(name: str) -> str:
    """``g:image_link``, ``Image Link`` and ``image_link`` are one attribute."""
    name = name.strip().lower()
    name = name.removeprefix("g:")
    return re.sub(r"[\s\-]+", "_", name)


def _unquoted(value: str) -> str:
    # Merchant Center's text feeds need no quoting; a value someone quoted anyway is taken as meant.
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('""', '"')
    return value


def _tsv_rows(text: str) -> Iterator[_Row]:
    header: list[str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        values = [_unquoted(value) for value in line.split("\t")]
        if header is None:
            header = [_attribute_name(name) for name in values]
            missing = [name for name in REQUIRED_ATTRIBUTES if name not in header]
            if missing:
                raise FeedError(f"the feed's header row has no {', '.join(missing)} column")
            continue
        if len(values) > len(header):
            yield _Row(number, {"__extra__": f"{len(values)} values for {len(header)} columns"})
            continue
        yield _Row(number, dict(zip(header, values, strict=False)))
    if header is None:
        raise FeedError("the feed is empty")


def _xml_rows(text: str) -> Iterator[_Row]:
    try:
        root = fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (DefusedXmlException, ParseError) as exc:
        raise FeedError(f"the feed is not well-formed XML without DTDs or entities ({exc})") from None
    items = [element for element in root.iter() if _local(element.tag) in {"item", "entry"}]
    if not items:
        raise FeedError("the XML feed has no <item> (RSS) or <entry> (Atom) elements")
    for number, item in enumerate(items, start=1):
        values: dict[str, str] = {}
        for child in item:
            namespace, name = _split(child.tag)
            if namespace not in {None, GOOGLE_NAMESPACE, ATOM_NAMESPACE}:
                continue
            value = child.text if child.text and child.text.strip() else child.get("href")
            if value is None:
                continue
            # An attribute in the g: namespace wins over RSS's own element of the same name.
            if namespace == GOOGLE_NAMESPACE or name not in values:
                values[_attribute_name(name)] = value
        yield _Row(number, values)


def _split(tag: Any) -> tuple[str | None, str]:
    tag = str(tag)
    if tag.startswith("{"):
        namespace, _, name = tag[1:].partition("}")
        return namespace, name
    return None, tag


def _local(tag: Any) -> str:
    return _split(tag)[1]


# --- values ----------------------------------------------------------------------------------------


def parse_price(text: str, column: str = "price") -> Money:
    """ "129.00 CNY" (Merchant Center's form), also "CNY 129.00", into minor units of the currency."""
    match = _PRICE.match(" ".join(text.split()))
    if match is None:
        raise _BadValue(column, f"{text!r} is not a price such as '129.00 CNY'")
    currency = (match.group(1) or match.group(3) or "").upper()
    if not currency or (match.group(1) and match.group(3)):
        raise _BadValue(column, f"{text!r} names no single ISO 4217 currency")
    number = match.group(2)
    number = number.replace(",", "") if "." in number or number.count(",") > 1 else number.replace(",", ".")
    try:
        amount = Money.from_decimal(Decimal(number), currency)
    except (InvalidOperation, ValueError) as exc:
        raise _BadValue(column, f"{text!r}: {exc}") from None
    if amount.amount_minor <= 0:
        raise _BadValue(column, f"{text!r} is not above zero")
    return amount


def _slug(level: str) -> str:
    return re.sub(r"[^\w]+", "-", level.strip().lower()).strip("-")


def _category(product_type: str) -> str:
    """The last level of "Apparel > Shoes > Running Shoes", as the plan's category ("running-shoes")."""
    return _slug(product_type.split(">")[-1]) or DEFAULT_CATEGORY


def _category_path(*paths: str) -> tuple[str, ...]:
    """Every level of the product_type and google_product_category paths ("Home & Garden > Kitchen >
    Kitchen Knives" is home-garden, kitchen, kitchen-knives): a brand's restricted categories are
    matched against all of them, not only the last level, which names the item in the merchant's
    own words. A numeric google_product_category (a taxonomy id) is kept as given."""
    levels = [_slug(level) for path in paths for level in path.split(">")]
    return tuple(dict.fromkeys(level for level in levels if level))


def _web_url(text: str | None) -> str | None:
    if not text:
        return None
    import httpx  # loaded with the first feed read, not with the planner's modules

    url = text.strip()
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        return None
    return url if parsed.scheme in {"http", "https"} and parsed.host else None


@dataclass(frozen=True)
class _Item:
    variant: ProductVariant
    group: str
    product_title: str
    description: str
    product_type: str
    brand: str | None


def _item(row: _Row) -> _Item:
    values = {name: value.strip() for name, value in row.values.items()}
    if "__extra__" in values:
        raise _BadValue("(row)", values["__extra__"])
    for name in REQUIRED_ATTRIBUTES:
        if not values.get(name):
            raise _BadValue(name, "is empty")
    item_id = values["id"]
    if len(item_id) > MAX_ID_LENGTH or any(char.isspace() for char in item_id):
        raise _BadValue("id", f"{item_id[:40]!r} is longer than {MAX_ID_LENGTH} characters or has spaces")
    availability = _attribute_name(values["availability"])
    if availability not in _AVAILABILITY:
        raise _BadValue(
            "availability", f"{values['availability']!r} is not one of {', '.join(_AVAILABILITY)}"
        )
    price = parse_price(values["price"])
    if values.get("sale_price"):
        sale = parse_price(values["sale_price"], "sale_price")
        if sale.currency != price.currency:
            raise _BadValue("sale_price", f"is in {sale.currency}, the price in {price.currency}")
        price = min(price, sale, key=lambda amount: amount.amount_minor)
    product_type = values.get("product_type", "")
    title = " ".join(values["title"].split())[:MAX_TITLE_LENGTH]
    variant = ProductVariant(
        id=item_id,
        productId=values.get("item_group_id") or item_id,
        title=title,
        price=price,
        size=values.get("size") or None,
        color=values.get("color") or values.get("colour") or None,
        stock=IN_STOCK_WITHOUT_COUNT if _AVAILABILITY[availability] else 0,
        category=_category(product_type) if product_type else DEFAULT_CATEGORY,
        categoryPath=_category_path(product_type, values.get("google_product_category", "")),
        imageUrl=_web_url(values.get("image_link")),
    )
    return _Item(
        variant=variant,
        group=variant.productId,
        product_title=title,
        description=" ".join(values.get("description", "").split()),
        product_type=product_type,
        brand=values.get("brand") or None,
    )


# --- the catalog -----------------------------------------------------------------------------------


class FeedCatalog:
    """The Catalog port over a parsed feed: search ranks as the planner does, lookup by id."""

    def __init__(self, products: Sequence[Product], *, skipped: Sequence[SkippedRow] = ()) -> None:
        self.products = list(products)
        self.skipped = list(skipped)
        self._variants = {variant.id: variant for product in self.products for variant in product.variants}
        self._by_product = {product.id: product for product in self.products}
        self._index: ProductIndex | None = None
        self._index_lock = threading.Lock()

    @property
    def currencies(self) -> set[str]:
        return {variant.price.currency for variant in self._variants.values()}

    @classmethod
    def parse(cls, text: str) -> FeedCatalog:
        """A feed's text, TSV or XML (told apart by the first character)."""
        text = text.lstrip("\ufeff")
        rows = _xml_rows(text) if text.lstrip().startswith("<") else _tsv_rows(text)
        items: list[_Item] = []
        skipped: list[SkippedRow] = []
        seen: set[str] = set()
        for row in rows:
            try:
                item = _item(row)
            except _BadValue as bad:
                skipped.append(SkippedRow(row.number, bad.column, str(bad)))
                continue
            except ValueError as exc:  # a value the plan's own models refuse
                skipped.append(SkippedRow(row.number, "(row)", str(exc).splitlines()[0]))
                continue
            if item.variant.id in seen:
                skipped.append(SkippedRow(row.number, "id", f"{item.variant.id!r} appears more than once"))
                continue
            seen.add(item.variant.id)
            items.append(item)
        if not items:
            detail = f"; first problem: {skipped[0]}" if skipped else ""
            raise FeedError(f"the feed has no usable product rows{detail}")
        if skipped:
            log.warning("product feed rows skipped", extra={"skipped": len(skipped), "kept": len(items)})
        return cls(_products(items), skipped=skipped)

    @classmethod
    def load(
        cls,
        source: str,
        *,
        base_dir: Path | None = None,
        max_bytes: int = MAX_FEED_BYTES,
        transport: httpx.BaseTransport | None = None,
    ) -> FeedCatalog:
        """A feed by path (relative to ``base_dir``, the brand's directory) or by http(s) URL."""
        return cls.parse(read_feed(source, base_dir=base_dir, max_bytes=max_bytes, transport=transport))

    # --- the Catalog port ---

    def search(self, query: SearchQuery) -> list[Product]:
        found: list[Product] = []
        for product in self._ranked(query.text):
            if query.category is not None and product.category != query.category.lower():
                continue
            variants = [variant for variant in product.variants if _passes(variant, query)]
            if variants:
                found.append(product.model_copy(update={"variants": variants}))
            if len(found) >= query.limit:
                break
        return found

    def lookup(self, item_ids: list[str], currency: str) -> list[ProductVariant]:
        """The variants asked for, in order; a product id stands for all its variants (as UCP's lookup)."""
        found: dict[str, ProductVariant] = {}
        for item_id in item_ids:
            if item_id in self._variants:
                candidates = [self._variants[item_id]]
            else:
                product = self._by_product.get(item_id)
                candidates = list(product.variants) if product else []
            for variant in candidates:
                if variant.price.currency == currency:
                    found.setdefault(variant.id, variant)
        return list(found.values())

    def _ranked(self, text: str) -> Iterable[Product]:
        with self._index_lock:
            if self._index is None:
                self._index = ProductIndex(self.products)
            index = self._index
        if not term_groups(words(text)):
            return self.products  # no word to rank by: the filters alone decide
        return [hit.product for hit in index.rank(text)]


def _passes(variant: ProductVariant, query: SearchQuery) -> bool:
    if variant.price.currency != query.currency:
        return False
    if query.maxPrice is not None and variant.price.amount_minor > query.maxPrice.amount_minor:
        return False
    return same_size(query.size, variant.size) and same_colour(query.color, variant.color)


def _products(items: list[_Item]) -> list[Product]:
    groups: dict[str, list[_Item]] = {}
    for item in items:
        groups.setdefault(item.group, []).append(item)
    products = []
    for group, members in groups.items():
        first = members[0]
        description = next((member.description for member in members if member.description), "")
        context = " ".join(part for part in (first.brand, first.product_type) if part)
        products.append(
            Product(
                id=group,
                title=_common_title([member.product_title for member in members]),
                description=" ".join(part for part in (description, context) if part),
                category=first.variant.category,
                variants=[member.variant for member in members],
            )
        )
    return products


_TITLE_SEPARATORS = frozenset({"-", "–", "—", "|", "/", ",", ":"})


def _common_title(titles: list[str]) -> str:
    """A product's title from its variants' ("Trail Tee - Black / M", "Trail Tee - Black / L" make
    "Trail Tee"): the words they share, up to where the variant's own part begins."""
    if len(titles) == 1:
        return titles[0]
    common: list[str] = []
    for column in zip(*(title.split() for title in titles), strict=False):
        word = column[0]
        if len(set(column)) != 1 or word in _TITLE_SEPARATORS or word.startswith("("):
            break
        common.append(word)
    return " ".join(common).rstrip(" -–—/|,:") or titles[0]


# --- fetching --------------------------------------------------------------------------------------


def read_feed(
    source: str,
    *,
    base_dir: Path | None = None,
    max_bytes: int = MAX_FEED_BYTES,
    transport: httpx.BaseTransport | None = None,
) -> str:
    """The feed's text, from a path or an http(s) URL, at most ``max_bytes`` long."""
    if re.match(r"^https?://", source, re.IGNORECASE):
        data = _download(source, max_bytes=max_bytes, transport=transport)
    else:
        path = Path(source)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            if path.stat().st_size > max_bytes:
                raise FeedError(f"the feed {path.name} is larger than {max_bytes} bytes")
            data = path.read_bytes()
        except OSError as exc:
            raise FeedError(f"the feed {source} cannot be read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FeedError("the feed is not UTF-8 text") from None


def _download(url: str, *, max_bytes: int, transport: httpx.BaseTransport | None) -> bytes:
    import httpx

    chunks: list[bytes] = []
    size = 0
    timeout = httpx.Timeout(FETCH_TIMEOUT_SECONDS, connect=FETCH_CONNECT_TIMEOUT_SECONDS)
    try:
        with (
            httpx.Client(timeout=timeout, transport=transport, follow_redirects=True) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise FeedError(f"the feed URL answered {response.status_code}")
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise FeedError(f"the feed is larger than {max_bytes} bytes")
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise FeedError(f"the feed URL cannot be fetched ({type(exc).__name__})") from None
    return b"".join(chunks)


@dataclass
class FeedSource:
    """A brand's feed, read when first searched and again once older than ``max_age_seconds``.

    A refresh that fails keeps the feed already read (and logs it): a brief outage of the feed's host
    should not stop planning. A first read that fails is a ``FeedError``.
    """

    source: str
    base_dir: Path | None = None
    max_age_seconds: float = 900.0
    clock: Callable[[], float] = time.monotonic
    transport: httpx.BaseTransport | None = None
    _catalog: FeedCatalog | None = field(default=None, init=False, repr=False)
    _read_at: float = field(default=0.0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def catalog(self) -> FeedCatalog:
        with self._lock:
            now = self.clock()
            if self._catalog is not None and now - self._read_at < self.max_age_seconds:
                return self._catalog
            try:
                self._catalog = FeedCatalog.load(
                    self.source, base_dir=self.base_dir, transport=self.transport
                )
            except FeedError:
                if self._catalog is None:
                    raise
                log.warning("product feed refresh failed; keeping the feed read before")
            self._read_at = now
            return self._catalog

    def search(self, query: SearchQuery) -> list[Product]:
        return self.catalog().search(query)

    def lookup(self, item_ids: list[str], currency: str) -> list[ProductVariant]:
        return self.catalog().lookup(item_ids, currency)

    @property
    def currencies(self) -> set[str]:
        return self.catalog().currencies
