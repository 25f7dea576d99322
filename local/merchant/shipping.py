"""Shipping from the Shanghai warehouse: rates and delivery estimates.

Estimates are calendar days from the merchant's clock (UTC). A delivery day is rendered as
10:00Z, which is 18:00 in China, so its UTC date and its local date agree. International
Economy has no estimate at all (fulfillment.md: an option needs only a title and a total).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from cartpilot_local.merchant.protocol import BusinessRefusal, JsonObject, Message

WAREHOUSE: JsonObject = {
    "street_address": "1 Sandbox Logistics Park, Pudong",
    "address_locality": "Shanghai",
    "address_region": "SH",
    "postal_code": "201315",
    "address_country": "CN",
}

_DELIVERY_HOUR_UTC = 10

_COUNTRY_ALIASES = {
    "china": "CN", "chn": "CN", "中国": "CN", "prc": "CN",
    "usa": "US", "united states": "US", "united states of america": "US",
    "gbr": "GB", "united kingdom": "GB", "uk": "GB",
    "sgp": "SG", "singapore": "SG", "jpn": "JP", "japan": "JP", "deu": "DE", "germany": "DE",
    "fra": "FR", "france": "FR", "aus": "AU", "australia": "AU", "can": "CA", "canada": "CA",
    "hkg": "HK", "kor": "KR",
}  # fmt: skip
# Places the sandbox's carriers do not reach.
_UNDELIVERABLE = frozenset({"AQ"})

# Same-region deliveries around the warehouse arrive fastest; the far west slowest.
_NEARBY_REGIONS = frozenset({"sh", "shanghai", "上海", "zj", "zhejiang", "浙江", "js", "jiangsu", "江苏"})
_NEARBY_CITIES = frozenset(
    {
        "shanghai",
        "上海",
        "hangzhou",
        "杭州",
        "suzhou",
        "苏州",
        "nanjing",
        "南京",
        "ningbo",
        "宁波",
        "wuxi",
        "无锡",
    }
)
_REMOTE_REGIONS = frozenset(
    {
        "xj",
        "xinjiang",
        "新疆",
        "xz",
        "tibet",
        "xizang",
        "西藏",
        "qh",
        "qinghai",
        "青海",
        "nx",
        "ningxia",
        "宁夏",
    }
)
_REMOTE_CITIES = frozenset({"urumqi", "乌鲁木齐", "lhasa", "拉萨", "xining", "西宁", "kashgar", "喀什"})


@dataclass(frozen=True)
class Rate:
    id: str
    title: str
    carrier: str
    days: tuple[int, int] | None  # None: the carrier gives no delivery estimate
    prices: dict[str, int]  # currency -> minor units
    free_from: dict[str, int] | None = None  # subtotal (minor units) from which it is free


_CN_STANDARD_PRICES = {"CNY": 1000, "USD": 150}
_CN_FREE_FROM = {"CNY": 9900, "USD": 1400}
_CN_EXPEDITED_PRICES = {"CNY": 4500, "USD": 650}
_INTL_STANDARD = Rate(
    "international-standard", "International Standard", "China Post EMS", (8, 15), {"CNY": 10800, "USD": 1500}
)
_INTL_ECONOMY = Rate(
    "international-economy", "International Economy", "China Post Registered Air Mail", None,
    {"CNY": 4800, "USD": 700},
)  # fmt: skip
_INTL_EXPRESS = Rate(
    "international-express", "International Express", "DHL Express", (3, 5), {"CNY": 25200, "USD": 3500}
)


@dataclass(frozen=True)
class Destination:
    country: str
    region: str | None
    city: str | None


@dataclass(frozen=True)
class ShippingQuote:
    rate: Rate
    amount: int
    currency: str
    earliest: date | None
    latest: date | None

    @property
    def id(self) -> str:
        return self.rate.id

    @property
    def description(self) -> str:
        """fulfillment.md: supplementary context, not a repeat of the title or the price."""
        if self.earliest is None or self.latest is None:
            return f"Delivery date not estimated; sent via {self.rate.carrier}, shipped from Shanghai"
        return (
            f"Arrives {self.earliest.isoformat()} to {self.latest.isoformat()} via {self.rate.carrier}, "
            "shipped from Shanghai"
        )

    @property
    def earliest_time(self) -> str | None:
        return None if self.earliest is None else delivery_time(self.earliest)

    @property
    def latest_time(self) -> str | None:
        return None if self.latest is None else delivery_time(self.latest)


def delivery_time(day: date) -> str:
    return f"{day.isoformat()}T{_DELIVERY_HOUR_UTC:02d}:00:00Z"


def normalise_country(value: str | None) -> str | None:
    if not value:
        return None
    cleaned = value.strip()
    if len(cleaned) == 2 and cleaned.isascii() and cleaned.isalpha():
        return cleaned.upper()
    return _COUNTRY_ALIASES.get(cleaned.lower())


def _undeliverable(content: str, path: str) -> BusinessRefusal:
    return BusinessRefusal(Message.error("address_undeliverable", content, path=path))


def destination_from(address: JsonObject, *, path: str) -> Destination:
    country = normalise_country(address.get("address_country"))
    if country is None:
        raise _undeliverable("the destination needs a country (ISO 3166-1 alpha-2)", path)
    if country in _UNDELIVERABLE:
        raise _undeliverable(f"we do not ship to {country}", path)
    return Destination(
        country=country, region=address.get("address_region"), city=address.get("address_locality")
    )


def _cn_rates(destination: Destination) -> tuple[Rate, Rate]:
    city = (destination.city or "").strip().lower()
    region = (destination.region or "").strip().lower()
    if city in _NEARBY_CITIES or region in _NEARBY_REGIONS:
        standard_days, expedited_days = (1, 3), (1, 1)
    elif city in _REMOTE_CITIES or region in _REMOTE_REGIONS:
        standard_days, expedited_days = (5, 9), (2, 4)
    else:  # Beijing and the rest of the mainland
        standard_days, expedited_days = (3, 6), (1, 2)
    return (
        Rate(
            "standard", "Standard Shipping", "ZTO Express", standard_days, _CN_STANDARD_PRICES, _CN_FREE_FROM
        ),
        Rate("expedited", "Expedited Shipping", "SF Express", expedited_days, _CN_EXPEDITED_PRICES),
    )


def quote_shipping(
    destination: Destination,
    *,
    subtotal: int,
    currency: str,
    now: datetime,
    restricted_items: bool = False,
    path: str = "$.destination",
) -> list[ShippingQuote]:
    """The options for a parcel worth `subtotal` to `destination`, cheapest first."""
    if destination.country == "CN":
        rates: tuple[Rate, ...] = _cn_rates(destination)
    elif restricted_items:
        # Knives and alcohol cannot leave the country with our carriers.
        raise _undeliverable(f"restricted items cannot be shipped to {destination.country}", path)
    else:
        rates = (_INTL_ECONOMY, _INTL_STANDARD, _INTL_EXPRESS)
    today = now.date()
    quotes = []
    for rate in rates:
        amount = rate.prices[currency]
        if rate.free_from is not None and subtotal >= rate.free_from[currency]:
            amount = 0
        window = rate.days
        quotes.append(
            ShippingQuote(
                rate=rate,
                amount=amount,
                currency=currency,
                earliest=None if window is None else today + timedelta(days=window[0]),
                latest=None if window is None else today + timedelta(days=window[1]),
            )
        )
    return quotes
