"""Brand configuration: limits, currency, planner and merchant, read from ``brands/<brand>/brand.yaml``."""

from __future__ import annotations

import functools
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from cartpilot.brands.access import ApiClient, StaffMember
from cartpilot.kernel.money import MINOR_UNIT_EXPONENTS, Money

DEFAULT_LAMBDA_BRANDS_DIR = Path("/opt/brands")
# In a source checkout the brands live at the repository root, five levels above this module.
_SOURCE_BRANDS_DIR = Path(__file__).resolve().parents[5] / "brands"


class BrandConfigError(ValueError):
    """The brand's files are missing or invalid; raised at load, never mid-order."""


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    perOrder: Money
    perDay: Money
    confirmationThreshold: Money = Field(description="Orders above this total need the shopper's approval")
    strongApprovalThreshold: Money = Field(description="Orders above this total need a typed confirmation")
    maxOrdersPerDay: int = Field(default=5, ge=1)
    stepUpThreshold: Money | None = Field(
        default=None,
        description="From this total an approval also needs a one-time code (none: no step-up by amount)",
    )


class ModelPrice(BaseModel):
    """What a model costs per million tokens, in minor units of the provider's billing currency."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    inputPerMillion: Money
    outputPerMillion: Money
    cachedInputPerMillion: Money | None = Field(
        default=None,
        description="Prompt tokens the provider served from its context cache; unset: the input price",
    )
    cacheCreationPerMillion: Money | None = Field(
        default=None,
        description="Prompt tokens the provider wrote to an explicit context cache; unset: the input price",
    )

    @model_validator(mode="after")
    def _one_currency(self) -> ModelPrice:
        currencies = {self.inputPerMillion.currency, self.outputPerMillion.currency}
        for optional in (self.cachedInputPerMillion, self.cacheCreationPerMillion):
            if optional is not None:
                currencies.add(optional.currency)
        if len(currencies) > 1:
            raise ValueError("input, cached input, cache creation and output prices must be in one currency")
        return self

    @property
    def cachedInput(self) -> Money:
        """What a million cache-hit prompt tokens cost: the cached price, else the input price."""
        return self.cachedInputPerMillion or self.inputPerMillion

    @property
    def cacheCreation(self) -> Money:
        """What a million prompt tokens written to an explicit cache cost: the creation price, else
        the input price."""
        return self.cacheCreationPerMillion or self.inputPerMillion


class PlannerConfig(BaseModel):
    """Which planner a brand runs; the rules planner is the offline default and every model's fallback."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    provider: Literal["rules", "openai", "bedrock"] = "rules"
    model: str | None = None
    baseUrl: str | None = Field(default=None, description="OpenAI-compatible endpoint, e.g. .../v1")
    apiKeySecretId: str | None = Field(
        default=None, description="Secrets Manager id of the API key; LLM_API_KEY_SECRET_ID also works"
    )
    region: str | None = Field(default=None, description="Bedrock region; default: the function's own")
    structuredOutput: Literal["json_schema", "json_object", "none"] = "json_schema"
    promptVersion: str = Field(default="v1", pattern=r"^v[0-9]{1,3}$")
    connectTimeoutSeconds: float = Field(default=3.0, gt=0, le=30)
    timeoutSeconds: float = Field(default=30.0, gt=0, le=90, description="Per model call")
    budgetSeconds: float = Field(default=60.0, gt=0, le=90, description="All model calls of one plan")
    maxToolRounds: int = Field(default=4, ge=1, le=8)
    maxRepairRounds: int = Field(default=2, ge=0, le=2)
    maxOutputTokens: int = Field(default=1024, ge=128, le=8192)
    temperature: float = Field(default=0.0, ge=0, le=2)
    fallback: Literal["rules", "none"] = "rules"
    rulesFirst: bool = Field(
        default=False,
        description="Plan without a model call when the shop's rules leave one plan (planning.rules_first)",
    )
    extraBody: dict[str, Any] = Field(
        default_factory=dict,
        description="Provider-specific request fields, e.g. {enable_thinking: false} for Qwen3 on DashScope",
    )
    prices: dict[str, ModelPrice] = Field(default_factory=dict, description="Per model name")
    contextCache: Literal["implicit", "explicit"] = Field(
        default="implicit",
        description="openai provider: explicit marks the system and the last message with cache_control "
        "(DashScope's explicit cache); implicit sends requests unmarked",
    )


