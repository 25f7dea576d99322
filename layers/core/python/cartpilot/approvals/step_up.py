"""Step-up verification: a one-time code from the shopper as well as the approval.

The brand's policies say when a plan needs it (``ApproveWithoutCode`` forbidden; the verdict's
``stepUp``). The code is either sent by SMS to the shopper's verified phone when the approver
asks for it on the approval page (never when the page is opened: mail scanners open links), or
read from the authenticator app enrolled in the profile (TOTP, RFC 6238).

- An SMS code is six digits from ``secrets``, valid five minutes, used once. Only its keyed hash
  is stored (HMAC-SHA256 under the approval-link key ring's current key, bound to the approval
  id), never the code. A new code replaces the one outstanding; at most ``MAX_SENDS`` are sent
  per approval, at least ``RESEND_AFTER_SECONDS`` apart.
- A TOTP code is accepted within one step either side of now, and each step once.
- ``MAX_ATTEMPTS`` wrong codes lock the approval: no code, not even the right one, is accepted
  after that, and the desk ends the goal.

Every change to a code's state is a conditional write in the store, so two requests racing with
one code use it once, and racing wrong guesses never count past the limit.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

import pyotp
from pydantic import BaseModel, ConfigDict

from cartpilot.approvals.model import STEP_UP_LOCK
from cartpilot.brands.users import UserProfile
from cartpilot.kernel.clock import utc_now
from cartpilot.kernel.keyring import KeySource

__all__ = ["STEP_UP_LOCK", "CodeRefused", "CodeSender", "CodeState", "StepUp", "StepUpStore"]

CODE_DIGITS = 6
CODE_TTL_SECONDS = 300
MAX_ATTEMPTS = 5
MAX_SENDS = 3
RESEND_AFTER_SECONDS = 30


class CodeState(BaseModel):
    """What the store keeps about one approval's codes: hashes and counters, never a code."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    approvalId: str
    codeHash: str | None = None
    kid: str | None = None  # the key ring key the hash was made with
    issuedAt: int = 0  # epoch seconds
    expiresAt: int = 0
    used: bool = False
    sends: int = 0
    attempts: int = 0  # wrong codes so far
    totpStep: int | None = None  # the last authenticator step used

    @property
    def locked(self) -> bool:
        return self.attempts >= MAX_ATTEMPTS


class SendRefusal(StrEnum):
    LOCKED = "LOCKED"
    TOO_MANY = "TOO_MANY"
    TOO_SOON = "TOO_SOON"


class SendRefused(Exception):
    def __init__(self, reason: SendRefusal) -> None:
        super().__init__(reason.value)
        self.reason = reason


class StepUpStore(Protocol):
    """Code state per approval; every write is conditional (see the module's docstring)."""

    def state(self, approval_id: str) -> CodeState | None: ...

    def issue(
        self,
        approval_id: str,
        *,
        code_hash: str,
        kid: str,
        issued_at: int,
        expires_at: int,
        max_sends: int,
        sent_before: int,
        max_attempts: int,
    ) -> CodeState:
        """Makes ``code_hash`` the outstanding code (the previous one stops working) while fewer than
        ``max_sends`` were sent, the last at or before ``sent_before``, and fewer than
        ``max_attempts`` codes were wrong; ``SendRefused`` otherwise."""
        ...

    def use_code(self, approval_id: str, *, code_hash: str, now: int, max_attempts: int) -> bool:
        """Marks the outstanding code used if it is ``code_hash``, unused, unexpired and the approval
        is not locked; False (nothing changed) otherwise."""
        ...

    def use_totp_step(self, approval_id: str, *, step: int, max_attempts: int) -> bool:
        """Records ``step`` as used if it is later than any used before and the approval is not
        locked; False (nothing changed) otherwise."""
        ...

    def count_failure(self, approval_id: str, *, max_attempts: int) -> int | None:
        """One more wrong code: the count after it, or None when the approval was already locked."""
        ...


class CodeSender(Protocol):
    """Sends a text message to a phone (SNS SMS on AWS; the local stack's outbox)."""

    def send_code(self, phone: str, text: str) -> None: ...


class Failure(StrEnum):
    """Why a code was not accepted (for the audit; the approver reads one sentence for all)."""

    MISSING = "missing"
    WRONG = "wrong"
    EXPIRED = "expired"
    USED = "used"
    LOCKED = "locked"
    NOT_ENROLLED = "not-enrolled"


class CodeRefused(Exception):
    """The code was not accepted. ``locked_now``: this failure was the one that locked the approval."""

    def __init__(self, failure: Failure, *, attempts_left: int, locked_now: bool = False) -> None:
        super().__init__(failure.value)
        self.failure = failure
        self.attempts_left = attempts_left
        self.locked_now = locked_now

    @property
    def locked(self) -> bool:
        return self.failure is Failure.LOCKED


@dataclass(frozen=True)
class SentCode:
    expires_at: int
    sends_left: int


def hash_code(key: bytes, approval_id: str, code: str) -> str:
    """Keyed and bound to the approval: a stored hash is useless without the key and elsewhere."""
    return hmac.new(key, f"{approval_id}:{code}".encode(), hashlib.sha256).hexdigest()


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def code_message(code: str, goal_id: str, total: str) -> str:
    minutes = CODE_TTL_SECONDS // 60
    return (
        f"{code} is your CartPilot code to approve order {goal_id} ({total}). "
        f"It expires in {minutes} minutes. Never share it."
    )


