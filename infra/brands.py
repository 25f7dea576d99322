"""The few facts about a brand that shape its stack, read from ``brands/<brand>/brand.yaml``.

The application validates the full brand file at runtime; infrastructure reads only what it needs
and tolerates every other key, so the brand schema can grow without touching the stacks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

BRAND_FILE = "brand.yaml"
_NAME = re.compile(r"^[a-z0-9][a-z0-9\-]{1,40}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class BrandError(ValueError):
    """A brand directory cannot become a stack: missing, malformed or misnamed."""


@dataclass(frozen=True)
class Brand:
    name: str
    currency: str
    directory: Path
    merchant_url: str | None = None
    ses_identity: str | None = None

    @property
    def stack_name(self) -> str:
        return f"CartPilot-{self.name}"

    @property
    def metrics_namespace(self) -> str:
        """Where the functions emit business metrics (``Compensations``, ``NeedsAttention``)."""
        return f"CartPilot/{self.name}"

    @property
    def service_name(self) -> str:
        """Powertools' ``service``: the dimension of every metric, as the local stack names it too."""
        return f"cartpilot-{self.name}"


def load_brand(directory: Path) -> Brand:
    path = directory / BRAND_FILE
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BrandError(f"{path} not found") from exc
    except yaml.YAMLError as exc:
        raise BrandError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise BrandError(f"{path} must be a mapping")

    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise BrandError(f"{path}: name must match {_NAME.pattern}, got {name!r}")
    if name != directory.name:
        raise BrandError(f"{path}: name {name!r} differs from its directory {directory.name!r}")
    currency = raw.get("currency")
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        raise BrandError(f"{path}: currency must be an ISO 4217 code, got {currency!r}")

    return Brand(
        name=name,
        currency=currency,
        directory=directory,
        merchant_url=_default_merchant_url(raw, path=path),
        ses_identity=_optional_str(raw, "notifications", "sesIdentity", path=path),
    )


def discover_brands(brands_dir: Path) -> list[Brand]:
    """Every ``<brands_dir>/<name>/brand.yaml``, in name order."""
    if not brands_dir.is_dir():
        raise BrandError(f"brands directory {brands_dir} does not exist")
    return [load_brand(path.parent) for path in sorted(brands_dir.glob(f"*/{BRAND_FILE}"))]


def select_brands(brands: list[Brand], only: str | None) -> list[Brand]:
    """All brands, or the one named by ``-c brand=NAME``; an unknown name is an error, not an empty app."""
    if not brands:
        raise BrandError("no brands found: add brands/<name>/brand.yaml")
    if only is None:
        return brands
    chosen = [brand for brand in brands if brand.name == only]
    if not chosen:
        known = ", ".join(brand.name for brand in brands)
        raise BrandError(f"unknown brand {only!r}; known brands: {known}")
    return chosen


def _default_merchant_url(raw: dict[str, Any], *, path: Path) -> str | None:
    """The URL of the brand's default merchant: the first of ``merchants`` (or a lone ``merchant``)."""
    merchants = raw.get("merchants")
    if merchants is None:
        return _optional_str(raw, "merchant", "url", path=path)
    if not isinstance(merchants, list) or not merchants or not isinstance(merchants[0], dict):
        raise BrandError(f"{path}: merchants must be a non-empty list of mappings")
    return _optional_str({"merchant": merchants[0]}, "merchant", "url", path=path)


def _optional_str(raw: dict[str, Any], section: str, key: str, *, path: Path) -> str | None:
    block = raw.get(section)
    if block is None:
        return None
    if not isinstance(block, dict):
        raise BrandError(f"{path}: {section} must be a mapping")
    value = block.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BrandError(f"{path}: {section}.{key} must be a string")
    return value
