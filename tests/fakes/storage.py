"""In-memory stores behind the same ports as the DynamoDB adapters (goals, audit, approvals, counters).

Each keeps the adapter's promises: conditional writes become checks under a lock, records are
copied in and out (nothing shared with the caller), and the contract suite runs against both.
"""

from __future__ import annotations

import copy
import json
import threading
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from cartpilot.approvals.model import AlreadyDecided, Approval, ApprovalStatus, Delivery, DroppedStep
from cartpilot.approvals.ports import ApprovalAlreadyExists
from cartpilot.audit.chain import AuditRecord
from cartpilot.audit.ports import AuditSlotTaken
from cartpilot.brands.activity import WINDOW_HOURS, DailyLimits, LimitReached, RecentActivity
from cartpilot.goals.lifecycle import InvalidTransition, may_move
from cartpilot.goals.model import GoalRecord, GoalStatus, StepResult
from cartpilot.goals.parts import (
    PART_OF,
    REF_ATTRIBUTES,
    STEP_PART,
    STEP_REFS,
    STEPS_FIELD,
    digest,
    encode_body,
    fields_of,
    part_key,
    plain,
    record_fields,
    ref_attribute,
    split_fields,
)
from cartpilot.goals.ports import (
    AuditHead,
    GoalAlreadyExists,
    GoalNotFound,
    GoalPartConflict,
    GoalPartMissing,
    GoalPosition,
    SubmissionClaim,
)
from cartpilot.kernel.money import Money
from tests.fakes.notices import InMemoryNoticeOutbox


