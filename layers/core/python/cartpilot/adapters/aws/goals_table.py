"""The goals table on DynamoDB (single-table, ``pk``): goals, approvals, submission claims and order links.

A goal is a small head item (``GOAL#<id>``: status, timestamps, owner, the audit chain head, and a
reference to each part) and write-once parts (``GOALPART#<id>#<part>#<digest>``: the request, the
plan, the verdict, each step's result, ...; ``cartpilot.goals.parts``). The head is updated often
(every audit record moves its chain head) and stays under 1 KB, so each such update costs one write
unit; a part is written once, before the head refers to it, with ``attribute_not_exists`` (an
UpdateItem, so every function that updates goals may write parts without PutItem). Reads assemble
the head and its parts with one BatchGetItem. A head written before parts existed keeps its fields
inline and is read as it is; the next write of such a field moves it into a part.

Structured fields are stored as JSON strings so numbers keep their exact integer form (the DynamoDB
resource would otherwise hand back Decimals).
"""

from __future__ import annotations

import json
import time
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel

from cartpilot.adapters.aws.notices_table import due_notice_clauses, notice_told
from cartpilot.goals.lifecycle import ALLOWED_FROM, InvalidTransition
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

# Head fields stored as JSON text, and fields a head written before parts existed keeps inline.
_JSON_FIELDS = ("approval", "refund", "context", "plan", "verdict", "steps", "receipt", "priceCheck")
_BATCH_GET_LIMIT = 100
_UNPROCESSED_RETRIES = 6


def _goal_key(goal_id: str) -> dict[str, str]:
    return {"pk": f"GOAL#{goal_id}"}


def _encode(fields: dict[str, Any]) -> dict[str, Any]:
    encoded: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        elif isinstance(value, list):
            value = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
        if name in _JSON_FIELDS and value is not None:
            value = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
        elif isinstance(value, GoalStatus):
            value = value.value
        encoded[name] = value
    return encoded


def _decode_head(item: dict[str, Any]) -> dict[str, Any]:
    decoded = {name: value for name, value in item.items() if name not in REF_ATTRIBUTES and name != "pk"}
    for name in _JSON_FIELDS:
        if isinstance(decoded.get(name), str):
            decoded[name] = json.loads(decoded[name])
    if decoded.get("auditSeq") is not None:
        decoded["auditSeq"] = int(decoded["auditSeq"])
    return decoded


def _conditional_failed(exc: ClientError) -> bool:
    return bool(exc.response["Error"]["Code"] == "ConditionalCheckFailedException")


