"""Paying through the merchant's payment handlers: which one the brand can fund, and its credential.

overview.md, "Payment Architecture": the merchant advertises handlers; the platform executes one
handler's protocol with the payment credential provider to get an opaque credential (a token) and
hands that to the merchant at completion. The shopper's saved payment method id never goes to the
merchant as if it were a token.

A brand maps handler names to providers in ``brand.yaml`` (``paymentHandlers``); ``providers_for``
builds them, ``choose_handler`` picks the first handler the merchant lists that the brand can fund.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final

import httpx
from pydantic import SecretStr

from cartpilot import __version__
from cartpilot.brands.config import BrandConfig
from cartpilot.commerce.discovery import require_secure
from cartpilot.commerce.errors import MerchantRejected, MerchantUnavailable
from cartpilot.commerce.http import Timeouts, wire_idempotency_key
from cartpilot.commerce.ports import CredentialProvider, MerchantProfile, PaymentCredential, PaymentHandler

log = logging.getLogger("cartpilot.commerce.credentials")

SANDBOX_TOKENIZER: Final = "sandbox-tokenizer"


class SandboxTokenizer:
    """The sandbox merchant's tokenizer, spoken as a PSP's would be.

    ``POST {config.tokenization_url}`` with ``{"payment_method_id"}`` answers ``201 {"token",
    "expires_at", "card": {"brand", "last_digits"}}``. The request carries an ``Idempotency-Key``
    derived from the caller's, so the same key gives the same token and a retried completion sends
    the same body the first attempt sent. The provider also remembers the credentials it obtained,
    by key: a retry in the same warm container asks the tokenizer nothing.
    """

    MEMORY: Final = 256  # credentials remembered at most; the oldest go first

    def __init__(
        self,
        *,
        transport: httpx.BaseTransport | None = None,
        timeouts: Timeouts | None = None,
        attempts: int = 2,
    ) -> None:
        self._transport = transport
        self._timeouts = timeouts or Timeouts()
        self._attempts = max(1, attempts)
        self._issued: dict[str, PaymentCredential] = {}
        self._lock = threading.Lock()

    def can_fund(self, handler: PaymentHandler) -> bool:
        """Cards, through a tokenization URL we would send a payment method to: HTTPS (or loopback),
        judged at planning, so a handler we would refuse at payment is never chosen."""
        url = handler.config.get("tokenization_url")
        takes_cards = not handler.instrumentTypes or "card" in handler.instrumentTypes
        if not (isinstance(url, str) and url and takes_cards):
            return False
        try:
            require_secure(url, "tokenization URL")
        except MerchantRejected:
            return False
        return True

    def credential(
        self, handler: PaymentHandler, payment_method_id: str, idempotency_key: str
    ) -> PaymentCredential:
        if not self.can_fund(handler):
            raise MerchantRejected(
                f"handler {handler.name} ({handler.id}) gives no tokenization_url for cards",
                code="payment_handler_unsupported",
            )
        url = require_secure(str(handler.config["tokenization_url"]), "tokenization URL")
        remembered = self._remembered(f"{url} {idempotency_key}")
        if remembered is not None:
            return remembered
        answer = self._post(
            url, {"payment_method_id": payment_method_id}, wire_idempotency_key(idempotency_key)
        )
        token = answer.get("token")
        if not isinstance(token, str) or not token:
            raise MerchantRejected("the tokenizer answered without a token", code="tokenization_failed")
        card = answer.get("card") if isinstance(answer.get("card"), Mapping) else {}
        assert isinstance(card, Mapping)
        display = {key: str(card[key]) for key in ("brand", "last_digits") if isinstance(card.get(key), str)}
        expires = answer.get("expires_at")
        credential = PaymentCredential(
            handler=handler,
            instrumentType="card",
            token=SecretStr(token),
            expiresAt=expires if isinstance(expires, str) else None,
            display=display,
        )
        with self._lock:
            while len(self._issued) >= self.MEMORY:
                del self._issued[next(iter(self._issued))]
            self._issued[f"{url} {idempotency_key}"] = credential
        return credential

    def _remembered(self, memo: str) -> PaymentCredential | None:
        # Even once expired: a retried completion must send what the first attempt sent, so the
        # merchant replays its answer; a new token would be another body under the same key (409).
        with self._lock:
            return self._issued.get(memo)

    def _post(self, url: str, body: dict[str, Any], key: str) -> Mapping[str, Any]:
        headers = {
            "Idempotency-Key": key,
            "User-Agent": f"cartpilot/{__version__}",
            "Accept": "application/json",
        }
        last: Exception | None = None
        with httpx.Client(
            timeout=self._timeouts.for_httpx(), transport=self._transport, follow_redirects=False
        ) as client:
            for _ in range(self._attempts):
                try:
                    response = client.post(url, json=body, headers=headers)
                except httpx.TransportError as error:
                    # The same key makes a second try safe: the tokenizer answers with the same token.
                    last = MerchantUnavailable(f"tokenizer unreachable ({type(error).__name__})")
                    continue
                log.info("tokenizer POST -> %s", response.status_code)
                if response.status_code == 429 or response.status_code >= 500:
                    last = MerchantUnavailable(f"tokenizer answered {response.status_code}")
                    continue
                try:
                    answer = response.json()
                except ValueError:
                    answer = None
                if not 200 <= response.status_code < 300 or not isinstance(answer, Mapping):
                    raise MerchantRejected(
                        f"the tokenizer refused the saved payment method ({response.status_code})",
                        status_code=response.status_code,
                        code="tokenization_failed",
                    )
                return answer
        assert last is not None
        raise last


ProviderFactory = Callable[[], CredentialProvider]

# Provider names a brand.yaml may use under ``paymentHandlers``.
PROVIDERS: Final[Mapping[str, ProviderFactory]] = {SANDBOX_TOKENIZER: SandboxTokenizer}


def providers_for(
    brand: BrandConfig, registry: Mapping[str, ProviderFactory] = PROVIDERS
) -> dict[str, CredentialProvider]:
    """Handler name -> the provider that funds it, as the brand configures; one instance per provider."""
    built: dict[str, CredentialProvider] = {}
    providers: dict[str, CredentialProvider] = {}
    for handler_name, provider_name in brand.paymentHandlers.items():
        factory = registry.get(provider_name)
        if factory is None:
            known = ", ".join(sorted(registry))
            raise ValueError(
                f"brand {brand.name}: payment handler {handler_name} names provider {provider_name!r}; "
                f"CartPilot has {known}"
            )
        if provider_name not in built:
            built[provider_name] = factory()
        providers[handler_name] = built[provider_name]
    return providers


def choose_handler(
    profile: MerchantProfile, brand: BrandConfig, providers: Mapping[str, CredentialProvider] | None = None
) -> PaymentHandler:
    """The first handler the merchant advertises that the brand can fund; refused before approval otherwise."""
    funding = providers_for(brand) if providers is None else providers
    for handler in profile.paymentHandlers:
        provider = funding.get(handler.name)
        if provider is not None and provider.can_fund(handler):
            return handler
    offered = ", ".join(sorted({handler.name for handler in profile.paymentHandlers})) or "none"
    fundable = ", ".join(sorted(brand.paymentHandlers)) or "none"
    raise MerchantRejected(
        f"merchant {profile.merchantUrl} takes payment through {offered}; "
        f"brand {brand.name} can fund {fundable}: no payment handler in common",
        code="payment_handler_unsupported",
    )
