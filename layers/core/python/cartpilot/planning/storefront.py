"""The merchant a plan buys from, as planning reaches it: negotiation first, then products and quotes.

Every planner starts here. Discovery and negotiation (``Merchant.profile``) come before anything
that opens a session at the merchant, so a merchant with no version in common, or none of whose
payment handlers the brand can fund, is refused with its reason and nothing has changed anywhere.
Products come from the merchant's catalog when it advertises catalog search (catalog/search.md:
``dev.ucp.shopping.catalog.search``) and from the brand's product feed for it otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from cartpilot.brands.config import BrandConfig, BrandConfigError, MerchantConfig
from cartpilot.commerce.errors import MerchantRejected
from cartpilot.commerce.feed import FeedError, FeedSource
from cartpilot.commerce.ports import Catalog, Merchant, MerchantProfile, PaymentHandler
from cartpilot.orders.reach import refuse_unreachable
from cartpilot.planning.assembly import PlanningFailed, PlanningRequest
from cartpilot.plans.model import MerchantTerms

CATALOG_SEARCH = "dev.ucp.shopping.catalog.search"
ORDER_CANCEL = "com.cartpilot.order_cancel"
ORDER_RETURN = "com.cartpilot.order_return"

HandlerChooser = Callable[[MerchantProfile, BrandConfig], PaymentHandler]
"""``commerce.credentials.choose_handler``: the advertised handler the brand can fund, else refused."""


@dataclass(frozen=True)
class Storefront:
    """One merchant: its ports, its entry in brand.yaml, and the brand's product feed for it."""

    merchant: Merchant
    config: MerchantConfig
    feed: Catalog | None = None


StorefrontSource = Callable[[MerchantConfig], Storefront]
"""Builds the storefront of another of the brand's merchants, for a goal that names one."""


@runtime_checkable
class _PricedIn(Protocol):
    """A product source that knows which currencies it prices in (a feed does)."""

    @property
    def currencies(self) -> set[str]: ...


@dataclass(frozen=True)
class Negotiated:
    """What planning settled with the merchant before choosing anything."""

    storefront: Storefront
    profile: MerchantProfile
    handler: PaymentHandler
    products: Catalog
    source: Literal["catalog", "feed"]

    @property
    def merchant(self) -> Merchant:
        return self.storefront.merchant

    def currency(self, brand_currency: str) -> str:
        """The brand's currency when the merchant sells in it; for a feed priced only in another, that one."""
        if self.source == "feed" and isinstance(self.products, _PricedIn):
            currencies = self.products.currencies
            if brand_currency not in currencies and len(currencies) == 1:
                return next(iter(currencies))
        return brand_currency

    def terms(self) -> MerchantTerms:
        profile = self.profile
        return MerchantTerms(
            id=self.storefront.config.id,
            ucpVersion=profile.version,
            paymentHandler=self.handler.name,
            paymentHandlerId=self.handler.id,
            undo="cancel" if profile.offers(ORDER_CANCEL) else "none",
            returns=profile.offers(ORDER_RETURN),
        )


def _default_chooser() -> HandlerChooser:
    from cartpilot.commerce.credentials import choose_handler

    return choose_handler


class Storefronts:
    """The merchants a planner can plan at: its own, and others of the brand through ``elsewhere``."""

    def __init__(
        self,
        merchant: Merchant,
        merchant_config: MerchantConfig,
        feed: Catalog | None = None,
        *,
        elsewhere: StorefrontSource | None = None,
        choose_handler: HandlerChooser | None = None,
    ) -> None:
        self.default = Storefront(merchant, merchant_config, feed)
        self._elsewhere = elsewhere
        self._choose_handler = choose_handler

    def for_request(self, request: PlanningRequest) -> Storefront:
        """The merchant the goal's context names (``merchantId``), else this planner's own."""
        wanted = request.context.merchantId
        if wanted is None or wanted == self.default.config.id:
            return self.default
        try:
            config = request.brand.merchant(wanted)
        except BrandConfigError:
            raise PlanningFailed(f"the brand has no merchant {wanted!r}") from None
        if self._elsewhere is None:
            raise PlanningFailed(f"this planner buys from {self.default.config.id} only, not from {wanted}")
        return self._elsewhere(config)

    def negotiate(self, request: PlanningRequest, lookups: list[str]) -> Negotiated:
        """Discovery, version and payment handler; a refusal is a PlanningFailed in the merchant's words."""
        storefront = self.for_request(request)
        merchant_id = storefront.config.id
        try:
            profile = storefront.merchant.profile()
        except MerchantRejected as refusal:
            raise PlanningFailed(f"merchant {merchant_id} cannot be bought from: {refusal}") from refusal
        lookups.append(f"merchant.profile {merchant_id} UCP {profile.version}")
        try:
            # Before anything is bought: an order whose shipment we can never learn of is not placed.
            refuse_unreachable(storefront.config, profile.version)
        except MerchantRejected as refusal:
            raise PlanningFailed(f"merchant {merchant_id} cannot be bought from: {refusal}") from refusal
        chooser = self._choose_handler or _default_chooser()
        try:
            handler = chooser(profile, request.brand)
        except MerchantRejected as refusal:
            raise PlanningFailed(f"merchant {merchant_id} cannot be paid: {refusal}") from refusal
        if profile.offers(CATALOG_SEARCH):
            return Negotiated(storefront, profile, handler, storefront.merchant.catalog, "catalog")
        if storefront.feed is not None:
            if isinstance(storefront.feed, FeedSource):
                try:
                    storefront.feed.catalog()  # read now: a feed that cannot be read is a clear refusal
                except FeedError as unreadable:
                    raise PlanningFailed(
                        f"the product feed for merchant {merchant_id} cannot be read: {unreadable}"
                    ) from unreadable
            return Negotiated(storefront, profile, handler, storefront.feed, "feed")
        raise PlanningFailed(
            f"merchant {merchant_id} offers no catalog search and the brand configures no product feed for it"
        )