def looks_like_code(otp: str | None) -> bool:
    return otp is not None and len(otp) == CODE_DIGITS and otp.isascii() and otp.isdigit()


def methods_of(profile: UserProfile) -> tuple[bool, bool]:
    """(can receive an SMS code, has an authenticator app)."""
    return profile.verification.verifiedPhone is not None, profile.verification.totpSecret is not None


class StepUp:
    """Sends and checks one-time codes for approvals that need them."""

    def __init__(
        self,
        *,
        store: StepUpStore,
        keys: KeySource,
        sender: CodeSender,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self._keys = keys
        self._sender = sender
        self._clock = clock

    def state(self, approval_id: str) -> CodeState | None:
        return self._store.state(approval_id)

    def send_code(self, approval_id: str, profile: UserProfile, *, goal_id: str, total: str) -> SentCode:
        """A fresh code to the shopper's verified phone. ``SendRefused`` when locked, or when too
        many were sent or the last one only just; ``LookupError`` when no phone is verified."""
        phone = profile.verification.verifiedPhone
        if phone is None:
            raise LookupError("no verified phone")
        now = self._now()
        keyring = self._keys.keyring()
        code = new_code()
        state = self._store.issue(
            approval_id,
            code_hash=hash_code(keyring.keys[keyring.current], approval_id, code),
            kid=keyring.current,
            issued_at=now,
            expires_at=now + CODE_TTL_SECONDS,
            max_sends=MAX_SENDS,
            sent_before=now - RESEND_AFTER_SECONDS,
            max_attempts=MAX_ATTEMPTS,
        )
        # Stored before it is sent: a code that arrives always works.
        self._sender.send_code(phone, code_message(code, goal_id, total))
        return SentCode(expires_at=state.expiresAt, sends_left=max(0, MAX_SENDS - state.sends))

    def verify(self, approval_id: str, profile: UserProfile, otp: str | None) -> None:
        """Accepts the code once, or raises ``CodeRefused`` (counting a wrong one)."""
        state = self._store.state(approval_id)
        if state is not None and state.locked:
            raise CodeRefused(Failure.LOCKED, attempts_left=0)
        if not otp:
            # Not a guess: nothing counted, but the audit hears of it.
            raise CodeRefused(Failure.MISSING, attempts_left=_left(state))
        sms, app = methods_of(profile)
        if not (sms or app):
            raise CodeRefused(Failure.NOT_ENROLLED, attempts_left=_left(state))
        failure = Failure.WRONG
        if looks_like_code(otp):
            if app and (outcome := self._try_totp(approval_id, profile, otp)) is not None:
                if outcome:
                    return
                failure = Failure.USED
            elif state is not None and state.codeHash is not None:
                if self._try_sms(state, otp):
                    return
                failure = self._why_not(self._store.state(approval_id) or state, otp)
        if failure is Failure.USED:
            # The right code, already spent (a repeated or parallel post of the approval that spent
            # it): not a guess, so it counts no attempt and can never lock an approval it approved.
            raise CodeRefused(failure, attempts_left=_left(self._store.state(approval_id)))
        count = self._store.count_failure(approval_id, max_attempts=MAX_ATTEMPTS)
        if count is None:
            raise CodeRefused(Failure.LOCKED, attempts_left=0)
        if count >= MAX_ATTEMPTS:
            raise CodeRefused(Failure.LOCKED, attempts_left=0, locked_now=True)
        raise CodeRefused(failure, attempts_left=MAX_ATTEMPTS - count)

    def _try_totp(self, approval_id: str, profile: UserProfile, otp: str) -> bool | None:
        """True: accepted; False: the right code of a step already used; None: not the app's code."""
        secret = profile.verification.totpSecret
        if secret is None:
            return None
        totp = pyotp.TOTP(secret)
        current = totp.timecode(self._clock())
        # One step either side of now: phones' clocks drift and people type slowly.
        for step in (current, current - 1, current + 1):
            if hmac.compare_digest(totp.generate_otp(step), otp):
                return self._store.use_totp_step(approval_id, step=step, max_attempts=MAX_ATTEMPTS)
        return None

    def _try_sms(self, state: CodeState, otp: str) -> bool:
        key = self._key(state.kid)
        if key is None or state.codeHash is None:
            return False
        return self._store.use_code(
            state.approvalId,
            code_hash=hash_code(key, state.approvalId, otp),
            now=self._now(),
            max_attempts=MAX_ATTEMPTS,
        )

    def _why_not(self, state: CodeState, otp: str) -> Failure:
        """For the audit: was it the outstanding code, used or too late, or simply wrong."""
        key = self._key(state.kid)
        if key is None or state.codeHash is None:
            return Failure.WRONG
        if not hmac.compare_digest(hash_code(key, state.approvalId, otp), state.codeHash):
            return Failure.WRONG
        if state.used:
            return Failure.USED
        return Failure.EXPIRED if state.expiresAt <= self._now() else Failure.WRONG

    def _key(self, kid: str | None) -> bytes | None:
        # A key dropped from the ring revokes the codes hashed with it.
        return self._keys.keyring().keys.get(kid) if kid else None

    def _now(self) -> int:
        return int(self._clock().timestamp())


def _left(state: CodeState | None) -> int:
    return MAX_ATTEMPTS - (state.attempts if state else 0)