class MerchantCredentials(BaseModel):
    """How to present the brand's credential to a merchant; the value itself lives in Secrets Manager."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    secretId: str = Field(min_length=1, description="Secrets Manager id whose value is the credential")
    header: str = Field(default="Authorization", pattern=r"^[A-Za-z0-9\-]{1,64}$")
    scheme: str | None = Field(
        default="Bearer", description="Prefix before the value, e.g. Bearer; none for X-API-Key"
    )


class MerchantConfig(BaseModel):
    """One merchant a brand buys from: where it is, and what the brand holds for it."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9\-]{1,60}$")
    url: str = Field(
        pattern=r"^https?://", description="The merchant's origin; its /.well-known/ucp says the rest"
    )
    feed: str | None = Field(
        default=None,
        description="A Google Merchant Center product feed (TSV or XML), by path (relative to the brand) or URL, "
        "for a merchant without a catalog capability",
    )
    credentials: MerchantCredentials | None = None
    orderEvents: Literal["webhook", "poll"] = Field(
        default="webhook",
        description="How CartPilot learns of shipments: the merchant pushes order events to the webhook "
        "its platform profile advertises, or a scheduled sweep reads each open order (Get Order)",
    )


class BrandConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9\-]{1,40}$")
    displayName: str
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    limits: Limits
    restrictedCategories: dict[str, Literal["deny", "staff"]] = Field(default_factory=dict)
    categoryAliases: dict[str, list[str]] = Field(
        default_factory=dict,
        description="A restricted category -> the other words merchants' taxonomies use for it "
        "(alcohol: [alcoholic, wine]); each restricts as its category does",
    )
    allowedMerchants: list[str] = Field(default_factory=list)
    approvalTimeoutSeconds: int = Field(default=86400, ge=10, le=7 * 86400)
    approvalLinkTtlSeconds: int = Field(default=86400, ge=10, le=7 * 86400)
    # One reminder to the approver this long before the link expires (never in its first half); 0: none.
    approvalReminderLeadSeconds: int = Field(default=3600, ge=0, le=7 * 86400)
    undoWindowSeconds: int = Field(default=72 * 3600, ge=0, le=30 * 86400)
    # The shopper's view link (receipt, outcome notices): long enough to follow delivery and returns,
    # and at most one rotation period of its key (the ring keeps the previous key for one period).
    shopperViewTtlSeconds: int = Field(default=30 * 86400, ge=10, le=30 * 86400)
    priceTolerancePercent: int = Field(default=0, ge=0, le=20)
    # A factory, not an instance: an instance would build the planner's models when the module loads.
    planner: PlannerConfig = Field(default_factory=PlannerConfig)
    generatedShoppers: int = Field(default=0, ge=0, le=100000)
    merchants: list[MerchantConfig] = Field(min_length=1, description="The first is the default")
    paymentHandlers: dict[str, str] = Field(
        default_factory=dict,
        description="Payment handler name (reverse-domain) -> the credential provider that funds it",
    )
    currencyRates: dict[str, str] = Field(
        default_factory=dict,
        description="Units of the brand's currency per unit of another, e.g. {USD: '7.10'}; "
        "limits are checked through these for plans in another currency",
    )
    notifications: dict[str, str] = Field(default_factory=dict)
    apiClients: list[ApiClient] = Field(
        default_factory=list,
        description="The backends that may call the goal routes, by IAM principal, and the users each "
        "may act for; any other caller is refused",
    )
    staff: list[StaffMember] = Field(
        default_factory=list, description="Who decides staff-only approvals, by IAM principal"
    )
    # Where brand.yaml was read from; its policies and users sit beside it.
    _directory: Path | None = PrivateAttr(default=None)

    @property
    def directory(self) -> Path:
        return self._directory or brand_dir(self.name)

    def merchant(self, merchant_id: str | None = None) -> MerchantConfig:
        """The merchant with this id, or the default one; an unknown id is a configuration error."""
        if merchant_id is None:
            return self.merchants[0]
        for merchant in self.merchants:
            if merchant.id == merchant_id:
                return merchant
        raise BrandConfigError(f"brand {self.name} has no merchant {merchant_id!r}")

    def category_rules(self) -> dict[str, Literal["deny", "staff"]]:
        """Every key a merchant's category is matched against (``brands.categories``): the restricted
        categories and their aliases, each with its category's rule."""
        rules = dict(self.restrictedCategories)
        for category, aliases in self.categoryAliases.items():
            for alias in aliases:
                rules[alias] = (
                    "deny" if "deny" in (rules.get(alias), self.restrictedCategories[category]) else "staff"
                )
        return rules

    @model_validator(mode="after")
    def _aliases_name_restricted_categories(self) -> BrandConfig:
        unknown = sorted(set(self.categoryAliases) - set(self.restrictedCategories))
        if unknown:
            raise ValueError(f"categoryAliases: {', '.join(unknown)} not in restrictedCategories")
        return self

    @model_validator(mode="after")
    def _caller_ids_unique(self) -> BrandConfig:
        for label, ids in (
            ("apiClients", [c.id for c in self.apiClients]),
            ("staff", [m.id for m in self.staff]),
        ):
            if len(ids) != len(set(ids)):
                raise ValueError(f"{label}: ids must be unique")
        return self

    @model_validator(mode="after")
    def _merchant_ids_unique(self) -> BrandConfig:
        ids = [merchant.id for merchant in self.merchants]
        if len(ids) != len(set(ids)):
            raise ValueError("merchant ids must be unique")
        return self

    @model_validator(mode="after")
    def _rates_are_positive_decimals(self) -> BrandConfig:
        for currency, rate in self.currencyRates.items():
            if currency not in MINOR_UNIT_EXPONENTS:
                raise ValueError(f"currencyRates: unsupported currency {currency}")
            if currency == self.currency:
                raise ValueError(f"currencyRates: {currency} is the brand's own currency")
            try:
                value = Decimal(rate)
            except InvalidOperation:
                raise ValueError(f"currencyRates.{currency}: {rate!r} is not a decimal number") from None
            if not value.is_finite() or value <= 0:
                raise ValueError(f"currencyRates.{currency}: {rate!r} must be a positive number")
        return self

    @model_validator(mode="after")
    def _limits_in_brand_currency(self) -> BrandConfig:
        for name, amount in self.limits:
            if isinstance(amount, Money) and amount.currency != self.currency:
                raise ValueError(
                    f"limits.{name} is in {amount.currency}, the brand trades in {self.currency}"
                )
        return self


