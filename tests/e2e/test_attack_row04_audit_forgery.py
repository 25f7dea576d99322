"""Issue 11 row 4: forging a goal's audit trail with write access to the tables is caught by
``cartpilot audit GOAL --verify``, which verifies in the command's own process with the published
public keys, not by trusting the server's verdict.

Each forger here is careful: after changing a record it rebuilds every hash after it and moves the
head the goal remembers, as anyone who can write the goals and audit tables could.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from cartpilot.audit.chain import AuditRecord, hash_record_body
from tests.e2e.audit_trail import (
    record_of,
    stored_records,
    table_of,
    verify_with_cli,
    wait_for_quiet_trail,
)
from tests.e2e.conftest import LOW_RISK_GOAL, Stack

APPROVAL_GOAL = "Buy me 2 pairs of running shoes, size 42, and gift-wrap them"
_shoppers = itertools.count(601)


def shopper() -> str:
    return f"shopper-{next(_shoppers):04d}"


def _item(record: AuditRecord) -> dict[str, Any]:
    return {**record.model_dump(mode="json", exclude={"detail"}), "detail": json.dumps(record.detail)}


def rechain(records: list[AuditRecord]) -> list[AuditRecord]:
    """What a careful forger does after an edit: every hash recomputed, every link repaired."""
    rebuilt: list[AuditRecord] = []
    for record in records:
        changes: dict[str, Any] = {"prevHash": rebuilt[-1].hash} if rebuilt else {}
        body = record.model_copy(update=changes).body()
        rebuilt.append(AuditRecord(**body, hash=hash_record_body(body)))
    return rebuilt


def plant(stack: Stack, goal_id: str, records: list[AuditRecord]) -> None:
    """Writes ``records`` over the stored ones with plain PutItem calls and moves the goal's head."""
    table = table_of(stack, "audit")
    for item in stored_records(stack, goal_id):
        if int(item["seq"]) > len(records):
            table.delete_item(Key={"goalId": goal_id, "seq": item["seq"]})
    for record in records:
        table.put_item(Item=_item(record))
    table_of(stack, "goals").update_item(
        Key={"pk": f"GOAL#{goal_id}"},
        UpdateExpression="SET auditHead = :head, auditSeq = :seq",
        ExpressionAttributeValues={":head": records[-1].hash, ":seq": records[-1].seq},
    )


def _with_detail(record: AuditRecord, **changes: Any) -> AuditRecord:
    return record.model_copy(update={"detail": {**record.detail, **changes}})


def _first_signed(records: list[AuditRecord]) -> int:
    return next(index for index, record in enumerate(records) if "planSignature" in record.detail)


def unknown_key_id(records: list[AuditRecord]) -> list[AuditRecord]:
    index = _first_signed(records)
    signature = {**records[index].detail["planSignature"], "kid": "key-nobody-published"}
    records[index] = _with_detail(records[index], planSignature=signature)
    return rechain(records)


def removed_signature(records: list[AuditRecord]) -> list[AuditRecord]:
    index = _first_signed(records)
    records[index] = records[index].model_copy(
        update={"detail": {k: v for k, v in records[index].detail.items() if k != "planSignature"}}
    )
    return rechain(records)


def rewritten_total_and_items(records: list[AuditRecord]) -> list[AuditRecord]:
    index = _first_signed(records)
    total = dict(records[index].detail["total"])
    amount_field = next(name for name, value in total.items() if isinstance(value, int))
    total[amount_field] = 1
    records[index] = _with_detail(records[index], total=total, items=["1 x a-cheaper-item"])
    return rechain(records)


def appended_after_the_head(records: list[AuditRecord]) -> list[AuditRecord]:
    head = records[-1]
    body = {
        **head.body(),
        "seq": head.seq + 1,
        "event": "refund.issued",
        "actor": "compensator",
        "detail": {"note": "refunded in full"},
        "prevHash": head.hash,
    }
    return [*records, AuditRecord(**body, hash=hash_record_body(AuditRecord(**body, hash="").body()))]


def overwritten_with_put_item(records: list[AuditRecord]) -> list[AuditRecord]:
    records[1] = records[1].model_copy(update={"actor": "user:someone-else"})
    return rechain(records)


