"""The plan: a concrete, inspectable list of steps a goal turns into.

A plan names exact items, prices, shipping, recipient and total. Its JSON Schema
is exported to ``schemas/plan.schema.json``; the tests fail when the two drift.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cartpilot.commerce.ports import Recipient
from cartpilot.kernel.money import Money
from cartpilot.release import RELEASE_ID_PATTERN


class Action(StrEnum):
    """The closed set of actions a plan may contain; each is served by one connector."""

    CHECKOUT_CREATE = "checkout.create"
    CHECKOUT_ADD_ITEMS = "checkout.add_items"
    FULFILLMENT_SELECT = "fulfillment.select"
    PAYMENT_COMPLETE = "payment.complete"


# Which connector function serves each action (the ASL dispatches on the same names).
CONNECTOR_FOR_ACTION: dict[Action, str] = {
    Action.CHECKOUT_CREATE: "checkout",
    Action.CHECKOUT_ADD_ITEMS: "checkout",
    Action.FULFILLMENT_SELECT: "fulfillment",
    Action.PAYMENT_COMPLETE: "payment",
}

# The only order in which steps may run: a session first, payment last.
ACTION_ORDER: tuple[Action, ...] = (
    Action.CHECKOUT_CREATE,
    Action.CHECKOUT_ADD_ITEMS,
    Action.FULFILLMENT_SELECT,
    Action.PAYMENT_COMPLETE,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class LineRef(_Strict):
    itemId: str = Field(min_length=1, max_length=80)
    quantity: int = Field(ge=1, le=20)


class CheckoutCreateArgs(_Strict):
    lines: list[LineRef] = Field(min_length=1, max_length=20)
    currency: str = Field(pattern=r"^[A-Z]{3}$")


class AddItemsArgs(_Strict):
    lines: list[LineRef] = Field(min_length=1, max_length=5)


class FulfillmentSelectArgs(_Strict):
    optionId: str = Field(min_length=1, max_length=80)
    recipientId: str = Field(min_length=1, max_length=80, description="Saved recipient id, or 'context'")


class PaymentCompleteArgs(_Strict):
    paymentMethodId: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    amount: Money


class _StepBase(_Strict):
    id: str = Field(pattern=r"^s[0-9]{1,2}$")
    mutates: bool = True
    requiresConfirmation: bool = False
    optional: bool = Field(default=False, description="An approver may drop this step before approving")
    permissions: list[str] = Field(default_factory=list)
    estimatedCost: Money
    justification: str = Field(min_length=1, max_length=300)


class CheckoutCreateStep(_StepBase):
    action: Literal[Action.CHECKOUT_CREATE] = Action.CHECKOUT_CREATE
    args: CheckoutCreateArgs


class AddItemsStep(_StepBase):
    action: Literal[Action.CHECKOUT_ADD_ITEMS] = Action.CHECKOUT_ADD_ITEMS
    args: AddItemsArgs


class FulfillmentSelectStep(_StepBase):
    action: Literal[Action.FULFILLMENT_SELECT] = Action.FULFILLMENT_SELECT
    args: FulfillmentSelectArgs


class PaymentCompleteStep(_StepBase):
    action: Literal[Action.PAYMENT_COMPLETE] = Action.PAYMENT_COMPLETE
    args: PaymentCompleteArgs


Step = Annotated[
    CheckoutCreateStep | AddItemsStep | FulfillmentSelectStep | PaymentCompleteStep,
    Field(discriminator="action"),
]


class PlanItem(_Strict):
    itemId: str
    productId: str
    title: str = Field(max_length=200)
    category: str
    quantity: int = Field(ge=1, le=20)
    unitPrice: Money
    size: str | None = None
    color: str | None = None
    imageUrl: str | None = None
    optional: bool = False


class ShippingChoice(_Strict):
    optionId: str
    title: str
    price: Money
    earliestDelivery: date | None = Field(default=None, description="None when the merchant gives no window")
    latestDelivery: date | None = Field(default=None, description="None when the merchant gives no window")

    def arrives_by(self, deadline: date) -> bool:
        """Only a promised window meets a deadline: an option without one never claims to."""
        return self.latestDelivery is not None and self.latestDelivery <= deadline


class MerchantTerms(_Strict):
    """The merchant a plan buys from and what discovery and negotiation settled with it."""

    id: str = Field(min_length=1, max_length=80, description="The merchant's id in brand.yaml")
    ucpVersion: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="The negotiated UCP version")
    paymentHandler: str = Field(min_length=1, max_length=200, description="The handler's reverse-domain name")
    paymentHandlerId: str = Field(
        min_length=1, max_length=200, description="The merchant's id for the handler"
    )
    undo: Literal["cancel", "none"] = Field(
        description="cancel: the merchant advertises order cancellation; none: it offers no cancel"
    )
    returns: bool = Field(
        default=False,
        description="The merchant advertises returns of shipped orders (com.cartpilot.order_return)",
    )


class PlanSummary(_Strict):
    items: list[PlanItem] = Field(min_length=1)
    shipping: ShippingChoice
    subtotal: Money
    tax: Money | None = Field(
        default=None, description="Tax the merchant's pricing session charged; None: it named none"
    )
    total: Money = Field(description="subtotal + shipping + tax")
    recipient: Recipient
    recipientId: str
    deliverBy: date | None = None
    budget: Money | None = None


class TokenUsage(_Strict):
    promptTokens: int = Field(ge=0)
    completionTokens: int = Field(ge=0)


class PlannerInfo(_Strict):
    kind: Literal["rules", "openai", "bedrock"]
    model: str | None = None
    promptVersion: str | None = None
    promptHash: str | None = None
    usage: TokenUsage | None = None
    estimatedCost: Money | None = Field(
        default=None, description="Model cost from the brand's price table, rounded up to the minor unit"
    )
    toolRounds: int | None = Field(default=None, ge=0, description="Model turns that called tools")
    repairRounds: int | None = Field(default=None, ge=0, description="Model turns spent fixing its draft")
    fallbackFrom: Literal["openai", "bedrock"] | None = Field(
        default=None, description="The model planner this plan stands in for"
    )
    fallbackReason: str | None = Field(default=None, max_length=300)
    adjustments: list[str] = Field(
        default_factory=list, description="What the planner's own checks changed in the model's draft"
    )
    lookups: list[str] = Field(default_factory=list, description="Read-only calls that grounded the plan")


class Plan(_Strict):
    planId: str = Field(pattern=r"^p-[a-z0-9\-]{4,64}$")
    goalId: str
    userId: str
    goal: str = Field(max_length=2000)
    brand: str
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    merchant: MerchantTerms
    planner: PlannerInfo
    steps: list[Step] = Field(min_length=1, max_length=10)
    summary: PlanSummary
    createdAt: str
    release: str | None = Field(
        default=None,
        pattern=RELEASE_ID_PATTERN,
        description="The release that made the plan (code, prompts, protocols, policies; "
        "`cartpilot release`); absent on plans made before releases were named",
    )

    def plan_hash(self) -> str:
        return hash_plan_document(self.model_dump(mode="json"))

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def execution_steps(self) -> list[dict[str, str]]:
        """The small step list the state machine loops over; args stay in DynamoDB."""
        return [{"id": step.id, "action": step.action.value} for step in self.steps if step.mutates]


def hash_plan_document(document: dict[str, Any]) -> str:
    """sha256 of the canonical JSON form: what an approval binds to."""
    if "release" in document and document["release"] is None:
        # A plan made before releases were named keeps the hash its approval and audit bound.
        document = {name: value for name, value in document.items() if name != "release"}
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def plan_json_schema() -> dict[str, Any]:
    return Plan.model_json_schema(mode="validation")


def write_plan_schema(path: Path) -> None:
    path.write_text(json.dumps(plan_json_schema(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