class DynamoDBGoalStore:
    def __init__(self, table: Any) -> None:
        self._table = table

    @property
    def table_name(self) -> str:
        return str(self._table.name)

    # -- parts ---------------------------------------------------------------------------------

    def _put_part(self, goal_id: str, part: str, body: dict[str, Any]) -> str:
        """Writes ``body`` once under its digest; the same content written again changes nothing."""
        part_digest = digest(body)
        key = part_key(goal_id, part, part_digest)
        text = encode_body(body)
        try:
            self._table.update_item(
                Key={"pk": key},
                UpdateExpression="SET goalId = :goal, #part = :part, body = :body",
                ConditionExpression="attribute_not_exists(pk)",
                ExpressionAttributeNames={"#part": "part"},
                ExpressionAttributeValues={":goal": goal_id, ":part": part, ":body": text},
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            stored = self._table.get_item(Key={"pk": key}, ConsistentRead=True).get("Item") or {}
            if stored.get("body") != text:
                raise GoalPartConflict(
                    f"goal {goal_id}: part {part}#{part_digest} holds other content"
                ) from exc
        return part_digest

    def _read_parts(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """Part key -> its body, for every key stored (one BatchGetItem per hundred keys).

        The resource's client: it takes and returns plain Python values, as the table does."""
        client = self._table.meta.client
        found: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _BATCH_GET_LIMIT):
            request: dict[str, Any] = {
                self._table.name: {
                    "Keys": [{"pk": key} for key in unique[start : start + _BATCH_GET_LIMIT]],
                    "ConsistentRead": True,
                    "ProjectionExpression": "pk, body",
                }
            }
            for attempt in range(_UNPROCESSED_RETRIES + 1):
                response = client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self._table.name, []):
                    found[str(item["pk"])] = json.loads(str(item["body"]))
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                if attempt == _UNPROCESSED_RETRIES:
                    raise RuntimeError("DynamoDB left goal parts unread after retries")
                # Unprocessed keys mean the table is throttling: back off before asking again.
                time.sleep(0.05 * 2**attempt)
        return found

    def _assemble(self, goal_id: str, item: dict[str, Any]) -> dict[str, Any]:
        """The head's fields with each referenced part's fields in place."""
        record = _decode_head(item)
        wanted: dict[str, str] = {}
        for part in set(PART_OF.values()):
            ref = item.get(ref_attribute(part))
            if ref:
                wanted[part] = part_key(goal_id, part, str(ref))
        step_refs = [(str(step_id), str(ref)) for step_id, ref in item.get(STEP_REFS) or []]
        step_keys = [part_key(goal_id, STEP_PART, ref) for _, ref in step_refs]
        bodies = self._read_parts([*wanted.values(), *step_keys])
        missing = [key for key in [*wanted.values(), *step_keys] if key not in bodies]
        if missing:
            raise GoalPartMissing(f"goal {goal_id}: {len(missing)} stored part(s) are gone")
        for key in wanted.values():
            record.update(bodies[key])
        if STEP_REFS in item:
            record[STEPS_FIELD] = [bodies[key] for key in step_keys]
        return record

    # -- the port ------------------------------------------------------------------------------

    def create(self, record: GoalRecord) -> None:
        fields = record_fields(record)
        fields.pop("goalId")
        head_fields, parts, steps = split_fields(fields)
        item = {**_goal_key(record.goalId), "goalId": record.goalId, **_encode(head_fields)}
        for part, given in parts.items():
            body = {name: given.get(name) for name in fields_of(part)}
            item[ref_attribute(part)] = self._put_part(record.goalId, part, body)
        if steps:
            item[STEP_REFS] = [
                [step["stepId"], self._put_part(record.goalId, STEP_PART, step)] for step in steps
            ]
        try:
            self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if _conditional_failed(exc):
                raise GoalAlreadyExists(record.goalId) from exc
            raise

    def claim_submission(self, key: str, goal_id: str, request_hash: str) -> SubmissionClaim:
        item = {"pk": f"SUBMISSION#{key}", "goalId": goal_id, "requestHash": request_hash}
        try:
            self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            earlier = self._table.get_item(Key={"pk": item["pk"]}, ConsistentRead=True)["Item"]
            return SubmissionClaim(goalId=str(earlier["goalId"]), requestHash=str(earlier["requestHash"]))
        return SubmissionClaim(goalId=goal_id, requestHash=request_hash)

    def _head(self, goal_id: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self._table.get_item(Key=_goal_key(goal_id), ConsistentRead=True).get(
            "Item"
        )
        return item

    def position(self, goal_id: str) -> GoalPosition | None:
        item = self._table.get_item(
            Key=_goal_key(goal_id),
            ConsistentRead=True,
            ProjectionExpression="#status, auditSeq",
            ExpressionAttributeNames={"#status": "status"},
        ).get("Item")
        if not item:
            return None
        seq = item.get("auditSeq")
        return GoalPosition(status=GoalStatus(item["status"]), auditSeq=int(seq) if seq is not None else None)

    def get(self, goal_id: str) -> GoalRecord | None:
        item = self._head(goal_id)
        return GoalRecord.model_validate(self._assemble(goal_id, item)) if item else None

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
        """Sets fields; with ``status``, only from a status that may lead there; with ``audit``, moves
        the chain head in the same write; with ``notice``, queues it in the notice outbox's fields of
        this item (``notices_table``) in the same write too.

        Large fields become new parts, written before the one head update that refers to them."""
        if status is not None and status not in ALLOWED_FROM:
            raise InvalidTransition(f"no goal may move to {status.value}")
        head_fields, parts, steps = split_fields(fields)
        sets: dict[str, Any] = {}
        removes: list[str] = []
        for name, value in _encode(head_fields).items():
            if value is None:
                removes.append(name)
            else:
                sets[name] = value
        current: dict[str, Any] | None = None
        for part, given in parts.items():
            body = dict(given)
            if set(given) != set(fields_of(part)):
                # Only some of the part's fields change: the rest carry over from the stored part.
                current = current if current is not None else self._head(goal_id)
                if current is None:
                    raise GoalNotFound(goal_id)
                stored = self._assemble(goal_id, current)
                body = {
                    name: plain(given[name]) if name in given else stored.get(name)
                    for name in fields_of(part)
                }
            # A head written before parts existed may hold the field inline: it moves into the part.
            removes.extend(given)
            if all(value is None for value in body.values()):
                removes.append(ref_attribute(part))
            else:
                sets[ref_attribute(part)] = self._put_part(goal_id, part, body)
        if steps is not None:
            sets[STEP_REFS] = [
                [str(step["stepId"]), self._put_part(goal_id, STEP_PART, step)] for step in plain(steps)
            ]
            removes.append(STEPS_FIELD)
        self._update_head(
            goal_id,
            sets=sets,
            removes=removes,
            status=status,
            updated_at=updated_at,
            condition_plan_hash=condition_plan_hash,
            audit=audit,
            notice=notice,
        )

    def _update_head(
        self,
        goal_id: str,
        *,
        sets: dict[str, Any],
        removes: list[str],
        status: GoalStatus | None,
        updated_at: str,
        condition_plan_hash: str | None,
        audit: AuditHead | None = None,
        notice: str | None = None,
    ) -> None:
        names: dict[str, str] = {}
        attr_values: dict[str, Any] = {}
        assignments = []
        for i, (name, value) in enumerate(sets.items()):
            names[f"#f{i}"] = name
            attr_values[f":v{i}"] = value
            assignments.append(f"#f{i} = :v{i}")
        assignments.append("updatedAt = :now")
        attr_values[":now"] = updated_at
        removals = []
        for i, name in enumerate(dict.fromkeys(removes)):
            names[f"#r{i}"] = name
            removals.append(f"#r{i}")
        conditions = ["attribute_exists(pk)"]
        if status is not None:
            names["#status"] = "status"
            attr_values[":to"] = status.value
            assignments.append("#status = :to")
            placeholders = []
            for i, origin in enumerate(sorted(ALLOWED_FROM[status])):
                attr_values[f":from{i}"] = origin.value
                placeholders.append(f":from{i}")
            conditions.append(f"#status IN ({', '.join(placeholders)})")
        if condition_plan_hash is not None:
            names["#planHash"] = "planHash"
            attr_values[":planHash"] = condition_plan_hash
            conditions.append("#planHash = :planHash")
        if audit is not None:
            # The head never moves backwards: a later record already pointed at keeps its place.
            assignments.append("auditHead = :auditHead, auditSeq = :auditSeq")
            attr_values[":auditHead"], attr_values[":auditSeq"] = audit.hash, audit.seq
            conditions.append("(attribute_not_exists(auditSeq) OR auditSeq < :auditSeq)")
        additions = []
        if notice is not None:
            queued = due_notice_clauses(notice, at=updated_at)
            assignments.extend(queued.sets)
            additions.append(queued.add)
            attr_values.update(queued.values)
            conditions.append(queued.condition)
        expression = "SET " + ", ".join(assignments)
        if removals:
            expression += " REMOVE " + ", ".join(removals)
        if additions:
            expression += " ADD " + ", ".join(additions)
        try:
            self._table.update_item(
                Key=_goal_key(goal_id),
                UpdateExpression=expression,
                ConditionExpression=" AND ".join(conditions),
                ExpressionAttributeNames=names or None,
                ExpressionAttributeValues=attr_values,
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                current = self._head(goal_id)
                if current is None:
                    raise GoalNotFound(goal_id) from exc
                behind = audit is not None and int(current.get("auditSeq") or 0) >= audit.seq
                told = notice is not None and notice_told(current, notice)
                if behind or told:
                    # The chain head was behind a concurrent record, or the notice was told already
                    # (a retried move): the change is written without them, under the same rules.
                    self._update_head(
                        goal_id,
                        sets=sets,
                        removes=removes,
                        status=status,
                        updated_at=updated_at,
                        condition_plan_hash=condition_plan_hash,
                        audit=None if behind else audit,
                        notice=None if told else notice,
                    )
                    return
                raise InvalidTransition(
                    f"goal {goal_id} is {current.get('status')}; cannot move to {status.value if status else '-'}"
                ) from exc
            raise

    def append_step(
        self, goal_id: str, result: StepResult, updated_at: str, *, audit: AuditHead | None = None
    ) -> None:
        """Records an executed step once, replacing an earlier record of the same step (a retry).

        Only the new result is written as a part; the head's list of step references moves (and the
        audit chain head with it, given ``audit``)."""
        item = self._head(goal_id)
        if item is None:
            raise GoalNotFound(goal_id)
        if STEP_REFS not in item and item.get(STEPS_FIELD):
            # A head from before parts existed: its steps move into parts with this one.
            record = GoalRecord.model_validate(self._assemble(goal_id, item))
            steps = [step for step in record.steps if step.stepId != result.stepId] + [result]
            self.update(goal_id, updated_at=updated_at, audit=audit, steps=steps)
            return
        refs = [[str(step_id), str(ref)] for step_id, ref in item.get(STEP_REFS) or []]
        new_ref = [result.stepId, digest(plain(result))]
        if refs and refs[-1] == new_ref:
            # The same result, already last: a redelivery writes nothing but a newer chain head.
            if audit is not None:
                self.advance_audit_head(goal_id, seq=audit.seq, head=audit.hash)
            return
        self._put_part(goal_id, STEP_PART, plain(result))
        refs = [ref for ref in refs if ref[0] != result.stepId] + [new_ref]
        self._update_head(
            goal_id,
            sets={STEP_REFS: refs},
            removes=[],
            status=None,
            updated_at=updated_at,
            condition_plan_hash=None,
            audit=audit,
        )

    def advance_audit_head(self, goal_id: str, *, seq: int, head: str) -> None:
        """Remembers the newest audit record, so a deleted tail is detectable; never moves backwards."""
        try:
            self._table.update_item(
                Key=_goal_key(goal_id),
                UpdateExpression="SET auditHead = :head, auditSeq = :seq",
                ConditionExpression="attribute_exists(pk) AND (attribute_not_exists(auditSeq) OR auditSeq < :seq)",
                ExpressionAttributeValues={":head": head, ":seq": seq},
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise

    def undo_token(self, goal_id: str) -> str | None:
        """The task token of the open undo window; kept off GoalRecord so no view can leak it."""
        ref_name = ref_attribute(PART_OF["undoToken"])
        item = self._table.get_item(
            Key=_goal_key(goal_id),
            ConsistentRead=True,
            ProjectionExpression="undoToken, #ref",
            ExpressionAttributeNames={"#ref": ref_name},
        ).get("Item")
        if not item:
            return None
        if item.get(ref_name):
            key = part_key(goal_id, PART_OF["undoToken"], str(item[ref_name]))
            stored = self._table.get_item(Key={"pk": key}, ConsistentRead=True).get("Item")
            if stored is None:
                raise GoalPartMissing(f"goal {goal_id}: the undo window's part is gone")
            token = json.loads(stored["body"]).get("undoToken")
            return str(token) if token else None
        return str(item["undoToken"]) if item.get("undoToken") else None

    def claim_undo(self, goal_id: str, requested_at: str) -> bool:
        """Records the first undo request; False when one was already recorded."""
        return self._claim(goal_id, "undoRequestedAt", requested_at)

    def release_undo_claim(self, goal_id: str) -> None:
        self._release(goal_id, "undoRequestedAt")

    def claim_return_settlement(self, goal_id: str, settled_at: str) -> bool:
        """Records that the goal's return refund is being settled; False when it already was."""
        return self._claim(goal_id, "returnSettledAt", settled_at)

    def release_return_settlement(self, goal_id: str) -> None:
        self._release(goal_id, "returnSettledAt")

    def _claim(self, goal_id: str, attribute: str, at: str) -> bool:
        """Sets the claim attribute on the goal's head unless it is set; False when it already was."""
        try:
            self._table.update_item(
                Key=_goal_key(goal_id),
                UpdateExpression=f"SET {attribute} = :at",
                ConditionExpression=f"attribute_exists(pk) AND attribute_not_exists({attribute})",
                ExpressionAttributeValues={":at": at},
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def _release(self, goal_id: str, attribute: str) -> None:
        try:
            self._table.update_item(
                Key=_goal_key(goal_id),
                UpdateExpression=f"REMOVE {attribute}",
                # An unconditional update would create a stub item for an unknown goal.
                ConditionExpression="attribute_exists(pk)",
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
