"""Product feeds in the Google Merchant Center format, as a merchant without a catalog supplies them."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from cartpilot.commerce.feed import (
    IN_STOCK_WITHOUT_COUNT,
    FeedCatalog,
    FeedError,
    FeedSource,
    SkippedRow,
)
from cartpilot.commerce.ports import SearchQuery
from cartpilot.kernel.money import Money
from tests.fakes import cny

FEEDS = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"
HEADER = "id\ttitle\tdescription\tprice\tavailability\tproduct_type\tsize\tcolor\titem_group_id\timage_link"


def tsv(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def search(catalog: FeedCatalog, text: str, **filters: object) -> list[str]:
    query = SearchQuery.model_validate({"text": text, "currency": "CNY", **filters})
    return [product.id for product in catalog.search(query)]


def test_rows_of_one_item_group_are_one_product_with_its_variants():
    catalog = FeedCatalog.parse(
        tsv(
            "tee-b-m\tTrail Tee - Black / M\tSoft cotton tee.\t129.00 CNY\tin_stock\tApparel > Tops > T-Shirts\tM\tBlack\ttee\thttps://cdn.example/tee.png",
            "tee-b-l\tTrail Tee - Black / L\t\t129.00 CNY\tout_of_stock\tApparel > Tops > T-Shirts\tL\tBlack\ttee\tjavascript:alert(1)",
        )
    )
    [tee] = catalog.products
    assert (tee.id, tee.title, tee.category) == ("tee", "Trail Tee", "t-shirts")
    assert "Soft cotton tee." in tee.description and "Apparel > Tops > T-Shirts" in tee.description
    medium, large = tee.variants
    assert (medium.id, medium.price, medium.size, medium.color) == ("tee-b-m", cny("129.00"), "M", "Black")
    assert (medium.stock, large.stock) == (IN_STOCK_WITHOUT_COUNT, 0)
    # Only web URLs become image links; anything else is dropped, not passed on.
    assert (medium.imageUrl, large.imageUrl) == ("https://cdn.example/tee.png", None)


def test_prices_become_minor_units_of_their_currency():
    catalog = FeedCatalog.parse(
        tsv(
            "a\tA\t\t129 CNY\tin_stock\t\t\t\t\t",
            "b\tB\t\tUSD 12.5\tin_stock\t\t\t\t\t",
            "c\tC\t\t1500 JPY\tin_stock\t\t\t\t\t",
            "d\tD\t\t1,299.00 CNY\tin_stock\t\t\t\t\t",
        )
    )
    assert [variant.price for product in catalog.products for variant in product.variants] == [
        Money(amount_minor=12900, currency="CNY"),
        Money(amount_minor=1250, currency="USD"),
        Money(amount_minor=1500, currency="JPY"),
        Money(amount_minor=129900, currency="CNY"),
    ]
    assert catalog.currencies == {"CNY", "USD", "JPY"}


def test_a_sale_price_is_the_price():
    header = HEADER + "\tsale_price"
    catalog = FeedCatalog.parse(tsv("a\tA\t\t129.00 CNY\tin_stock\t\t\t\t\t\t99.00 CNY", header=header))
    assert catalog.products[0].variants[0].price == cny("99.00")


def test_preorder_and_backorder_items_are_listed_but_not_in_stock():
    catalog = FeedCatalog.parse(
        tsv("a\tA\t\t10.00 CNY\tpreorder\t\t\t\t\t", "b\tB\t\t10.00 CNY\tbackorder\t\t\t\t\t")
    )
    assert [variant.stock for product in catalog.products for variant in product.variants] == [0, 0]


def test_bad_rows_are_skipped_naming_row_and_column_and_the_rest_is_kept():
    catalog = FeedCatalog.parse(
        tsv(
            "ok\tGood\t\t10.00 CNY\tin_stock\t\t\t\t\t",
            "\tNo id\t\t10.00 CNY\tin_stock\t\t\t\t\t",
            "cheap\tFree\t\t0.00 CNY\tin_stock\t\t\t\t\t",
            "nocur\tNo currency\t\t10.00\tin_stock\t\t\t\t\t",
            "fine\tToo fine\t\t10.001 CNY\tin_stock\t\t\t\t\t",
            "odd\tOdd\t\t10.00 CNY\tsometimes\t\t\t\t\t",
            "ok\tAgain\t\t10.00 CNY\tin_stock\t\t\t\t\t",
            "xtra\tExtra\t\t10.00 CNY\tin_stock\t\t\t\t\t\t\tsurplus",
        )
    )
    assert [product.id for product in catalog.products] == ["ok"]
    assert [(skip.row, skip.column) for skip in catalog.skipped] == [
        (3, "id"), (4, "price"), (5, "price"), (6, "price"), (7, "availability"), (8, "id"), (9, "(row)"),
    ]  # fmt: skip
    assert str(catalog.skipped[0]) == "row 3, id: is empty"
    assert isinstance(catalog.skipped[1], SkippedRow) and "not above zero" in catalog.skipped[1].reason


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "the feed is empty"),
        ("id\ttitle\tprice\nx\tX\t1.00 CNY\n", "has no availability column"),
        (tsv("\tNo id\t\t10.00 CNY\tin_stock\t\t\t\t\t"), "no usable product rows; first problem: row 2, id"),
        ("<rss><channel></channel></rss>", "no <item> (RSS) or <entry> (Atom) elements"),
        ("<rss><channel><item>", "not well-formed XML"),
    ],
)
def test_a_feed_that_cannot_be_used_at_all_is_a_feed_error(text, problem):
    with pytest.raises(FeedError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        FeedCatalog.parse(text)


def test_xml_with_a_dtd_or_entities_is_refused_not_expanded():
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
        '<rss xmlns:g="http://base.google.com/ns/1.0"><channel><item><g:id>a</g:id><title>&lol2;</title>'
        "<g:price>1.00 CNY</g:price><g:availability>in_stock</g:availability></item></channel></rss>"
    )
    external = (
        '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        "<rss><channel><item><title>&x;</title></item></channel></rss>"
    )
    for text in (bomb, external):
        with pytest.raises(FeedError, match="without DTDs or entities"):
            FeedCatalog.parse(text)


def test_atom_entries_and_g_attributes_over_plain_ones():
    atom = (
        '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:g="http://base.google.com/ns/1.0">'
        "<entry><g:id>mug-1</g:id><title>Plain title</title><g:title>Ceramic Mug</g:title>"
        '<link href="https://shop.example/mug"/><g:price>49.00 CNY</g:price>'
        "<g:availability>in stock</g:availability><g:product_type>Home &gt; Mugs</g:product_type>"
        "<g:shipping><g:country>CN</g:country></g:shipping></entry></feed>"
    )
    [mug] = FeedCatalog.parse(atom).products
    assert (mug.title, mug.category, mug.variants[0].stock) == ("Ceramic Mug", "mugs", IN_STOCK_WITHOUT_COUNT)


def test_search_ranks_by_the_words_and_applies_the_filters():
    catalog = FeedCatalog.load(str(FEEDS / "sandbox.tsv"))
    assert search(catalog, "yoga mat") == ["fit-velora-pro-yoga-mat-6mm"]
    assert search(catalog, "瑜伽垫") == ["fit-velora-pro-yoga-mat-6mm"]
    assert search(catalog, "跑鞋")[:1] == ["rs-trailhawk"]
    # Filters keep only the variants that pass: size 42 running shoes in stock, none of Pacer's.
    shoes = catalog.search(SearchQuery(text="running shoes", currency="CNY", size="42", color="black"))
    assert {variant.size for product in shoes for variant in product.variants} == {"42"}
    assert search(catalog, "gift wrap", category="gift-wrap") == ["gift-wrap"]
    assert search(catalog, "running shoes", currency="USD") == []
    assert search(catalog, "surfboard") == []


def test_lookup_by_variant_or_product_id_in_the_asked_order():
    catalog = FeedCatalog.load(str(FEEDS / "sandbox.xml"))
    found = catalog.lookup(["socks-running-white-m", "gift-wrap", "nope"], "CNY")
    assert [variant.id for variant in found] == ["socks-running-white-m", "gift-wrap-standard"]
    assert len(catalog.lookup(["socks-running"], "CNY")) == 4
    assert catalog.lookup(["socks-running-white-m"], "USD") == []


def test_a_feed_by_url_has_a_size_cap_and_fails_clearly():
    body = (FEEDS / "sandbox.tsv").read_bytes()

    def served(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/missing.tsv":
            return httpx.Response(404)
        return httpx.Response(200, content=body)

    transport = httpx.MockTransport(served)
    catalog = FeedCatalog.load("https://feeds.example/sandbox.tsv", transport=transport)
    assert len(catalog.products) == 58
    with pytest.raises(FeedError, match="larger than 1000 bytes"):
        FeedCatalog.load("https://feeds.example/sandbox.tsv", transport=transport, max_bytes=1000)
    with pytest.raises(FeedError, match="answered 404"):
        FeedCatalog.load("https://feeds.example/missing.tsv", transport=transport)
    with pytest.raises(FeedError, match="cannot be read"):
        FeedCatalog.load("missing.tsv", base_dir=FEEDS)


def test_a_feed_source_reads_once_refreshes_when_old_and_keeps_the_last_good_feed():
    now = [0.0]
    answers = [(FEEDS / "sandbox.tsv").read_bytes()]

    def served(_: httpx.Request) -> httpx.Response:
        answers.append(b"")
        return httpx.Response(200, content=answers[-2]) if len(answers) == 2 else httpx.Response(503)

    source = FeedSource(
        "https://feeds.example/f.tsv", max_age_seconds=60, clock=lambda: now[0],
        transport=httpx.MockTransport(served),
    )  # fmt: skip
    first = source.catalog()
    assert source.catalog() is first and len(answers) == 2  # fresh: not fetched again
    now[0] = 61.0
    assert source.catalog() is first and len(answers) == 3  # refresh failed: the last good feed stays
    assert source.currencies == {"CNY"}
    with pytest.raises(FeedError):
        FeedSource("missing.tsv", base_dir=FEEDS).catalog()
