"""StepUpStore: a code is used once, wrong codes never count past the limit, sends are bounded;
the same on the in-memory fake and on DynamoDB, including when callers race."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from cartpilot.approvals.step_up import CodeState, SendRefusal, SendRefused, StepUpStore
from tests.contract.conftest import _in_aws, _session, _table
from tests.contract.racing import race
from tests.fakes.step_up import InMemoryStepUpStore

NOW = 1_795_000_000
MAX_ATTEMPTS = 5


@dataclass
class StepUpBackend:
    store: StepUpStore
    another: Callable[[], StepUpStore]


@pytest.fixture(params=["fake", "dynamodb"])
def codes(request: pytest.FixtureRequest) -> StepUpBackend:
    if _in_aws(request) is None:
        fake = InMemoryStepUpStore()
        return StepUpBackend(store=fake, another=lambda: fake)
    from cartpilot.adapters.aws.step_up_table import DynamoDBStepUpStore

    return StepUpBackend(
        store=DynamoDBStepUpStore(_table("goals")), another=lambda: DynamoDBStepUpStore(_table("goals"))
    )


def issue(store: StepUpStore, code_hash: str = "h-1", *, at: int = NOW, approval: str = "a-1") -> CodeState:
    return store.issue(
        approval,
        code_hash=code_hash,
        kid="k1",
        issued_at=at,
        expires_at=at + 300,
        max_sends=3,
        sent_before=at - 30,
        max_attempts=MAX_ATTEMPTS,
    )


def test_an_issued_code_is_kept_as_its_hash_with_its_counters(codes: StepUpBackend):
    issued = issue(codes.store)
    assert issued == CodeState(
        approvalId="a-1", codeHash="h-1", kid="k1", issuedAt=NOW, expiresAt=NOW + 300, sends=1
    )
    assert codes.store.state("a-1") == issued
    assert codes.store.state("a-unknown") is None


def test_a_code_is_used_once_and_only_with_its_hash_before_it_expires(codes: StepUpBackend):
    issue(codes.store)
    use = codes.store.use_code
    assert not use("a-1", code_hash="h-other", now=NOW, max_attempts=MAX_ATTEMPTS)
    assert not use("a-1", code_hash="h-1", now=NOW + 300, max_attempts=MAX_ATTEMPTS)
    assert use("a-1", code_hash="h-1", now=NOW + 299, max_attempts=MAX_ATTEMPTS)
    assert not use("a-1", code_hash="h-1", now=NOW + 299, max_attempts=MAX_ATTEMPTS)
    assert not use("a-unknown", code_hash="h-1", now=NOW, max_attempts=MAX_ATTEMPTS)


def test_failures_count_up_to_the_limit_and_then_lock(codes: StepUpBackend):
    issue(codes.store)
    counts = [codes.store.count_failure("a-1", max_attempts=MAX_ATTEMPTS) for _ in range(MAX_ATTEMPTS + 1)]
    assert counts == [1, 2, 3, 4, 5, None]
    assert codes.store.state("a-1").locked
    assert not codes.store.use_code("a-1", code_hash="h-1", now=NOW, max_attempts=MAX_ATTEMPTS)
    assert not codes.store.use_totp_step("a-1", step=10, max_attempts=MAX_ATTEMPTS)
    with pytest.raises(SendRefused) as locked:
        issue(codes.store, "h-2", at=NOW + 60)
    assert locked.value.reason is SendRefusal.LOCKED


def test_sends_are_spaced_and_bounded_and_a_new_code_replaces_the_last(codes: StepUpBackend):
    issue(codes.store)
    with pytest.raises(SendRefused) as too_soon:
        issue(codes.store, "h-2", at=NOW + 29)
    assert too_soon.value.reason is SendRefusal.TOO_SOON
    issue(codes.store, "h-2", at=NOW + 30)
    assert not codes.store.use_code("a-1", code_hash="h-1", now=NOW + 31, max_attempts=MAX_ATTEMPTS)
    issue(codes.store, "h-3", at=NOW + 60)
    with pytest.raises(SendRefused) as too_many:
        issue(codes.store, "h-4", at=NOW + 120)
    assert too_many.value.reason is SendRefusal.TOO_MANY
    assert codes.store.state("a-1").codeHash == "h-3"


def test_an_authenticator_step_is_used_once_and_never_an_earlier_one(codes: StepUpBackend):
    assert codes.store.use_totp_step("a-1", step=100, max_attempts=MAX_ATTEMPTS)
    assert not codes.store.use_totp_step("a-1", step=100, max_attempts=MAX_ATTEMPTS)
    assert not codes.store.use_totp_step("a-1", step=99, max_attempts=MAX_ATTEMPTS)
    assert codes.store.use_totp_step("a-1", step=101, max_attempts=MAX_ATTEMPTS)


def test_racing_posts_of_one_code_use_it_once(codes: StepUpBackend):
    issue(codes.store)
    stores = [codes.another() for _ in range(6)]
    used = race([
        lambda s=s: s.use_code("a-1", code_hash="h-1", now=NOW + 1, max_attempts=MAX_ATTEMPTS) for s in stores
    ])  # fmt: skip
    assert used.count(True) == 1


def test_racing_wrong_codes_never_count_past_the_limit(codes: StepUpBackend):
    issue(codes.store)
    stores = [codes.another() for _ in range(8)]
    counts = race([lambda s=s: s.count_failure("a-1", max_attempts=MAX_ATTEMPTS) for s in stores])
    assert sorted(c for c in counts if c is not None) == [1, 2, 3, 4, 5]
    assert counts.count(None) == 3
    assert codes.store.state("a-1").attempts == MAX_ATTEMPTS


def test_sms_goes_to_the_phone_number_and_not_to_a_topic(aws):
    from moto.sns.models import sns_backends

    from cartpilot.adapters.aws.sms import SnsSmsSender
    from tests.contract.conftest import REGION

    SnsSmsSender(_session().client("sns")).send_code("+8613800138000", "123456 is your code")
    sent = list(sns_backends["123456789012"][REGION].sms_messages.values())
    assert sent == [("+8613800138000", "123456 is your code")]
