"""One-time code state on DynamoDB: an item per approval in the goals table (``pk = STEPUP#<id>``).

Each change is one conditional ``UpdateItem``: DynamoDB evaluates the condition and writes the item
atomically, so two requests racing with one code cannot both use it and racing wrong codes never
count past the limit. The item holds hashes and counters, never a code.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from cartpilot.approvals.step_up import CodeState, SendRefusal, SendRefused


def _key(approval_id: str) -> dict[str, str]:
    return {"pk": f"STEPUP#{approval_id}"}


def _conditional_failure(exc: ClientError) -> bool:
    return bool(exc.response["Error"]["Code"] == "ConditionalCheckFailedException")


class DynamoDBStepUpStore:
    def __init__(self, table: Any) -> None:
        self._table = table

    def state(self, approval_id: str) -> CodeState | None:
        item = self._table.get_item(Key=_key(approval_id), ConsistentRead=True).get("Item")
        if not item:
            return None
        return CodeState(
            approvalId=approval_id,
            codeHash=item.get("codeHash"),
            kid=item.get("kid"),
            issuedAt=int(item.get("issuedAt", 0)),
            expiresAt=int(item.get("expiresAt", 0)),
            used=bool(item.get("used", False)),
            sends=int(item.get("sends", 0)),
            attempts=int(item.get("attempts", 0)),
            totpStep=int(item["totpStep"]) if "totpStep" in item else None,
        )

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
        try:
            self._table.update_item(
                Key=_key(approval_id),
                UpdateExpression=(
                    "SET codeHash = :hash, kid = :kid, issuedAt = :now, expiresAt = :expires, used = :no, "
                    "sends = if_not_exists(sends, :zero) + :one, attempts = if_not_exists(attempts, :zero)"
                ),
                ConditionExpression=(
                    "(attribute_not_exists(sends) OR (sends < :maxSends AND issuedAt <= :sentBefore)) "
                    "AND (attribute_not_exists(attempts) OR attempts < :maxAttempts)"
                ),
                ExpressionAttributeValues={
                    ":hash": code_hash,
                    ":kid": kid,
                    ":now": issued_at,
                    ":expires": expires_at,
                    ":no": False,
                    ":zero": 0,
                    ":one": 1,
                    ":maxSends": max_sends,
                    ":sentBefore": sent_before,
                    ":maxAttempts": max_attempts,
                },
            )
        except ClientError as exc:
            if not _conditional_failure(exc):
                raise
            current = self.state(approval_id)
            if current is not None and current.attempts >= max_attempts:
                raise SendRefused(SendRefusal.LOCKED) from exc
            if current is not None and current.sends >= max_sends:
                raise SendRefused(SendRefusal.TOO_MANY) from exc
            raise SendRefused(SendRefusal.TOO_SOON) from exc
        issued = self.state(approval_id)
        if issued is None:  # pragma: no cover - the write above created it
            raise LookupError(approval_id)
        return issued

    def use_code(self, approval_id: str, *, code_hash: str, now: int, max_attempts: int) -> bool:
        try:
            self._table.update_item(
                Key=_key(approval_id),
                UpdateExpression="SET used = :yes",
                ConditionExpression=(
                    "codeHash = :hash AND used = :no AND expiresAt > :now AND attempts < :maxAttempts"
                ),
                ExpressionAttributeValues={
                    ":hash": code_hash,
                    ":yes": True,
                    ":no": False,
                    ":now": now,
                    ":maxAttempts": max_attempts,
                },
            )
        except ClientError as exc:
            if _conditional_failure(exc):
                return False
            raise
        return True

    def use_totp_step(self, approval_id: str, *, step: int, max_attempts: int) -> bool:
        try:
            self._table.update_item(
                Key=_key(approval_id),
                UpdateExpression="SET totpStep = :step, attempts = if_not_exists(attempts, :zero)",
                ConditionExpression=(
                    "(attribute_not_exists(totpStep) OR totpStep < :step) "
                    "AND (attribute_not_exists(attempts) OR attempts < :maxAttempts)"
                ),
                ExpressionAttributeValues={":step": step, ":zero": 0, ":maxAttempts": max_attempts},
            )
        except ClientError as exc:
            if _conditional_failure(exc):
                return False
            raise
        return True

    def count_failure(self, approval_id: str, *, max_attempts: int) -> int | None:
        try:
            response = self._table.update_item(
                Key=_key(approval_id),
                UpdateExpression="SET attempts = if_not_exists(attempts, :zero) + :one",
                ConditionExpression="attribute_not_exists(attempts) OR attempts < :maxAttempts",
                ExpressionAttributeValues={":zero": 0, ":one": 1, ":maxAttempts": max_attempts},
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as exc:
            if _conditional_failure(exc):
                return None
            raise
        return int(response["Attributes"]["attempts"])