def default_brands_dir() -> Path:
    """The Lambda layer's brands, or the repository's in a source checkout; deployments may
    point elsewhere through the composition root's settings."""
    if DEFAULT_LAMBDA_BRANDS_DIR.is_dir():
        return DEFAULT_LAMBDA_BRANDS_DIR
    return _SOURCE_BRANDS_DIR


def brand_dir(name: str, root: Path | None = None) -> Path:
    return (root or default_brands_dir()) / name


ModelT = TypeVar("ModelT", bound=BaseModel)


def load_yaml_model(path: Path, model: type[ModelT], label: str = "") -> ModelT:
    """Reads a brand's YAML file into its model; every problem is a BrandConfigError naming the file."""
    import yaml  # loaded with the first brand file, not by every handler that imports the models

    prefix = f"{label}: " if label else ""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BrandConfigError(f"{prefix}{path} not found") from exc
    except yaml.YAMLError as exc:
        raise BrandConfigError(f"{prefix}{path} is not valid YAML: {exc}") from exc
    try:
        return model.model_validate(raw)
    except ValueError as exc:
        raise BrandConfigError(f"{prefix}{path}: {exc}") from exc


@functools.cache
def load_brand(name: str, root: Path | None = None) -> BrandConfig:
    directory = brand_dir(name, root)
    brand = load_yaml_model(directory / "brand.yaml", BrandConfig, f"brand {name!r}")
    brand._directory = directory
    return brand
