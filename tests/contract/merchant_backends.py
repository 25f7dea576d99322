"""The merchant port's two backends for the contract suite: the in-memory fake and the UCP adapter.

The two catalogs differ (the fake sells ``sample_products()``, the sandbox its own shelf), so each
backend names the items a test buys; the ledger (charges and refunds) is read from each one's books.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from cartpilot.commerce.ports import Address, Merchant, Recipient
from cartpilot.commerce.ucp import UcpMerchant
from tests.fakes import FakeMerchant

RECIPIENT = Recipient(
    name="Li Wei",
    phone="+86 138 0000 0000",
    address=Address(line1="1 Chaoyang Road", city="Beijing", postalCode="100020", country="CN"),
)


@dataclass
class MerchantBackend:
    """The port, the ids a test buys in this backend's catalog, and a view of its books."""

    merchant: Merchant
    a_shoe_id: str  # a running shoe in stock
    gift_wrap_id: str
    search_text: str  # finds the shoe
    currency: str = "CNY"
    recipient: Recipient = RECIPIENT
    payment_method_id: str = "pm_contract_card"

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
            merchant=self.fake, a_shoe_id="shoe-a-42", gift_wrap_id="gift-wrap-standard", search_text="swift"
        )

    def charges(self) -> list[tuple[str, int]]:
        return [(order_id, money.amount_minor) for order_id, money in self.fake.shop.charges]

    def refunds(self) -> list[tuple[str, int]]:
        return [(order_id, money.amount_minor) for order_id, money in self.fake.shop.refunds]


class SandboxMerchantBackend(MerchantBackend):
    """UcpMerchant over HTTP against the sandbox merchant, emptied first."""

    def __init__(self, url: str) -> None:
        self._admin = httpx.Client(base_url=url, timeout=10)
        self._admin.post("/_sandbox/reset").raise_for_status()
        self.ucp = UcpMerchant.for_url(url)
        super().__init__(
            merchant=self.ucp,
            a_shoe_id="rs-stride-lite-black-42",
            gift_wrap_id="gift-wrap-standard",
            search_text="stride lite running shoe",
        )

    def _ledger(self) -> dict[str, Any]:
        response = self._admin.get("/_sandbox/ledger")
        response.raise_for_status()
        ledger: dict[str, Any] = response.json()
        return ledger

    def charges(self) -> list[tuple[str, int]]:
        return [(charge["order_id"], charge["amount"]) for charge in self._ledger()["charges"]]

    def refunds(self) -> list[tuple[str, int]]:
        return [(refund["order_id"], refund["amount"]) for refund in self._ledger()["refunds"]]

    def close(self) -> None:
        self.ucp.close()
        self._admin.close()
