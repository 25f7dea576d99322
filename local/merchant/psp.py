"""The sandbox's payment processor: it tokenises saved payment methods and redeems the tokens.

``POST /psp/tokens`` is served by the sandbox process as a PSP would serve it, outside UCP: a
platform exchanges a payment-method id for a single-use token that expires in 15 minutes
(tokenization-guide.md "Token Lifecycle", overview.md "Set reasonable credential expiration (e.g.,
15 minutes for tokens)"), and the merchant charges only such tokens. ``pm_declined`` tokenises, and
its charge is declined. An ``Idempotency-Key`` makes issuing repeatable: the same key with the same
payment method returns the token it issued the first time (another payment method under that key is
refused), so a platform that retries a completion sends the same body again.
"""

from __future__ import annotations

import re
import secrets
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

TOKEN_TTL = timedelta(minutes=15)
TOKEN_PREFIX = "sbxtok_"  # noqa: S105 - a prefix, not a secret
DECLINED_PAYMENT_METHOD = "pm_declined"
# Every well-formed test payment method exists at this PSP, as test cards do at real ones.
_PAYMENT_METHOD = re.compile(r"^pm_[a-z0-9_]{1,64}$")
_CARDS = (("visa", "4242"), ("mastercard", "4444"), ("amex", "0005"), ("unionpay", "8812"))


class UnknownPaymentMethod(Exception):
    pass


class TokenRefused(Exception):
    """A credential the PSP will not charge; the message is safe to show a shopper."""


@dataclass(frozen=True)
class IssuedToken:
    token: str
    payment_method_id: str
    brand: str
    last_digits: str
    expires_at: datetime
    checkout_id: str | None = None  # tokenization-guide.md "Binding"
    used_at: datetime | None = None

    @property
    def declines(self) -> bool:
        return self.payment_method_id == DECLINED_PAYMENT_METHOD


def card_for(payment_method_id: str) -> tuple[str, str]:
    """The test card behind a payment method: its brand and last four digits."""
    return next(((brand, last) for brand, last in _CARDS if brand in payment_method_id), _CARDS[0])


class TokenKeyReused(Exception):
    """The Idempotency-Key issued a token for another payment method or checkout."""


class TokenVault:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, IssuedToken] = {}
        self._by_key: dict[str, str] = {}

    def issue(
        self,
        payment_method_id: str,
        now: datetime,
        checkout_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> IssuedToken:
        if not _PAYMENT_METHOD.match(payment_method_id):
            raise UnknownPaymentMethod(payment_method_id)
        if idempotency_key is not None:
            with self._lock:
                earlier = self._tokens.get(self._by_key.get(idempotency_key, ""))
            if earlier is not None:
                if (earlier.payment_method_id, earlier.checkout_id) != (payment_method_id, checkout_id):
                    raise TokenKeyReused(idempotency_key)
                return earlier
        brand, last = card_for(payment_method_id)
        issued = IssuedToken(
            token=TOKEN_PREFIX + secrets.token_urlsafe(24),
            payment_method_id=payment_method_id,
            brand=brand,
            last_digits=last,
            expires_at=now + TOKEN_TTL,
            checkout_id=checkout_id,
        )
        with self._lock:
            self._tokens[issued.token] = issued
            if idempotency_key is not None:
                self._by_key[idempotency_key] = issued.token
        return issued

    def check(self, token: str, now: datetime, checkout_id: str) -> IssuedToken:
        """The token's record if it can be charged for ``checkout_id`` now; raises TokenRefused."""
        with self._lock:
            issued = self._tokens.get(token)
        if issued is None:
            raise TokenRefused("the payment credential is not a token issued by our payment processor")
        if issued.used_at is not None:
            raise TokenRefused("the payment token has already been used; request a new one")
        if now >= issued.expires_at:
            raise TokenRefused("the payment token has expired; request a new one")
        if issued.checkout_id is not None and issued.checkout_id != checkout_id:
            raise TokenRefused("the payment token is bound to another checkout")
        return issued

    def redeem(self, token: str, now: datetime, checkout_id: str) -> IssuedToken:
        """Marks the token used (charged or declined: single use either way)."""
        issued = self.check(token, now, checkout_id)
        used = replace(issued, used_at=now)
        with self._lock:
            self._tokens[token] = used
        return used

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()
            self._by_key.clear()
