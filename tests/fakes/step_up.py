"""In-memory fakes of the step-up ports: the code store (conditions as DynamoDB checks them) and a
text-message sender that keeps what it sent."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from cartpilot.approvals.step_up import CodeState, SendRefusal, SendRefused


class InMemoryStepUpStore:
    def __init__(self) -> None:
        self._states: dict[str, CodeState] = {}
        self._lock = threading.Lock()

    def state(self, approval_id: str) -> CodeState | None:
        with self._lock:
            return self._states.get(approval_id)

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
        with self._lock:
            current = self._states.get(approval_id) or CodeState(approvalId=approval_id)
            if current.attempts >= max_attempts:
                raise SendRefused(SendRefusal.LOCKED)
            if current.sends >= max_sends:
                raise SendRefused(SendRefusal.TOO_MANY)
            if current.sends and current.issuedAt > sent_before:
                raise SendRefused(SendRefusal.TOO_SOON)
            issued = current.model_copy(
                update={
                    "codeHash": code_hash,
                    "kid": kid,
                    "issuedAt": issued_at,
                    "expiresAt": expires_at,
                    "used": False,
                    "sends": current.sends + 1,
                }
            )
            self._states[approval_id] = issued
            return issued

    def use_code(self, approval_id: str, *, code_hash: str, now: int, max_attempts: int) -> bool:
        with self._lock:
            current = self._states.get(approval_id)
            if (
                current is None
                or current.codeHash != code_hash
                or current.used
                or current.expiresAt <= now
                or current.attempts >= max_attempts
            ):
                return False
            self._states[approval_id] = current.model_copy(update={"used": True})
            return True

    def use_totp_step(self, approval_id: str, *, step: int, max_attempts: int) -> bool:
        with self._lock:
            current = self._states.get(approval_id) or CodeState(approvalId=approval_id)
            if current.attempts >= max_attempts or (
                current.totpStep is not None and current.totpStep >= step
            ):
                return False
            self._states[approval_id] = current.model_copy(update={"totpStep": step})
            return True

    def count_failure(self, approval_id: str, *, max_attempts: int) -> int | None:
        with self._lock:
            current = self._states.get(approval_id) or CodeState(approvalId=approval_id)
            if current.attempts >= max_attempts:
                return None
            self._states[approval_id] = current.model_copy(update={"attempts": current.attempts + 1})
            return current.attempts + 1


@dataclass
class RecordingCodeSender:
    """What the shopper's phone would receive: (number, text) per message."""

    sent: list[tuple[str, str]] = field(default_factory=list)

    def send_code(self, phone: str, text: str) -> None:
        self.sent.append((phone, text))

    def last_code(self) -> str:
        return self.sent[-1][1][:6]