def edited_event(records: list[AuditRecord]) -> list[AuditRecord]:
    # The first wave's edit: one field changed, nothing rehashed.
    records[2] = records[2].model_copy(update={"event": "approval.approved"})
    return records


def deleted_middle_record(records: list[AuditRecord]) -> list[AuditRecord]:
    kept = [record for record in records if record.seq != 3]
    return rechain([record.model_copy(update={"seq": seq}) for seq, record in enumerate(kept, start=1)])


def deleted_last_record(records: list[AuditRecord]) -> list[AuditRecord]:
    return records[:-1]


def reordered_records(records: list[AuditRecord]) -> list[AuditRecord]:
    records[1], records[2] = (
        records[2].model_copy(update={"seq": 2}),
        records[1].model_copy(update={"seq": 3}),
    )
    return rechain(records)


@pytest.mark.parametrize(
    ("forge", "problem"),
    [
        (unknown_key_id, "not a published audit key"),
        (removed_signature, "carries no plan signature"),
        (rewritten_total_and_items, "signature does not match"),
        (appended_after_the_head, "not anchored"),
        (overwritten_with_put_item, "differs from its anchor"),
        (edited_event, "altered after it was written"),
        (deleted_middle_record, "differs from its anchor"),
        (deleted_last_record, "records were removed"),
        (reordered_records, "differs from its anchor"),
    ],
)
def test_a_forged_audit_trail_fails_client_side_verification(
    stack: Stack,
    capsys: pytest.CaptureFixture[str],
    forge: Callable[[list[AuditRecord]], list[AuditRecord]],
    problem: str,
) -> None:
    goal_id = stack.api.submit(shopper(), LOW_RISK_GOAL).json()["goalId"]
    assert stack.api.wait_for(goal_id)["status"] == "COMPLETED"
    wait_for_quiet_trail(stack, goal_id)
    ledger = stack.ledger()
    assert len(ledger["orders"]) == 1 and len(ledger["charges"]) == 1
    code, out = verify_with_cli(stack, goal_id, capsys)
    assert code == 0 and "verified on this machine" in out, out

    original = stored_records(stack, goal_id)
    plant(stack, goal_id, forge([record_of(item) for item in original]))

    code, out = verify_with_cli(stack, goal_id, capsys)
    assert code == 1, out
    assert "BROKEN" in out and problem in out, out
    # Forging the record changed nothing else: the goal and the merchant's books stand.
    assert stack.api.goal(goal_id)["status"] == "COMPLETED"
    assert stack.ledger() == ledger

    # Putting the genuine records back verifies again: the failure was the forgery, not the goal.
    restored = [record_of(item) for item in original]
    plant(stack, goal_id, restored)
    assert verify_with_cli(stack, goal_id, capsys)[0] == 0


def test_a_plan_signed_before_two_key_rotations_still_verifies(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    from cartpilot_local.resources import rotate_plan_signing_key

    goal_id = stack.api.submit(shopper(), APPROVAL_GOAL).json()["goalId"]
    link = stack.api.wait_for_approval_link(goal_id)
    assert stack.api.decide(link, "approve").status_code == 200
    assert stack.api.wait_for(goal_id)["status"] == "COMPLETED"
    wait_for_quiet_trail(stack, goal_id)
    old_kids = {
        record["detail"]["planSignature"]["kid"]
        for record in stack.api.audit(goal_id)["records"]
        if "planSignature" in record["detail"]
    }
    assert len(old_kids) == 1

    kms = boto3.client("kms")
    rotate_plan_signing_key(kms, stack.local.plan_signing_key_alias)
    rotate_plan_signing_key(kms, stack.local.plan_signing_key_alias)

    # A goal planned after the rotations is signed with the newest key; both verify.
    later = stack.api.submit(shopper(), LOW_RISK_GOAL).json()["goalId"]
    assert stack.api.wait_for(later)["status"] == "COMPLETED"
    wait_for_quiet_trail(stack, later)
    new_kids = {
        record["detail"]["planSignature"]["kid"]
        for record in stack.api.audit(later)["records"]
        if "planSignature" in record["detail"]
    }
    assert new_kids and not new_kids & old_kids
    for goal in (goal_id, later):
        code, out = verify_with_cli(stack, goal, capsys)
        assert code == 0 and "verified on this machine" in out, out
    assert len(stack.ledger()["charges"]) == 2
