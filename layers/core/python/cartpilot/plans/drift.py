"""Price drift: has the merchant's price moved, since approval, beyond what the brand tolerates?

The plan's unit prices are the prices the approver agreed to (and the validator checked
against the merchant). Hours can pass between approval and execution, so before each
mutating step the executor reads the current prices again; a move beyond the brand's
``priceTolerancePercent``, in either direction, stops the flow so the shopper can be asked
again rather than charged an amount nobody agreed to. An item the merchant no longer sells,
or now prices in another currency, has drifted too.

One rule serves the price check before each step and the payment: ``within_tolerance``. Within
it the order proceeds at the merchant's price (the payment accepts the merchant's total and the
audit names both totals); beyond it the shopper is asked again (``PlanNeedsReapproval``: the flow
cancels the open session, plans and checks again).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cartpilot.commerce.errors import PlanNeedsReapproval
from cartpilot.commerce.ports import Catalog, ProductVariant
from cartpilot.kernel.money import Money
from cartpilot.plans.model import Plan


@dataclass(frozen=True)
class PriceDrift:
    item_id: str
    title: str
    approved: Money
    current: Money | None

    def describe(self) -> str:
        if self.current is None:
            return f"{self.title} is no longer sold"
        return f"{self.title} now costs {self.current.format()}, approved at {self.approved.format()}"

    def to_detail(self) -> dict[str, Any]:
        return {
            "itemId": self.item_id,
            "approved": self.approved.model_dump(mode="json"),
            "current": self.current.model_dump(mode="json") if self.current else None,
        }


def within_tolerance(approved: Money, current: Money, tolerance_percent: int) -> bool:
    """True when ``current`` is the approved price give or take the tolerance (of the approved price)."""
    if approved.currency != current.currency:
        return False
    allowed = approved.amount_minor * tolerance_percent // 100
    return abs(current.amount_minor - approved.amount_minor) <= allowed


def find_price_drifts(plan: Plan, current: list[ProductVariant], tolerance_percent: int) -> list[PriceDrift]:
    """Every plan item whose current price is beyond tolerance (pure: the prices are given)."""
    by_id = {variant.id: variant for variant in current}
    drifts: list[PriceDrift] = []
    for item in plan.summary.items:
        variant = by_id.get(item.itemId)
        if variant is None or not within_tolerance(item.unitPrice, variant.price, tolerance_percent):
            drifts.append(
                PriceDrift(
                    item_id=item.itemId,
                    title=item.title,
                    approved=item.unitPrice,
                    current=variant.price if variant else None,
                )
            )
    return drifts


def check_price_drift(plan: Plan, catalog: Catalog, *, tolerance_percent: int) -> list[ProductVariant]:
    """Reads the plan's items from the merchant (read-only) and returns them if every price holds.

    Raises ``PlanNeedsReapproval`` when any item drifted beyond ``tolerance_percent``.
    """
    item_ids = sorted({item.itemId for item in plan.summary.items})
    current = catalog.lookup(item_ids, plan.currency)
    drifts = find_price_drifts(plan, current, tolerance_percent)
    if drifts:
        raise PlanNeedsReapproval(
            "prices changed since approval: " + "; ".join(drift.describe() for drift in drifts),
            drifts=[drift.to_detail() for drift in drifts],
        )
    return current


@dataclass(frozen=True)
class AcceptedTotal:
    """The merchant asks a total other than the approved one, within tolerance: the order proceeds at it."""

    approved: Money
    charged: Money
    tolerance_percent: int

    def to_detail(self) -> dict[str, Any]:
        return {
            "approvedTotal": self.approved.model_dump(mode="json"),
            "merchantTotal": self.charged.model_dump(mode="json"),
            "tolerancePercent": self.tolerance_percent,
        }


def accept_merchant_total(approved: Money, current: Money, tolerance_percent: int) -> AcceptedTotal | None:
    """The drift rule at payment: None when the totals agree, the accepted move when it is within
    tolerance; ``PlanNeedsReapproval`` beyond it (or in another currency)."""
    if current == approved:
        return None
    if not within_tolerance(approved, current, tolerance_percent):
        raise PlanNeedsReapproval(
            f"the merchant now asks {current.format()}, approved at {approved.format()}",
            drifts=[{"total": True, "approved": approved.model_dump(mode="json"),
                     "current": current.model_dump(mode="json")}],
        )  # fmt: skip
    return AcceptedTotal(approved=approved, charged=current, tolerance_percent=tolerance_percent)