def _stored(value: Any) -> Any:
    """What storage keeps of a field: plain JSON-like data, never the caller's object."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_stored(item) for item in value]
    if isinstance(value, GoalStatus):
        return value.value
    return copy.deepcopy(value)


class InMemoryGoalStore:
    """Goals as the table keeps them: a small head per goal and write-once parts (``goals.parts``).

    ``notices`` is the outbox kept on these goals, as the DynamoDB outbox is on the goals table: a
    status update given a ``notice`` queues it there under the same lock."""

    def __init__(self) -> None:
        self.notices = InMemoryNoticeOutbox()
        self._items: dict[str, dict[str, Any]] = {}
        self._parts: dict[str, dict[str, Any]] = {}
        self._claims: dict[str, SubmissionClaim] = {}
        self._lock = threading.RLock()

    def _put_part(self, goal_id: str, part: str, body: dict[str, Any]) -> str:
        part_digest = digest(body)
        key = part_key(goal_id, part, part_digest)
        stored = self._parts.setdefault(key, copy.deepcopy(body))
        if encode_body(stored) != encode_body(body):
            raise GoalPartConflict(f"goal {goal_id}: part {part}#{part_digest} holds other content")
        return part_digest

    def _split_into(self, goal_id: str, head: dict[str, Any], fields: dict[str, Any]) -> None:
        """Writes ``fields`` as the adapter does: parts first, then the head's fields and references."""
        head_fields, parts, steps = split_fields(fields)
        for name, value in head_fields.items():
            head[name] = _stored(value)
        for part, given in parts.items():
            current = self._assemble(goal_id, head) if set(given) != set(fields_of(part)) else {}
            body = {name: given[name] if name in given else current.get(name) for name in fields_of(part)}
            if all(value is None for value in body.values()):
                head.pop(ref_attribute(part), None)
            else:
                head[ref_attribute(part)] = self._put_part(goal_id, part, body)
        if steps is not None:
            head[STEP_REFS] = [
                [step["stepId"], self._put_part(goal_id, STEP_PART, step)] for step in plain(steps)
            ]

    def _assemble(self, goal_id: str, head: dict[str, Any]) -> dict[str, Any]:
        record = {name: copy.deepcopy(value) for name, value in head.items() if name not in REF_ATTRIBUTES}
        keys = [
            part_key(goal_id, part, head[ref_attribute(part)])
            for part in set(PART_OF.values())
            if head.get(ref_attribute(part))
        ]
        step_keys = [part_key(goal_id, STEP_PART, ref) for _, ref in head.get(STEP_REFS, [])]
        if any(key not in self._parts for key in [*keys, *step_keys]):
            raise GoalPartMissing(f"goal {goal_id}: a stored part is gone")
        for key in keys:
            record.update(copy.deepcopy(self._parts[key]))
        record[STEPS_FIELD] = [copy.deepcopy(self._parts[key]) for key in step_keys]
        return record

    def create(self, record: GoalRecord) -> None:
        with self._lock:
            if record.goalId in self._items:
                raise GoalAlreadyExists(record.goalId)
            head: dict[str, Any] = {}
            self._split_into(record.goalId, head, record_fields(record))
            self._items[record.goalId] = head

    def claim_submission(self, key: str, goal_id: str, request_hash: str) -> SubmissionClaim:
        with self._lock:
            return self._claims.setdefault(key, SubmissionClaim(goalId=goal_id, requestHash=request_hash))

    def goal_ids(self) -> list[str]:
        """For tests: every stored goal's id, in the order they were created."""
        with self._lock:
            return list(self._items)

    def get(self, goal_id: str) -> GoalRecord | None:
        with self._lock:
            head = self._items.get(goal_id)
            return GoalRecord.model_validate(self._assemble(goal_id, head)) if head is not None else None

    def position(self, goal_id: str) -> GoalPosition | None:
        with self._lock:
            head = self._items.get(goal_id)
            if head is None:
                return None
            return GoalPosition(status=GoalStatus(head["status"]), auditSeq=head.get("auditSeq"))

    def require(self, goal_id: str) -> GoalRecord:
        record = self.get(goal_id)
        if record is None:
            raise GoalNotFound(goal_id)
        return record

    def update(
        self,
        goal_id: str,
        *,
        status: GoalStatus | None = None,
        updated_at: str,
        condition_plan_hash: str | None = None,
        audit: AuditHead | None = None,
        notice: str | None = None,
        **fields: Any,
    ) -> None:
        with self._lock:
            item = self._items.get(goal_id)
            if item is None:
                raise GoalNotFound(goal_id)
            current = GoalStatus(item["status"])
            allowed = status is None or may_move(current, status)
            if not allowed or (
                condition_plan_hash is not None and item.get("planHash") != condition_plan_hash
            ):
                raise InvalidTransition(
                    f"goal {goal_id} is {current.value}; cannot move to {status.value if status else '-'}"
                )
            self._split_into(goal_id, item, fields)
            item["updatedAt"] = updated_at
            if status is not None:
                item["status"] = status.value
            if audit is not None:
                self.advance_audit_head(goal_id, seq=audit.seq, head=audit.hash)
            if notice is not None:
                self.notices.queue(goal_id, notice)  # told already: stays told

    def append_step(
        self, goal_id: str, result: StepResult, updated_at: str, *, audit: AuditHead | None = None
    ) -> None:
        with self._lock:
            record = self.require(goal_id)
            if record.steps and record.steps[-1] == result:
                # The same result, already last: a redelivery writes nothing but a newer chain head.
                if audit is not None:
                    self.advance_audit_head(goal_id, seq=audit.seq, head=audit.hash)
                return
            steps = [step for step in record.steps if step.stepId != result.stepId] + [result]
            self.update(goal_id, updated_at=updated_at, audit=audit, steps=steps)

    def advance_audit_head(self, goal_id: str, *, seq: int, head: str) -> None:
        with self._lock:
            item = self._items.get(goal_id)
            if item is None or (item.get("auditSeq") is not None and item["auditSeq"] >= seq):
                return
            item["auditHead"], item["auditSeq"] = head, seq

    def undo_token(self, goal_id: str) -> str | None:
        with self._lock:
            head = self._items.get(goal_id)
            token = self._assemble(goal_id, head).get("undoToken") if head is not None else None
            return str(token) if token else None

    def claim_undo(self, goal_id: str, requested_at: str) -> bool:
        with self._lock:
            item = self._items.get(goal_id)
            if item is None or item.get("undoRequestedAt") is not None:
                return False
            item["undoRequestedAt"] = requested_at
            return True

    def release_undo_claim(self, goal_id: str) -> None:
        with self._lock:
            self._items.get(goal_id, {}).pop("undoRequestedAt", None)

    def claim_return_settlement(self, goal_id: str, settled_at: str) -> bool:
        with self._lock:
            item = self._items.get(goal_id)
            if item is None or item.get("returnSettledAt") is not None:
                return False
            item["returnSettledAt"] = settled_at
            return True

    def release_return_settlement(self, goal_id: str) -> None:
        with self._lock:
            self._items.get(goal_id, {}).pop("returnSettledAt", None)

    # For tests: what an attacker with write access to the table could do.
    def overwrite(self, goal_id: str, **fields: Any) -> None:
        """Sets fields past every rule; a large field's part is rewritten in place, under its key."""
        with self._lock:
            head = self._items[goal_id]
            head_fields, parts, steps = split_fields(fields)
            head.update({name: _stored(value) for name, value in head_fields.items()})
            for part, given in parts.items():
                ref = head.get(ref_attribute(part))
                if ref is None:
                    self._split_into(goal_id, head, given)
                    continue
                key = part_key(goal_id, part, ref)
                self._parts[key] = {**self._parts.get(key, {}), **copy.deepcopy(given)}
            if steps is not None:
                self._split_into(goal_id, head, {STEPS_FIELD: steps})

    def drop_part(self, goal_id: str, field: str) -> None:
        """For tests: loses the part that holds ``field`` (a step's result: ``steps``, the first)."""
        with self._lock:
            head = self._items[goal_id]
            if field == STEPS_FIELD:
                self._parts.pop(part_key(goal_id, STEP_PART, head[STEP_REFS][0][1]))
            else:
                part = PART_OF[field]
                self._parts.pop(part_key(goal_id, part, head[ref_attribute(part)]))

    def head_size(self, goal_id: str) -> int:
        """For tests: the head's size as DynamoDB counts it, near enough (names plus values as text)."""

        def size(value: Any) -> int:
            if isinstance(value, list):
                return 3 + sum(1 + size(item) for item in value)
            if isinstance(value, dict):
                return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
            return len(str(value).encode())

        with self._lock:
            return sum(len(name.encode()) + size(value) for name, value in self._items[goal_id].items())

    def part_count(self, goal_id: str) -> int:
        """For tests: how many parts are stored for the goal (orphans included)."""
        with self._lock:
            return sum(1 for key in self._parts if key.startswith(part_key(goal_id, "", "")[:-1]))


