"""Standing mandates: the model, its signature, its AP2 export and the check of an occurrence's plan."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from cartpilot.brands.config import BrandConfig
from cartpilot.brands.users import UserDirectory
from cartpilot.kernel.money import Money
from cartpilot.plans.mandate_budget import MandateBudgetExhausted
from cartpilot.plans.mandate_check import MandateGuard, mandate_findings
from cartpilot.plans.verdicts import RiskTier, Verdict, route_for
from cartpilot.schedules.ap2 import (
    MandateTokenInvalid,
    export_open_mandate,
    mandate_from_claims,
    recurrence_of,
    verify_open_mandate,
)
from cartpilot.schedules.mandate import (
    Mandate,
    MandateNotAllowed,
    check_mandate_for_brand,
    sign_mandate,
    verify_signed_mandate,
)
from cartpilot.schedules.model import ScheduleRecord
from tests.fakes import FakeMerchant
from tests.fakes.plan_signing import LocalPlanSigner
from tests.unit.stages import fake_ledger, socks_plan

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def cny(minor: int) -> dict[str, Any]:
    return {"amount_minor": minor, "currency": "CNY"}


def mandate(**extra: Any) -> Mandate:
    return Mandate.model_validate({"maxPerOccurrence": cny(10000), "maxTotal": cny(30000), **extra})


# --- the model ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"maxPerOccurrence": cny(10000)},
        {"maxPerOccurrence": cny(0), "maxTotal": cny(100)},
        {"maxPerOccurrence": cny(-5), "maxTotal": cny(100)},
        {"maxPerOccurrence": cny(500), "maxTotal": cny(100)},
        {"maxPerOccurrence": cny(100), "maxTotal": {"amount_minor": 500, "currency": "USD"}},
        {"maxPerOccurrence": cny(100), "maxTotal": cny(10**15)},
        {"maxPerOccurrence": cny(100), "maxTotal": cny(500), "merchants": []},
        {"maxPerOccurrence": cny(100), "maxTotal": cny(500), "merchants": ["a-b"] * 2},
        {"maxPerOccurrence": cny(100), "maxTotal": cny(500), "merchants": ["Not An Id"]},
        {"maxPerOccurrence": cny(100), "maxTotal": cny(500), "categories": [f"c{i}" for i in range(21)]},
        {"maxPerOccurrence": cny(100), "maxTotal": cny(500), "categories": ["!!!"]},
        {"maxPerOccurrence": cny(100), "maxTotal": cny(500), "executionWindow": {}},
        {
            "maxPerOccurrence": cny(100),
            "maxTotal": cny(500),
            "executionWindow": {"notBefore": "2026-01-01T00:00:00"},
        },
        {
            "maxPerOccurrence": cny(100),
            "maxTotal": cny(500),
            "executionWindow": {"notBefore": "2026-02-01T00:00:00Z", "notAfter": "2026-01-01T00:00:00Z"},
        },
        {"maxPerOccurrence": cny(100), "maxTotal": cny(500), "surprise": True},
    ],
)
def test_a_malformed_mandate_is_refused(body: dict[str, Any]):
    with pytest.raises(ValidationError):
        Mandate.model_validate(body)


def test_a_mandate_the_brand_cannot_honour_is_refused(brand: BrandConfig):
    check_mandate_for_brand(mandate(merchants=["sandbox-merchant"]), brand)
    usd = Money(amount_minor=100, currency="USD")
    check_mandate_for_brand(Mandate(maxPerOccurrence=usd, maxTotal=usd), brand)  # the brand has a USD rate
    eur = Money(amount_minor=100, currency="EUR")
    with pytest.raises(MandateNotAllowed, match="EUR"):
        check_mandate_for_brand(Mandate(maxPerOccurrence=eur, maxTotal=eur), brand)
    with pytest.raises(MandateNotAllowed, match="other-shop"):
        check_mandate_for_brand(mandate(merchants=["other-shop"]), brand)


# --- signature ----------------------------------------------------------------------------------------


def test_a_signed_mandate_verifies_and_any_change_breaks_it():
    signer = LocalPlanSigner()
    signed = sign_mandate(
        mandate(categories=["socks"]), schedule_id="s-1", user_id="user-1", client_id="assistant",
        signer=signer, signed_at=NOW,
    )  # fmt: skip
    verifier = signer.verifier()
    assert verify_signed_mandate(signed, verifier)
    richer = signed.mandate.model_copy(update={"maxTotal": Money(amount_minor=99999, currency="CNY")})
    for tampered in (
        signed.model_copy(update={"mandate": richer}),
        signed.model_copy(update={"mandate": signed.mandate.model_copy(update={"categories": None})}),
        signed.model_copy(update={"scheduleId": "s-2"}),
        signed.model_copy(update={"userId": "user-2"}),
        signed.model_copy(update={"clientId": "partner"}),
        signed.model_copy(update={"signedAt": NOW + timedelta(days=1)}),
    ):
        assert not verify_signed_mandate(tampered, verifier)
    # A key that was never published vouches for nothing.
    assert not verify_signed_mandate(signed, LocalPlanSigner().verifier())


def test_a_signature_survives_a_key_rotation():
    signer = LocalPlanSigner()
    signed = sign_mandate(
        mandate(), schedule_id="s-1", user_id="user-1", client_id="assistant", signer=signer, signed_at=NOW
    )
    signer.rotate()
    signer.sign(b"the new key is published")
    assert verify_signed_mandate(signed, signer.verifier())


# --- AP2 export ---------------------------------------------------------------------------------------


def test_the_exported_open_mandate_verifies_and_discloses_the_mandate(brand: BrandConfig):
    signer = LocalPlanSigner()
    original = mandate(
        merchants=["sandbox-merchant"],
        categories=["socks", "running"],
        executionWindow={"notBefore": "2026-01-01T00:00:00Z", "notAfter": "2027-01-01T00:00:00Z"},
        description="running socks every month",
    )
    signed = sign_mandate(
        original, schedule_id="s-1", user_id="user-1", client_id="assistant", signer=signer, signed_at=NOW
    )
    token = export_open_mandate(signed, brand, signer, recurrence=recurrence_of("MONTHLY", 12))
    claims = verify_open_mandate(token, signer.registry.all())
    assert mandate_from_claims(claims) == original
    payment, checkout = claims["delegate_payload"]
    assert payment["vct"] == "mandate.payment.open.1"
    assert checkout["vct"] == "mandate.checkout.open.1"
    assert {"type": "payment.agent_recurrence", "frequency": "MONTHLY", "max_occurrences": 12} in payment[
        "constraints"
    ]
    assert claims["mandate_ref"]["schedule_id"] == "s-1"
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "ES256", "typ": "dc+sd-jwt"}
    # Each allowed merchant and category is its own disclosure: the issuer-signed part lists digests.
    assert token.count("~") == 1 + 2 + 2 + 1 + 1  # two delegates, two payee copies, two categories


def test_a_tampered_or_foreign_token_does_not_verify(brand: BrandConfig):
    signer = LocalPlanSigner()
    signed = sign_mandate(
        mandate(), schedule_id="s-1", user_id="user-1", client_id="assistant", signer=signer, signed_at=NOW
    )
    token = export_open_mandate(signed, brand, signer)
    jwt, *disclosures = token.split("~")
    header, payload, signature = jwt.split(".")
    forged = ".".join((header, payload[:-4] + ("AAAA" if payload[-4:] != "AAAA" else "BBBB"), signature))
    with pytest.raises(MandateTokenInvalid):
        verify_open_mandate("~".join((forged, *disclosures)), signer.registry.all())
    with pytest.raises(MandateTokenInvalid):
        verify_open_mandate(token, LocalPlanSigner().registry.all())


# --- the check of an occurrence -----------------------------------------------------------------------


def test_a_plan_within_the_mandate_has_no_findings(
    merchant: FakeMerchant, brand: BrandConfig, users: UserDirectory
):
    plan = socks_plan(merchant, brand, users)  # 59.00 CNY of socks from the default merchant
    within = mandate(merchants=[plan.merchant.id], categories=["sock"])
    assert mandate_findings(plan, within, brand, now=NOW) == []


def test_each_constraint_outside_the_mandate_asks_for_approval(
    merchant: FakeMerchant, brand: BrandConfig, users: UserDirectory
):
    plan = socks_plan(merchant, brand, users)
    outside = Mandate.model_validate(
        {
            "maxPerOccurrence": cny(5000),
            "maxTotal": cny(30000),
            "merchants": ["another-shop"],
            "categories": ["coffee"],
            "executionWindow": {"notAfter": "2026-06-01T00:00:00Z"},
        }
    )
    findings = mandate_findings(plan, outside, brand, now=NOW)
    assert {finding.policyId for finding in findings} == {
        "mandate.per-occurrence", "mandate.merchant", "mandate.category", "mandate.window",
    }  # fmt: skip
    assert all(finding.tier is RiskTier.APPROVAL for finding in findings)


class MemoryBudget:
    """What ``DynamoDBMandateBudget`` keeps, in memory (its conditions are tested against moto)."""

    def __init__(self) -> None:
        self.holds: dict[str, tuple[str, Money]] = {}

    def spent(self, schedule_id: str, currency: str) -> Money:
        total = sum(a.amount_minor for s, a in self.holds.values() if s == schedule_id)
        return Money(amount_minor=total, currency=currency)

    def reserve(self, schedule_id: str, goal_id: str, amount: Money, max_total: Money) -> bool:
        if self.holds.get(goal_id) == (schedule_id, amount):
            return False
        others = sum(a.amount_minor for g, (s, a) in self.holds.items() if s == schedule_id and g != goal_id)
        if others + amount.amount_minor > max_total.amount_minor:
            raise MandateBudgetExhausted("no room")
        self.holds[goal_id] = (schedule_id, amount)
        return True

    def release(self, goal_id: str) -> bool:
        return self.holds.pop(goal_id, None) is not None


class Schedules:
    def __init__(self, record: ScheduleRecord) -> None:
        self.record = record

    def get(self, schedule_id: str) -> ScheduleRecord | None:
        return self.record if schedule_id == self.record.scheduleId else None


def _record(signed: Any) -> ScheduleRecord:
    return ScheduleRecord.model_validate(
        {
            "scheduleId": "s-1", "brand": "sandbox", "clientId": "assistant", "userId": "user-1",
            "goal": "running socks", "context": {}, "definition": {"at": "2026-12-01T09:00:00Z"},
            "signedMandate": signed.model_dump(mode="json"), "status": "SCHEDULED", "requestHash": "h",
            "createdAt": "2026-11-30T00:00:00Z", "updatedAt": "2026-11-30T00:00:00Z",
        }
    )  # fmt: skip


def _auto(plan: Any) -> Verdict:
    return Verdict(
        planId=plan.planId, planHash=plan.plan_hash(), tier=RiskTier.AUTO, route=route_for(RiskTier.AUTO),
        checkedAt=NOW.isoformat(),
    )  # fmt: skip


def test_the_budget_is_held_per_occurrence_until_the_next_one_must_ask(
    merchant: FakeMerchant, brand: BrandConfig, users: UserDirectory
):
    signer = LocalPlanSigner()
    standing = mandate(maxPerOccurrence=cny(6000), maxTotal=cny(12000))  # two pairs of socks
    signed = sign_mandate(
        standing, schedule_id="s-1", user_id="user-1", client_id="assistant", signer=signer, signed_at=NOW
    )
    budget = MemoryBudget()
    guard = MandateGuard(
        schedules=Schedules(_record(signed)), budget=budget, verifier=signer.verifier, brand=brand,
        clock=lambda: NOW,
    )  # fmt: skip
    ledger = fake_ledger()
    tiers = []
    for goal_id in ("g-first", "g-second", "g-third"):
        plan = socks_plan(merchant, brand, users, goal_id=goal_id)
        verdict = guard.judge(goal_id, "user-1", "s-1", plan, _auto(plan), ledger=ledger)
        tiers.append(verdict.tier)
    assert tiers == [RiskTier.AUTO, RiskTier.AUTO, RiskTier.APPROVAL]
    assert "budget" in verdict.reasons[-1].message and verdict.reasons[-1].policyId == "mandate.budget"
    # A re-validated occurrence does not take its own room twice; a released one gives it back.
    plan = socks_plan(merchant, brand, users, goal_id="g-first")
    assert guard.judge("g-first", "user-1", "s-1", plan, _auto(plan), ledger=ledger).tier is RiskTier.AUTO
    budget.release("g-first")
    plan = socks_plan(merchant, brand, users, goal_id="g-third")
    assert guard.judge("g-third", "user-1", "s-1", plan, _auto(plan), ledger=ledger).tier is RiskTier.AUTO


def test_a_tampered_mandate_blocks_the_occurrence(
    merchant: FakeMerchant, brand: BrandConfig, users: UserDirectory
):
    signer = LocalPlanSigner()
    signed = sign_mandate(
        mandate(), schedule_id="s-1", user_id="user-1", client_id="assistant", signer=signer, signed_at=NOW
    )
    richer = signed.model_copy(
        update={
            "mandate": signed.mandate.model_copy(
                update={"maxPerOccurrence": Money(amount_minor=30000, currency="CNY")}
            )
        }
    )
    budget = MemoryBudget()
    guard = MandateGuard(
        schedules=Schedules(_record(richer)), budget=budget, verifier=signer.verifier, brand=brand,
        clock=lambda: NOW,
    )  # fmt: skip
    plan = socks_plan(merchant, brand, users)
    verdict = guard.judge("g-test", "user-1", "s-1", plan, _auto(plan), ledger=fake_ledger())
    assert verdict.tier is RiskTier.DENY and verdict.route == "deny"
    assert [reason.policyId for reason in verdict.reasons] == ["mandate.signature"]
    assert budget.holds == {}


def test_an_occurrence_of_another_users_schedule_is_never_auto(
    merchant: FakeMerchant, brand: BrandConfig, users: UserDirectory
):
    signer = LocalPlanSigner()
    signed = sign_mandate(
        mandate(), schedule_id="s-1", user_id="user-1", client_id="assistant", signer=signer, signed_at=NOW
    )
    guard = MandateGuard(
        schedules=Schedules(_record(signed)), budget=MemoryBudget(), verifier=signer.verifier, brand=brand,
        clock=lambda: NOW,
    )  # fmt: skip
    plan = socks_plan(merchant, brand, users)
    verdict = guard.judge("g-test", "user-2", "s-1", plan, _auto(plan), ledger=fake_ledger())
    assert verdict.tier is RiskTier.APPROVAL
    denied = _auto(plan).model_copy(update={"tier": RiskTier.DENY, "route": "deny"})
    # The mandate never makes a verdict more lenient.
    assert guard.judge("g-test", "user-1", "s-1", plan, denied, ledger=fake_ledger()).tier is RiskTier.DENY


def test_the_validator_reads_the_published_keys_and_schedules_but_cannot_sign_or_publish():
    from infra.function_specs import FUNCTIONS
    from infra.permissions import Resource, allows, statements_for

    validator = statements_for(next(spec for spec in FUNCTIONS if spec.name == "validator"))
    assert allows(validator, "s3:GetObjectVersion", Resource.PLAN_KEYS)
    assert allows(validator, "s3:ListBucketVersions", Resource.PLAN_KEYS)
    assert not allows(validator, "s3:PutObject", Resource.PLAN_KEYS)
    assert not allows(validator, "kms:Sign", Resource.PLAN_SIGNING_KEY)
    assert allows(validator, "dynamodb:GetItem", Resource.SCHEDULES_TABLE)
    assert not allows(validator, "dynamodb:UpdateItem", Resource.SCHEDULES_TABLE)
