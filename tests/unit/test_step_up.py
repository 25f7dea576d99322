"""One-time codes for step-up approvals: sent hashed, used once, five minutes, five attempts, then locked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from cartpilot.approvals.step_up import (
    CODE_TTL_SECONDS,
    MAX_ATTEMPTS,
    MAX_SENDS,
    RESEND_AFTER_SECONDS,
    CodeRefused,
    Failure,
    SendRefusal,
    SendRefused,
    StepUp,
    hash_code,
)
from cartpilot.brands.config import load_brand
from cartpilot.brands.users import UserProfile, directory_for
from tests.fakes.services import StaticKeySource
from tests.fakes.step_up import InMemoryStepUpStore, RecordingCodeSender

START = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
APPROVAL = "a-step-up"


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> InMemoryStepUpStore:
    return InMemoryStepUpStore()


@pytest.fixture
def phone() -> RecordingCodeSender:
    return RecordingCodeSender()


@pytest.fixture
def keys() -> StaticKeySource:
    return StaticKeySource()


@pytest.fixture
def step_up(store, phone, keys, clock) -> StepUp:
    return StepUp(store=store, keys=keys, sender=phone, clock=clock)


def profile(user_id: str) -> UserProfile:
    found = directory_for(load_brand("sandbox")).get(user_id)
    assert found is not None
    return found


def send(step_up: StepUp, user: str = "user-1") -> str:
    step_up.send_code(APPROVAL, profile(user), goal_id="g-1", total="2,499.00 CNY")
    sent: RecordingCodeSender = step_up._sender  # type: ignore[assignment]
    return sent.last_code()


def refusal(step_up: StepUp, otp: str | None, user: str = "user-1") -> CodeRefused:
    with pytest.raises(CodeRefused) as refused:
        step_up.verify(APPROVAL, profile(user), otp)
    return refused.value


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_the_code_goes_to_the_verified_phone_and_only_its_keyed_hash_is_stored(step_up, store, phone, keys):
    code = send(step_up)
    number, text = phone.sent[0]
    assert number == "+8613800138000"
    assert code.isdigit() and len(code) == 6 and code in text and "g-1" in text
    state = store.state(APPROVAL)
    keyring = keys.keyring()
    assert state is not None and code not in state.model_dump_json()
    assert state.codeHash == hash_code(keyring.keys[keyring.current], APPROVAL, code)
    assert state.expiresAt - state.issuedAt == CODE_TTL_SECONDS


def test_the_right_code_is_accepted_once(step_up):
    code = send(step_up)
    step_up.verify(APPROVAL, profile("user-1"), code)
    again = refusal(step_up, code)
    # The right code again is no guess: refused as used, and no attempt is counted.
    assert again.failure is Failure.USED and again.attempts_left == MAX_ATTEMPTS
    for _ in range(MAX_ATTEMPTS + 1):
        assert not refusal(step_up, code).locked


def test_a_code_expires_after_five_minutes(step_up, clock):
    code = send(step_up)
    clock.advance(CODE_TTL_SECONDS)
    assert refusal(step_up, code).failure is Failure.EXPIRED


def test_a_code_works_until_just_before_it_expires(step_up, clock):
    code = send(step_up)
    clock.advance(CODE_TTL_SECONDS - 1)
    step_up.verify(APPROVAL, profile("user-1"), code)


def test_no_code_is_refused_without_counting_as_a_guess(step_up, store):
    send(step_up)
    assert refusal(step_up, None).failure is Failure.MISSING
    assert refusal(step_up, "").failure is Failure.MISSING
    assert store.state(APPROVAL).attempts == 0


def test_five_wrong_codes_lock_and_then_even_the_right_one_is_refused(step_up):
    code = send(step_up)
    lefts = [refusal(step_up, wrong(code)) for _ in range(MAX_ATTEMPTS)]
    assert [r.attempts_left for r in lefts[:-1]] == [4, 3, 2, 1]
    assert lefts[-1].failure is Failure.LOCKED and lefts[-1].locked_now
    after = refusal(step_up, code)
    assert after.failure is Failure.LOCKED and not after.locked_now


@pytest.mark.parametrize("typed", ["12345", "1234567", "abcdef", "１２３４５６", "12 345"])
def test_anything_but_six_ascii_digits_counts_as_a_wrong_code(step_up, store, typed):
    send(step_up)
    assert refusal(step_up, typed).failure is Failure.WRONG
    assert store.state(APPROVAL).attempts == 1


def test_a_new_code_replaces_the_old_one(step_up, clock):
    first = send(step_up)
    clock.advance(RESEND_AFTER_SECONDS)
    second = send(step_up)
    if first != second:
        assert refusal(step_up, first).failure is Failure.WRONG
    step_up.verify(APPROVAL, profile("user-1"), second)


def test_codes_are_sent_at_most_three_times_and_not_twice_in_half_a_minute(step_up, clock, phone):
    send(step_up)
    with pytest.raises(SendRefused) as too_soon:
        send(step_up)
    assert too_soon.value.reason is SendRefusal.TOO_SOON
    for _ in range(MAX_SENDS - 1):
        clock.advance(RESEND_AFTER_SECONDS)
        send(step_up)
    clock.advance(RESEND_AFTER_SECONDS)
    with pytest.raises(SendRefused) as too_many:
        send(step_up)
    assert too_many.value.reason is SendRefusal.TOO_MANY
    assert len(phone.sent) == MAX_SENDS


def test_a_locked_approval_sends_no_more_codes(step_up, clock, phone):
    code = send(step_up)
    for _ in range(MAX_ATTEMPTS):
        refusal(step_up, wrong(code))
    clock.advance(RESEND_AFTER_SECONDS)
    with pytest.raises(SendRefused) as locked:
        send(step_up)
    assert locked.value.reason is SendRefusal.LOCKED and len(phone.sent) == 1


def test_a_dropped_link_key_revokes_the_codes_hashed_with_it(step_up, keys):
    code = send(step_up)
    keys.rotate("k2")
    keys.secret["keys"].pop("k1")
    assert refusal(step_up, code).failure is Failure.WRONG


def test_a_profile_without_a_phone_gets_no_sms(step_up):
    without = profile("user-1").model_copy(update={"verification": profile("user-1").verification.model_copy(
        update={"verifiedPhone": None})})  # fmt: skip
    with pytest.raises(LookupError):
        step_up.send_code(APPROVAL, without, goal_id="g-1", total="1 CNY")
    with pytest.raises(CodeRefused) as refused:
        step_up.verify(APPROVAL, without, "123456")
    assert refused.value.failure is Failure.NOT_ENROLLED


# ---- Authenticator apps (TOTP) ------------------------------------------------------------------


def totp_now(clock: Clock, offset_steps: int = 0) -> str:
    secret = profile("user-5").verification.totpSecret
    assert secret is not None
    return pyotp.TOTP(secret).at(clock(), counter_offset=offset_steps)


def test_the_authenticator_code_is_accepted_without_any_sms(step_up, clock, phone):
    step_up.verify(APPROVAL, profile("user-5"), totp_now(clock))
    assert phone.sent == []


def test_an_authenticator_code_is_single_use_within_its_step(step_up, clock):
    code = totp_now(clock)
    step_up.verify(APPROVAL, profile("user-5"), code)
    assert refusal(step_up, code, user="user-5").failure is Failure.USED


def test_the_previous_step_is_still_accepted_but_not_one_from_long_ago(step_up, clock):
    step_up.verify(APPROVAL, profile("user-5"), totp_now(clock, -1))
    assert refusal(step_up, totp_now(clock, -3), user="user-5").failure is Failure.WRONG


def test_a_user_without_an_app_cannot_use_someone_elses_authenticator_code(step_up, clock):
    send(step_up)
    assert refusal(step_up, totp_now(clock)).failure in (Failure.WRONG,)