def _stored_record(record: AuditRecord) -> AuditRecord:
    """As the audit table keeps it: the detail as JSON text, so a copy (and never a non-JSON value)."""
    return AuditRecord.model_validate(
        {
            **record.model_dump(mode="json", exclude={"detail"}),
            "detail": json.loads(json.dumps(record.detail)),
        }
    )


class InMemoryAuditRecords:
    def __init__(self) -> None:
        self._records: dict[tuple[str, int], AuditRecord] = {}
        self._lock = threading.Lock()

    def latest(self, goal_id: str) -> AuditRecord | None:
        with self._lock:
            seqs = [seq for (gid, seq) in self._records if gid == goal_id]
            return self._records[(goal_id, max(seqs))].model_copy(deep=True) if seqs else None

    def insert(self, record: AuditRecord) -> None:
        stored = _stored_record(record)
        with self._lock:
            key = (record.goalId, record.seq)
            if key in self._records:
                raise AuditSlotTaken(f"{record.goalId}#{record.seq}")
            self._records[key] = stored

    def all(self, goal_id: str) -> list[AuditRecord]:
        with self._lock:
            keys = sorted(k for k in self._records if k[0] == goal_id)
            return [self._records[key].model_copy(deep=True) for key in keys]

    # For tests: rewriting history behind the trail's back.
    def replace(self, record: AuditRecord) -> None:
        with self._lock:
            self._records[(record.goalId, record.seq)] = _stored_record(record)

    def delete(self, goal_id: str, seq: int) -> None:
        with self._lock:
            del self._records[(goal_id, seq)]


class InMemoryApprovalStore:
    def __init__(self) -> None:
        self._items: dict[str, tuple[str, str]] = {}  # approvalId -> (approval JSON, task token)
        self._lock = threading.Lock()

    def create(self, approval: Approval, task_token: str) -> None:
        with self._lock:
            if approval.approvalId in self._items:
                raise ApprovalAlreadyExists(approval.approvalId)
            self._items[approval.approvalId] = (approval.model_dump_json(), task_token)

    def get(self, approval_id: str) -> Approval | None:
        with self._lock:
            item = self._items.get(approval_id)
            return Approval.model_validate_json(item[0]) if item else None

    def task_token(self, approval_id: str) -> str:
        with self._lock:
            return self._items[approval_id][1]

    def decide(
        self,
        approval_id: str,
        status: ApprovalStatus,
        *,
        decided_at: str,
        decided_by: str,
        approved_plan_hash: str | None = None,
        dropped: list[DroppedStep] | None = None,
    ) -> Approval:
        with self._lock:
            item = self._items.get(approval_id)
            if item is None:
                raise LookupError(approval_id)
            current = Approval.model_validate_json(item[0])
            if current.status is not ApprovalStatus.PENDING:
                raise AlreadyDecided(current)
            decided = current.model_copy(
                update={
                    "status": status,
                    "decidedAt": decided_at,
                    "decidedBy": decided_by,
                    "approvedPlanHash": approved_plan_hash,
                    "dropped": dropped or [],
                    "delivery": Delivery.PENDING,
                }
            )
            self._items[approval_id] = (decided.model_dump_json(), item[1])
            return decided

    def mark_delivered(self, approval_id: str, *, delivered_at: str) -> bool:
        with self._lock:
            item = self._items.get(approval_id)
            if item is None:
                return False
            current = Approval.model_validate_json(item[0])
            if not current.undelivered:
                return False
            delivered = current.model_copy(
                update={"delivery": Delivery.DELIVERED, "deliveredAt": delivered_at}
            )
            self._items[approval_id] = (delivered.model_dump_json(), item[1])
            return True

    def undelivered(self, *, decided_before: str) -> list[str]:
        with self._lock:
            waiting = [Approval.model_validate_json(doc) for doc, _ in self._items.values()]
        due = [
            a for a in waiting if a.undelivered and a.decidedAt is not None and a.decidedAt < decided_before
        ]
        return [a.approvalId for a in sorted(due, key=lambda a: a.decidedAt or "")]

    def mark_expired(self, approval_id: str, *, decided_at: str) -> bool:
        with self._lock:
            item = self._items.get(approval_id)
            if item is None:
                return False
            current = Approval.model_validate_json(item[0])
            if current.delivery is Delivery.DELIVERED:
                return False
            expired = current.model_copy(update={"status": ApprovalStatus.EXPIRED, "decidedAt": decided_at})
            self._items[approval_id] = (expired.model_dump_json(), item[1])
            return True


