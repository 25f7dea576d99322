"""CartPilot's own UCP profile: what a merchant reads at the URL our ``UCP-Agent`` header names.

A merchant fetches it to learn our protocol version, the capabilities we can use with it, the payment
handlers we can fund, and the public keys our request signatures verify with (overview.md,
"Platform Profile", "Platform Advertisement on Request", "Key Discovery").

- ``/.well-known/ucp`` is the 2026-04-08 profile; its ``supported_versions`` links the older one.
- ``/.well-known/ucp/2026-01-11`` is a leaf in that version's own shape (overview.md: version
  profiles are leaf documents and carry no ``supported_versions``).

Both publish the same ``signing_keys``: the current key and the previous ones still in their overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from http_sfv import Dictionary, Item

from cartpilot.commerce.signing_keys import SigningKeyRing

CURRENT_VERSION: Final = "2026-04-08"
LEGACY_VERSION: Final = "2026-01-11"
# Newest first: the order negotiation prefers.
SUPPORTED_VERSIONS: Final = (CURRENT_VERSION, LEGACY_VERSION)
PROFILE_PATH: Final = "/.well-known/ucp"
# Where merchants POST order events, one URL per merchant (the path names the merchant).
WEBHOOK_PATH: Final = "/webhooks/merchants/{merchantId}"
# overview.md, "Hosting": profiles are served with Cache-Control public and max-age >= 60.
PROFILE_CACHE_CONTROL: Final = "public, max-age=300"

SHOPPING_SERVICE: Final = "dev.ucp.shopping"
CHECKOUT: Final = "dev.ucp.shopping.checkout"
FULFILLMENT: Final = "dev.ucp.shopping.fulfillment"
ORDER: Final = "dev.ucp.shopping.order"
CATALOG_SEARCH: Final = "dev.ucp.shopping.catalog.search"
CATALOG_LOOKUP: Final = "dev.ucp.shopping.catalog.lookup"
# UCP has no order cancel; a merchant may offer ours, an extension of the order capability.
ORDER_CANCEL: Final = "com.cartpilot.order_cancel"
# Nor returns: a merchant may offer ours, filed for an order that has shipped.
ORDER_RETURN: Final = "com.cartpilot.order_return"
SANDBOX_TOKENIZER_NAME: Final = "com.cartpilot.sandbox_tokenizer"

# overview.md, "Spec URL Binding": a capability's spec and schema live at its namespace's authority,
# ucp.dev for dev.ucp.*, cartpilot.com for com.cartpilot.*.
CARTPILOT_SPEC_BASE: Final = "https://cartpilot.com/ucp"


@dataclass(frozen=True)
class _Capability:
    name: str
    spec_path: str  # under the version's specification/
    schema_path: str  # under the version's schemas/
    extends: str | None = None
    ucp_namespace: bool = True


# What CartPilot's UCP client calls, per version (2026-01-11 has no catalog capability).
_CAPABILITIES: Final[dict[str, tuple[_Capability, ...]]] = {
    CURRENT_VERSION: (
        _Capability(CHECKOUT, "checkout", "shopping/checkout.json"),
        _Capability(FULFILLMENT, "fulfillment", "shopping/fulfillment.json", extends=CHECKOUT),
        _Capability(ORDER, "order", "shopping/order.json"),
        _Capability(CATALOG_SEARCH, "catalog/search", "shopping/catalog_search.json"),
        _Capability(CATALOG_LOOKUP, "catalog/lookup", "shopping/catalog_lookup.json"),
        _Capability(ORDER_CANCEL, "order_cancel", "order_cancel.json", extends=ORDER, ucp_namespace=False),
        _Capability(ORDER_RETURN, "order_return", "order_return.json", extends=ORDER, ucp_namespace=False),
    ),
    LEGACY_VERSION: (
        _Capability(CHECKOUT, "checkout", "shopping/checkout.json"),
        _Capability(FULFILLMENT, "fulfillment", "shopping/fulfillment.json", extends=CHECKOUT),
        _Capability(ORDER, "order", "shopping/order.json"),
        _Capability(ORDER_CANCEL, "order_cancel", "order_cancel.json", extends=ORDER, ucp_namespace=False),
        _Capability(ORDER_RETURN, "order_return", "order_return.json", extends=ORDER, ucp_namespace=False),
    ),
}


@dataclass(frozen=True)
class PaymentHandlerDeclaration:
    """A payment handler CartPilot can fund (it holds a credential provider for it)."""

    name: str
    id: str
    version: str
    spec: str
    schema: str  # the handler's config schema
    instrument_types: tuple[str, ...] = ("card",)


SANDBOX_TOKENIZER: Final = PaymentHandlerDeclaration(
    name=SANDBOX_TOKENIZER_NAME,
    id="sandbox_tokenizer",
    version=CURRENT_VERSION,
    spec=f"{CARTPILOT_SPEC_BASE}/handlers/sandbox_tokenizer",
    schema=f"{CARTPILOT_SPEC_BASE}/handlers/sandbox_tokenizer/config.json",
)


def _ucp_base(version: str) -> str:
    # 2026-04-08 versions its URLs; 2026-01-11's examples use the unversioned ones.
    return f"https://ucp.dev/{version}" if version == CURRENT_VERSION else "https://ucp.dev"


def _require_supported(version: str) -> None:
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"CartPilot speaks UCP {' and '.join(SUPPORTED_VERSIONS)}, not {version}")


def profile_url(base_url: str, version: str) -> str:
    """Where our profile for ``version`` is served: what ``UCP-Agent`` names for a merchant speaking it."""
    _require_supported(version)
    base = base_url.rstrip("/") + PROFILE_PATH
    return base if version == CURRENT_VERSION else f"{base}/{version}"


def ucp_agent_header(profile_url: str) -> str:
    """``UCP-Agent``: an RFC 8941 Dictionary with the profile URL as a String (overview.md)."""
    header = Dictionary()
    header["profile"] = Item(profile_url)
    return str(header)


def _spec_and_schema(capability: _Capability, version: str) -> tuple[str, str]:
    if capability.ucp_namespace:
        base = _ucp_base(version)
        return f"{base}/specification/{capability.spec_path}", f"{base}/schemas/{capability.schema_path}"
    base = f"{CARTPILOT_SPEC_BASE}/{version}"
    return f"{base}/specification/{capability.spec_path}", f"{base}/schemas/{capability.schema_path}"


def webhook_url(base_url: str, merchant_id: str) -> str:
    """Where a merchant POSTs its order events (order.md, "Webhook URL Configuration")."""
    return f"{base_url.rstrip('/')}{WEBHOOK_PATH.format(merchantId=merchant_id)}"


def platform_profile(
    base_url: str,
    version: str,
    keys: SigningKeyRing,
    *,
    payment_handlers: Sequence[PaymentHandlerDeclaration] = (SANDBOX_TOKENIZER,),
    webhook_merchant: str | None = None,
) -> dict[str, Any]:
    """The profile document for ``version``, served under ``base_url`` (the API's public URL).

    With ``webhook_merchant``, the order capability's ``config.webhook_url`` (both versions put it
    there: ``order.json`` ``platform_schema``/``platform_config``) is that merchant's event URL.
    """
    _require_supported(version)
    order_config = {"webhook_url": webhook_url(base_url, webhook_merchant)} if webhook_merchant else None
    if version == CURRENT_VERSION:
        return _current_profile(base_url, keys, payment_handlers, order_config)
    return _legacy_profile(keys, payment_handlers, order_config)


def _current_profile(
    base_url: str,
    keys: SigningKeyRing,
    handlers: Sequence[PaymentHandlerDeclaration],
    order_config: dict[str, str] | None,
) -> dict[str, Any]:
    """2026-04-08: registries keyed by name (source/schemas/ucp.json, ``platform_schema``)."""
    base = _ucp_base(CURRENT_VERSION)
    capabilities: dict[str, list[dict[str, Any]]] = {}
    for capability in _CAPABILITIES[CURRENT_VERSION]:
        spec, schema = _spec_and_schema(capability, CURRENT_VERSION)
        entry: dict[str, Any] = {"version": CURRENT_VERSION, "spec": spec, "schema": schema}
        if capability.extends:
            entry["extends"] = capability.extends
        if capability.name == ORDER and order_config:
            entry["config"] = dict(order_config)
        capabilities[capability.name] = [entry]
    return {
        "ucp": {
            "version": CURRENT_VERSION,
            # overview.md, "Protocol Version": each older version maps to its own complete profile.
            "supported_versions": {
                version: profile_url(base_url, version)
                for version in SUPPORTED_VERSIONS
                if version != CURRENT_VERSION
            },
            "services": {
                SHOPPING_SERVICE: [
                    {
                        "version": CURRENT_VERSION,
                        "spec": f"{base}/specification/overview",
                        "transport": "rest",
                        "schema": f"{base}/services/shopping/rest.openapi.json",
                    }
                ]
            },
            "capabilities": capabilities,
            "payment_handlers": {
                handler.name: [
                    {
                        "id": handler.id,
                        "version": handler.version,
                        "spec": handler.spec,
                        "schema": handler.schema,
                        "available_instruments": [{"type": kind} for kind in handler.instrument_types],
                    }
                ]
                for handler in handlers
            },
        },
        "signing_keys": keys.published(),
    }


def _legacy_profile(
    keys: SigningKeyRing, handlers: Sequence[PaymentHandlerDeclaration], order_config: dict[str, str] | None
) -> dict[str, Any]:
    """2026-01-11: capabilities as a list of named entries, payment handlers under ``payment``
    (that version's source/discovery/profile_schema.json), and no ``supported_versions``."""
    base = _ucp_base(LEGACY_VERSION)
    capabilities: list[dict[str, Any]] = []
    for capability in _CAPABILITIES[LEGACY_VERSION]:
        spec, schema = _spec_and_schema(capability, LEGACY_VERSION)
        entry: dict[str, Any] = {
            "name": capability.name,
            "version": LEGACY_VERSION,
            "spec": spec,
            "schema": schema,
        }
        if capability.extends:
            entry["extends"] = capability.extends
        if capability.name == ORDER and order_config:
            entry["config"] = dict(order_config)
        capabilities.append(entry)
    return {
        "ucp": {
            "version": LEGACY_VERSION,
            # A platform has no endpoint of its own to bind: the service says which one we speak.
            "services": {
                SHOPPING_SERVICE: {"version": LEGACY_VERSION, "spec": f"{base}/specification/overview"}
            },
            "capabilities": capabilities,
        },
        "payment": {
            "handlers": [
                {
                    "id": handler.id,
                    "name": handler.name,
                    "version": handler.version,
                    "spec": handler.spec,
                    "config_schema": handler.schema,
                    "instrument_schemas": [
                        f"{base}/schemas/shopping/types/{kind}_payment_instrument.json"
                        for kind in handler.instrument_types
                    ],
                    "config": {},
                }
                for handler in handlers
            ]
        },
        "signing_keys": keys.published(),
    }
