"""The payment handlers the sandbox advertises, and which of them it can actually charge.

A merchant advertises several handlers; a platform picks one it can fund. The sandbox tokenizer is
the only one the sandbox charges (through its own PSP, ``POST /psp/tokens``); Google Pay and Shop
Pay are advertised as a real merchant would, so a platform that cannot fund them is noticed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from cartpilot_local.merchant.protocol import VENDOR_ORIGIN, JsonObject

SANDBOX_TOKENIZER = "com.cartpilot.sandbox_tokenizer"
GOOGLE_PAY = "com.google.pay"
SHOP_PAY = "dev.shopify.shop_pay"

ALL_PAYMENT_HANDLERS = (SANDBOX_TOKENIZER, GOOGLE_PAY, SHOP_PAY)
UNFUNDABLE_PAYMENT_HANDLERS = (GOOGLE_PAY, SHOP_PAY)


@dataclass(frozen=True)
class PaymentHandler:
    name: str
    id: str
    version: str
    spec: str
    schema: str
    config_schema: str
    instrument_schemas: tuple[str, ...]
    instruments: tuple[JsonObject, ...]
    chargeable: bool
    static_config: JsonObject = field(default_factory=dict)

    def config(self, base_url: str) -> JsonObject:
        if self.name == SANDBOX_TOKENIZER:
            return {"tokenization_url": f"{base_url.rstrip('/')}/psp/tokens"}
        return dict(self.static_config)


_CARD_INSTRUMENT = "https://ucp.dev/schemas/shopping/types/card_payment_instrument.json"

_CATALOGUE: dict[str, PaymentHandler] = {
    SANDBOX_TOKENIZER: PaymentHandler(
        name=SANDBOX_TOKENIZER,
        id="sandbox_tokenizer",
        version="2026-01-11",
        spec=f"{VENDOR_ORIGIN}/handlers/sandbox_tokenizer",
        schema=f"{VENDOR_ORIGIN}/handlers/sandbox_tokenizer/schema.json",
        config_schema=f"{VENDOR_ORIGIN}/handlers/sandbox_tokenizer/config.json",
        instrument_schemas=(_CARD_INSTRUMENT,),
        instruments=({"type": "card"},),
        chargeable=True,
    ),
    GOOGLE_PAY: PaymentHandler(
        name=GOOGLE_PAY,
        id="gpay",
        version="2024-12-03",
        spec="https://developers.google.com/merchant/ucp/guides/gpay-payment-handler",
        schema="https://pay.google.com/gp/p/ucp/2026-01-11/schemas/gpay_config.json",
        config_schema="https://pay.google.com/gp/p/ucp/2026-01-11/schemas/gpay_config.json",
        instrument_schemas=(
            "https://pay.google.com/gp/p/ucp/2026-01-11/schemas/gpay_card_payment_instrument.json",
        ),
        instruments=({"type": "card", "constraints": {"brands": ["visa", "mastercard"]}},),
        chargeable=False,
        static_config={
            "api_version": 2,
            "api_version_minor": 0,
            "environment": "TEST",
            "merchant_info": {"merchant_name": "Sandbox Outfitters", "merchant_id": "01234567890123456789"},
            "allowed_payment_methods": [
                {
                    "type": "CARD",
                    "parameters": {
                        "allowed_auth_methods": ["PAN_ONLY"],
                        "allowed_card_networks": ["VISA", "MASTERCARD"],
                    },
                    "tokenization_specification": {
                        "type": "PAYMENT_GATEWAY",
                        "parameters": {"gateway": "example", "gatewayMerchantId": "sandboxOutfitters"},
                    },
                }
            ],
        },
    ),
    SHOP_PAY: PaymentHandler(
        name=SHOP_PAY,
        id="shop_pay",
        version="2026-01-11",
        spec="https://shopify.dev/ucp/shop-pay-handler",
        schema="https://shopify.dev/ucp/schemas/shop-pay-config.json",
        config_schema="https://shopify.dev/ucp/schemas/shop-pay-config.json",
        instrument_schemas=("https://shopify.dev/ucp/schemas/shop-pay-instrument.json",),
        instruments=({"type": "shop_pay"},),
        chargeable=False,
        static_config={"shop_id": "sandbox-outfitters", "environment": "test"},
    ),
}


def advertised_handlers(names: Iterable[str]) -> tuple[PaymentHandler, ...]:
    """The handlers to advertise, in the order given; unknown names are a configuration error."""
    chosen = []
    for name in names:
        if name not in _CATALOGUE:
            known = ", ".join(ALL_PAYMENT_HANDLERS)
            raise ValueError(f"unknown payment handler {name!r}; the sandbox knows {known}")
        chosen.append(_CATALOGUE[name])
    if not chosen:
        raise ValueError("advertise at least one payment handler")
    return tuple(chosen)