class InMemoryOrderCounters:
    """Reservations and orders per goal, with the DynamoDB adapter's window and rules, under one lock."""

    def __init__(self) -> None:
        # goalId -> (user, hour the reservation counts in, amount, state: held | confirmed | released)
        self._holds: dict[str, tuple[str, datetime, Money, str]] = {}
        self._lock = threading.Lock()

    def reserve(
        self, goal_id: str, user_id: str, amount: Money, limits: DailyLimits, *, now: datetime
    ) -> bool:
        with self._lock:
            hold = self._holds.get(goal_id)
            if hold is not None and hold[3] == "confirmed":
                return False
            held = hold if hold is not None and hold[3] == "held" else None
            if held is not None and held[2] == amount:
                return False
            if held is not None and amount.amount_minor < held[2].amount_minor:
                self._holds[goal_id] = (user_id, held[1], amount, "held")
                return True
            others = self._sum(user_id, now, excluding=goal_id)
            spend = others.spend_minor.get(amount.currency, 0) + amount.amount_minor
            if others.orders + 1 > limits.max_orders or spend > limits.max_spend.amount_minor:
                raise LimitReached("no room for this order in the last 24 hours")
            self._holds[goal_id] = (user_id, now, amount, "held")
            return True

    def release(self, goal_id: str, *, at: datetime) -> bool:
        with self._lock:
            hold = self._holds.get(goal_id)
            if hold is None or hold[3] == "released":
                return False
            self._holds[goal_id] = (*hold[:3], "released")
            return True

    def record_order(self, goal_id: str, user_id: str, total: Money, *, at: datetime) -> bool:
        with self._lock:
            hold = self._holds.get(goal_id)
            if hold is not None and hold[3] == "confirmed":
                return False
            counted_at = hold[1] if hold is not None and hold[3] == "held" else at
            self._holds[goal_id] = (user_id, counted_at, total, "confirmed")
            return True

    def recent_activity(self, user_id: str, *, now: datetime, excluding: str | None = None) -> RecentActivity:
        with self._lock:
            return self._sum(user_id, now, excluding=excluding)

    def _sum(self, user_id: str, now: datetime, *, excluding: str | None) -> RecentActivity:
        # The same window as the DynamoDB buckets: this UTC hour and the 23 before it.
        start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=WINDOW_HOURS - 1)
        orders = 0
        spend: dict[str, int] = {}
        for goal_id, (user, at, total, state) in self._holds.items():
            if goal_id == excluding or user != user_id or state == "released":
                continue
            if start <= at < start + timedelta(hours=WINDOW_HOURS):
                orders += 1
                spend[total.currency] = spend.get(total.currency, 0) + total.amount_minor
        return RecentActivity(orders=orders, spend_minor=spend)


class StaleApprovals:
    """The approval store, answering the first read with a copy taken before a racing decision."""

    def __init__(self, inner: InMemoryApprovalStore, stale: Approval) -> None:
        self._inner = inner
        self._stale: Approval | None = stale

    def get(self, approval_id: str) -> Approval | None:
        if self._stale is not None:
            stale, self._stale = self._stale, None
            return stale
        return self._inner.get(approval_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
