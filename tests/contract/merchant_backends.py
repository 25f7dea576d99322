"""The merchant port's backends for the contract suite: the in-memory fake, and the UCP adapter talking to
the sandbox merchant in each UCP version it speaks.

The catalogs differ (the fake sells ``sample_products()``, the sandbox its own shelf), so each backend
names the items a test buys; the ledger (charges and refunds) is read from each one's books. Each backend
also pays the way its merchant is paid: the fake through its own tokenizer, the sandbox through its PSP
(``POST /psp/tokens``), both behind the ``CredentialProvider`` port.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from cartpilot.commerce.credentials import SandboxTokenizer
from cartpilot.commerce.http import RetryPolicy, Timeouts
from cartpilot.commerce.ports import (
    Address,
    CredentialProvider,
    Merchant,
    Order,
    PaymentCredential,
    PaymentHandler,
    Recipient,
)
from cartpilot.commerce.ucp import UcpMerchant
from tests.fakes import FakeMerchant
from tests.fakes.merchant import SANDBOX_HANDLER
from tests.fakes.platform import LocalPlatform

RECIPIENT = Recipient(
    name="Li Wei",
    phone="+86 138 0000 0000",
    address=Address(line1="1 Chaoyang Road", city="Beijing", postalCode="100020", country="CN"),
)
SANDBOX_VERSIONS = ("2026-04-08", "2026-01-11")


@dataclass
class MerchantBackend:
    """The port, the ids a test buys in this backend's catalog, how it pays, and a view of its books."""

    merchant: Merchant
    credentials: CredentialProvider
    a_shoe_id: str  # a running shoe in stock
    gift_wrap_id: str
    search_text: str  # finds the shoe
    has_catalog: bool = True
    has_order_route: bool = True  # 2026-01-11 defines no GET /orders/{id}
    currency: str = "CNY"
    recipient: Recipient = RECIPIENT
    payment_method_id: str = "pm_contract_card"
    _keys: Iterator[int] = field(default_factory=itertools.count)

    def handler(self) -> PaymentHandler:
        return next(h for h in self.merchant.profile().paymentHandlers if h.name == SANDBOX_HANDLER.name)

    def credential(self, payment_method_id: str | None = None, key: str | None = None) -> PaymentCredential:
        """A token for the saved payment method, as the executor gets one before completing."""
        return self.credentials.credential(
            self.handler(), payment_method_id or self.payment_method_id, key or f"cred-{next(self._keys)}"
        )

    def pay(self, session_id: str, key: str, payment_method_id: str | None = None) -> Order:
        """Completes with a credential obtained under a key derived from the payment's (as the executor does)."""
        return self.merchant.payments.complete(
            session_id, self.credential(payment_method_id, f"{key}.credential"), key
        )

    def escalate_next_completion(self, continue_hint: str) -> None:
        raise NotImplementedError

    def charges(self) -> list[tuple[str, int]]:
        """(order id, amount in minor units) of every charge, oldest first."""
        raise NotImplementedError

    def refunds(self) -> list[tuple[str, int]]:
        """(order id, amount in minor units) of every refund, oldest first."""
        raise NotImplementedError

    def close(self) -> None:
        """Releases what the backend holds."""


class FakeMerchantBackend(MerchantBackend):
    def __init__(self) -> None:
        self.fake = FakeMerchant()
        super().__init__(
            merchant=self.fake,
            credentials=self.fake.credentials,
            a_shoe_id="shoe-a-42",
            gift_wrap_id="gift-wrap-standard",
            search_text="swift",
        )

    def escalate_next_completion(self, continue_hint: str) -> None:
        self.fake.shop.escalate_with = f"https://fake-merchant.example/checkout/{continue_hint}"

    def charges(self) -> list[tuple[str, int]]:
        return [(order_id, money.amount_minor) for order_id, money in self.fake.shop.charges]

    def refunds(self) -> list[tuple[str, int]]:
        return [(order_id, money.amount_minor) for order_id, money in self.fake.shop.refunds]


@dataclass
class ServedSandbox:
    """One sandbox merchant process-in-a-thread, speaking one UCP version, and the platform it trusts."""

    version: str
    url: str
    platform: LocalPlatform

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)


class SandboxMerchantBackend(MerchantBackend):
    """UcpMerchant over HTTP against the sandbox merchant (emptied first), in the sandbox's version."""

    def __init__(self, sandbox: ServedSandbox) -> None:
        self.sandbox = sandbox
        self._admin = sandbox.admin()
        self._admin.post("/_sandbox/reset").raise_for_status()
        self.ucp = UcpMerchant(
            sandbox.url,
            identity=sandbox.platform.identity(),
            timeouts=Timeouts(connect=2.0, read=5.0),
            retry=RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02),
        )
        super().__init__(
            merchant=self.ucp,
            credentials=SandboxTokenizer(),
            a_shoe_id="rs-stride-lite-black-42",
            gift_wrap_id="gift-wrap-standard",
            search_text="stride lite running shoe",
            has_catalog=sandbox.version == "2026-04-08",
            has_order_route=sandbox.version == "2026-04-08",
        )

    def escalate_next_completion(self, continue_hint: str) -> None:
        self._admin.post("/_sandbox/escalate", json={"times": 1}).raise_for_status()

    def _ledger(self) -> dict[str, Any]:
        response = self._admin.get("/_sandbox/ledger")
        response.raise_for_status()
        ledger: dict[str, Any] = response.json()
        return ledger

    def charges(self) -> list[tuple[str, int]]:
        return [(charge["order_id"], charge["amount"]) for charge in self._ledger()["charges"]]

    def refunds(self) -> list[tuple[str, int]]:
        return [(refund["order_id"], refund["amount"]) for refund in self._ledger()["refunds"]]

    def violations(self) -> list[Any]:
        """What the sandbox found in our messages that its version's schemas do not allow."""
        report: dict[str, Any] = self._admin.get("/_sandbox/conformance").json()
        return list(report["violations"])

    def close(self) -> None:
        self.ucp.close()
        self._admin.close()


@contextmanager
def served_sandbox(
    version: str, *, platform: LocalPlatform | None = None, clock: Callable[[], datetime] | None = None,
    **options: Any,
) -> Iterator[ServedSandbox]:  # fmt: skip
    """The sandbox merchant of ``version`` on loopback, checking every message against the version's
    schemas, fetching platform profiles from an in-memory ``LocalPlatform``; ``options`` go to
    ``create_app`` (``payment_handlers``, ``api_key``, ``catalog``)."""
    from cartpilot_local.merchant.app import create_app
    from cartpilot_local.merchant.state import MerchantState
    from cartpilot_local.servers import serve_in_thread

    platform = platform or LocalPlatform()
    app = create_app(
        MerchantState(clock=clock), ucp_version=version, profile_fetcher=platform.fetch, validate_schemas=True,
        **options,
    )  # fmt: skip
    server = serve_in_thread(app)
    try:
        yield ServedSandbox(version=version, url=server.url, platform=platform)
    finally:
        server.stop()
