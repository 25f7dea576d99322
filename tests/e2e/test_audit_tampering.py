"""Editing, deleting or reordering a goal's audit records in the running stack's table is detected,
by ``GET /goals/{id}/audit`` and by ``cartpilot audit GOAL --verify`` (exit code 1)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from cartpilot.audit.chain import AuditRecord, hash_record_body, verify_chain
from cartpilot.audit.public_keys import PlanSignatureVerifier
from tests.e2e.audit_trail import (
    Items,
    record_of,
    stored_records,
    table_of,
    verify_with_cli,
    wait_for_quiet_trail,
)
from tests.e2e.conftest import LOW_RISK_GOAL, Stack

APPROVAL_GOAL = "Buy me 2 pairs of running shoes, size 42, and gift-wrap them"
# A fresh generated shopper per goal, clear of the per-user daily limits other tests run into.
_shoppers = itertools.count(301)


def shopper() -> str:
    return f"shopper-{next(_shoppers):04d}"


def rewrite(stack: Stack, goal_id: str, items: Items) -> None:
    """Replaces the goal's stored records with ``items``, as someone with table access could."""
    table = table_of(stack, "audit")
    for item in stored_records(stack, goal_id):
        table.delete_item(Key={"goalId": goal_id, "seq": item["seq"]})
    for item in items:
        table.put_item(Item=item)


def edit_an_event(items: Items) -> Items:
    edited = [dict(item) for item in items]
    edited[2]["event"] = "approval.approved"
    return edited


def edit_and_rehash(items: Items) -> Items:
    """A careful forger also fixes the edited record's own hash; the next record's link still breaks."""
    edited = [dict(item) for item in items]
    record = record_of(edited[1])
    body = record.model_copy(update={"actor": "user:someone-else"}).body()
    edited[1] = {**edited[1], "actor": "user:someone-else", "hash": hash_record_body(body)}
    return edited


def delete_a_middle_record(items: Items) -> Items:
    return [item for item in items if item["seq"] != 3]


def delete_the_last_record(items: Items) -> Items:
    return items[:-1]


def reorder_two_records(items: Items) -> Items:
    swapped = [dict(item) for item in items]
    second, third = dict(swapped[1]), dict(swapped[2])
    swapped[1] = {**third, "seq": second["seq"]}
    swapped[2] = {**second, "seq": third["seq"]}
    return swapped


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        (edit_an_event, "altered after it was written"),
        (edit_and_rehash, "does not link to the record before it"),
        (delete_a_middle_record, "a record is missing or moved"),
        (delete_the_last_record, "records were removed"),
        (reorder_two_records, "altered after it was written"),
    ],
)
def test_a_tampered_audit_trail_fails_verification(
    stack: Stack, capsys: pytest.CaptureFixture[str], tamper: Callable[[Items], Items], problem: str
):
    goal_id = stack.api.submit(shopper(), LOW_RISK_GOAL).json()["goalId"]
    assert stack.api.wait_for(goal_id)["status"] == "COMPLETED"
    wait_for_quiet_trail(stack, goal_id)
    assert stack.api.audit(goal_id)["verification"]["valid"] is True
    code, out = verify_with_cli(stack, goal_id, capsys)
    assert code == 0 and "chain valid" in out

    original = stored_records(stack, goal_id)
    rewrite(stack, goal_id, tamper(original))

    verification = stack.api.audit(goal_id)["verification"]
    assert verification["valid"] is False
    assert any(problem in found for found in verification["problems"]), verification["problems"]
    code, out = verify_with_cli(stack, goal_id, capsys)
    assert code == 1 and "chain BROKEN" in out and problem in out

    rewrite(stack, goal_id, original)
    assert stack.api.audit(goal_id)["verification"]["valid"] is True
    assert verify_with_cli(stack, goal_id, capsys)[0] == 0


def test_the_approved_plan_is_proven_by_its_signature_not_only_by_the_chain(stack: Stack):
    goal_id = stack.api.submit(shopper(), APPROVAL_GOAL).json()["goalId"]
    link = stack.api.wait_for_approval_link(goal_id)
    fields = {"exp": link.exp, "kid": link.kid, "sig": link.sig, "decision": "approve", "offered": "s2"}
    assert stack.api.http.post(link.post_url, data=fields).status_code == 200
    goal = stack.api.wait_for(goal_id)
    assert goal["status"] == "COMPLETED"

    verifier = PlanSignatureVerifier.from_document(stack.api.audit_keys())
    records = [AuditRecord.model_validate(r) for r in stack.api.audit(goal_id)["records"]]
    verified = verify_chain(records, expected_head=records[-1].hash, verifier=verifier)
    assert verified.valid, verified.problems
    signed = {check.event: (check.planHash, check.result) for check in verified.signatures}
    assert signed["approval.approved"] == (goal["planHash"], "verified")
    assert signed["plan.reduced"] == (goal["planHash"], "verified")
    assert (
        signed["approval.requested"][1] == "verified" and signed["approval.requested"][0] != goal["planHash"]
    )

    # Someone with write access claims another plan was approved and rebuilds the whole chain after it.
    forged: list[AuditRecord] = []
    previous = None
    for record in records:
        changes: dict[str, Any] = {} if previous is None else {"prevHash": previous.hash}
        if record.event == "approval.approved":
            changes["planHash"] = "sha256:" + "e" * 64
        body = record.model_copy(update=changes).body()
        previous = AuditRecord(**body, hash=hash_record_body(body))
        forged.append(previous)
    assert verify_chain(forged, expected_head=forged[-1].hash).valid  # the chain alone cannot tell
    caught = verify_chain(forged, expected_head=forged[-1].hash, verifier=verifier)
    assert not caught.valid
    assert any("does not match what the record shows" in problem for problem in caught.problems)
