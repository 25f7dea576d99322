"""The validator's answer: may this plan run, and who must say yes first."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RiskTier(StrEnum):
    AUTO = "AUTO"
    APPROVAL = "APPROVAL"
    STRONG_APPROVAL = "STRONG_APPROVAL"
    DENY = "DENY"


_TIER_RANK = {RiskTier.AUTO: 0, RiskTier.APPROVAL: 1, RiskTier.STRONG_APPROVAL: 2, RiskTier.DENY: 3}


def stricter(a: RiskTier, b: RiskTier) -> RiskTier:
    return a if _TIER_RANK[a] >= _TIER_RANK[b] else b


class Finding(BaseModel):
    """One reason behind a verdict: which rule spoke, what it decided, and why in plain words."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    policyId: str
    tier: RiskTier
    message: str


# "planned-only": the plan was checked, but the brand's rollout lets nothing mutating run for it.
Route = Literal["deny", "approve", "auto", "planned-only"]


class Verdict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    planId: str
    planHash: str
    tier: RiskTier
    route: Route
    approver: Literal["user", "staff"] | None = None
    reasons: list[Finding] = Field(default_factory=list)
    checkedAt: str
    # The approval also needs a one-time code from the shopper (step-up verification).
    stepUp: bool = False

    @property
    def denied(self) -> bool:
        return self.tier is RiskTier.DENY


def route_for(tier: RiskTier) -> Route:
    if tier is RiskTier.DENY:
        return "deny"
    if tier is RiskTier.AUTO:
        return "auto"
    return "approve"
