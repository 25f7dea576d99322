"""GoalStore at the edges of its layout: heads written before parts existed, partial part updates,
a throttling table, and errors that are not a failed condition."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from cartpilot.adapters.aws.goals_table import DynamoDBGoalStore
from cartpilot.goals.model import ApprovalSummary, GoalContext, GoalRecord, GoalStatus
from cartpilot.goals.parts import STEP_REFS, STEPS_FIELD, ref_attribute
from cartpilot.goals.ports import AuditHead, GoalNotFound, GoalPartMissing
from cartpilot.plans.verdicts import RiskTier
from cartpilot_local.resources import table_names
from tests.contract.backends import GoalStoreBackend
from tests.contract.conftest import BRAND, REGION
from tests.contract.samples import LATER, bare_goal, full_goal, seed_plan, step
from tests.fakes import cny

LATEST = "2026-11-25T08:10:00+00:00"
# Fields a head written before parts existed kept inline as JSON text.
_INLINE_JSON = ("approval", "refund", "context", "plan", "verdict", "steps", "receipt", "priceCheck")


# --- both stores ----------------------------------------------------------------------------------


def test_changing_one_field_of_a_part_keeps_the_part_s_other_fields(goals: GoalStoreBackend):
    goals.store.create(full_goal("g-ctx"))
    before = goals.store.require("g-ctx")
    context = GoalContext(paymentMethodId="pm_card-2")
    goals.store.update("g-ctx", updated_at=LATEST, context=context)
    got = goals.store.require("g-ctx")
    # The request part holds goal, context and requestHash: only the context moved.
    assert (got.context, got.goal, got.requestHash) == (context, before.goal, before.requestHash)
    assert got == before.model_copy(update={"context": context, "updatedAt": LATEST})


def test_changing_one_field_of_a_part_of_an_unknown_goal_raises_and_creates_nothing(
    goals: GoalStoreBackend,
):
    with pytest.raises(GoalNotFound):
        goals.store.update("g-nobody", updated_at=LATEST, context=GoalContext())
    assert goals.store.get("g-nobody") is None


def test_head_fields_given_as_models_are_stored_as_their_values(goals: GoalStoreBackend):
    goals.store.create(bare_goal("g-models", GoalStatus.EXECUTING))
    summary = ApprovalSummary(approvalId="a-1", status="APPROVED", tier=RiskTier.APPROVAL, dropped=["s3"])
    goals.store.update("g-models", updated_at=LATER, approval=summary, refund=cny("12.30"))
    got = goals.store.require("g-models")
    assert (got.approval, got.refund) == (summary, cny("12.30"))


def test_a_return_settlement_is_claimed_once_until_released(goals: GoalStoreBackend):
    goals.store.create(full_goal("g-return"))
    assert goals.store.claim_return_settlement("g-return", LATER) is True
    assert goals.store.claim_return_settlement("g-return", LATEST) is False
    goals.store.release_return_settlement("g-return")
    assert goals.store.claim_return_settlement("g-return", LATEST) is True
    # The claim is kept off the record: the goal reads back as it was.
    assert goals.store.require("g-return") == full_goal("g-return")


def test_a_return_settlement_of_an_unknown_goal_is_not_claimed_and_creates_nothing(
    goals: GoalStoreBackend,
):
    assert goals.store.claim_return_settlement("g-ghost", LATER) is False
    goals.store.release_return_settlement("g-ghost")
    assert goals.store.get("g-ghost") is None


def test_an_undo_token_whose_part_is_gone_is_an_error(goals: GoalStoreBackend):
    goals.store.create(full_goal("g-token"))
    goals.store.update("g-token", updated_at=LATER, undoToken="token-1")
    goals.drop_part("g-token", "undoToken")
    with pytest.raises(GoalPartMissing):
        goals.store.undo_token("g-token")


# --- DynamoDB: heads written before parts existed --------------------------------------------------


def _goals_table(session: boto3.Session) -> Any:
    return session.resource("dynamodb").Table(table_names(BRAND)["goals"])


def _put_inline_head(table: Any, record: GoalRecord, **extra: Any) -> None:
    """A head as written before parts existed: every field inline, structured ones as JSON text."""
    fields = record.model_dump(mode="json", exclude_none=True)
    item: dict[str, Any] = {"pk": f"GOAL#{record.goalId}"}
    for name, value in {**fields, **extra}.items():
        item[name] = json.dumps(value) if name in _INLINE_JSON else value
    table.put_item(Item=item)


def _head(table: Any, goal_id: str) -> dict[str, Any]:
    item: dict[str, Any] = table.get_item(Key={"pk": f"GOAL#{goal_id}"}, ConsistentRead=True)["Item"]
    return item


def _parts(table: Any, goal_id: str) -> list[str]:
    return sorted(
        str(item["pk"])
        for item in table.scan()["Items"]
        if str(item["pk"]).startswith(f"GOALPART#{goal_id}#")
    )


def test_an_inline_head_reads_as_the_goal_it_holds(aws: boto3.Session):
    table = _goals_table(aws)
    record = full_goal("g-old")
    _put_inline_head(table, record)
    store = DynamoDBGoalStore(table)
    assert store.require("g-old") == record
    assert store.position("g-old") is not None and store.position("g-old").auditSeq == 7  # type: ignore[union-attr]
    assert _parts(table, "g-old") == []


def test_the_next_write_of_an_inline_field_moves_it_into_a_part(aws: boto3.Session):
    table = _goals_table(aws)
    record = full_goal("g-move", GoalStatus.VALIDATING)
    _put_inline_head(table, record)
    store = DynamoDBGoalStore(table)
    replanned = seed_plan().model_copy(update={"planId": "p-moved"})
    store.update("g-move", updated_at=LATEST, plan=replanned, planHash=replanned.plan_hash())
    head = _head(table, "g-move")
    assert "plan" not in head and head[ref_attribute("plan")]
    # The fields not written stay inline, and the goal reads back whole.
    assert "verdict" in head and ref_attribute("verdict") not in head
    assert store.require("g-move") == record.model_copy(
        update={"plan": replanned, "planHash": replanned.plan_hash(), "updatedAt": LATEST}
    )


def test_a_step_appended_to_an_inline_head_moves_all_its_steps_into_parts(aws: boto3.Session):
    table = _goals_table(aws)
    record = full_goal("g-steps", GoalStatus.EXECUTING)
    _put_inline_head(table, record)
    store = DynamoDBGoalStore(table)
    retried = step("s4", orderId="o-2")
    store.append_step("g-steps", retried, LATEST, audit=AuditHead(seq=8, hash="sha256:" + "b" * 64))
    head = _head(table, "g-steps")
    assert STEPS_FIELD not in head
    assert [ref[0] for ref in head[STEP_REFS]] == ["s1", "s4"]
    got = store.require("g-steps")
    # A retried step replaces the earlier record of the same step; the chain head moved with it.
    assert got.steps == [record.steps[0], retried]
    assert (got.auditSeq, got.auditHead) == (8, "sha256:" + "b" * 64)


def test_an_inline_undo_token_is_read_and_moves_into_a_part_when_cleared(aws: boto3.Session):
    table = _goals_table(aws)
    _put_inline_head(table, full_goal("g-undo"), undoToken="token-inline")
    store = DynamoDBGoalStore(table)
    assert store.undo_token("g-undo") == "token-inline"
    # The token never reaches the record.
    assert store.require("g-undo") == full_goal("g-undo")
    store.update("g-undo", updated_at=LATEST, undoToken=None)
    assert "undoToken" not in _head(table, "g-undo")
    assert store.undo_token("g-undo") is None
    assert store.undo_token("g-unknown") is None


# --- DynamoDB: a throttling table ------------------------------------------------------------------


def _throttle_batch_gets(table: Any, monkeypatch: pytest.MonkeyPatch, *, answer: int | None) -> list[int]:
    """Each BatchGetItem answers at most ``answer`` keys (None: none at all) and hands the rest back
    as unprocessed, as a throttled table does. Returns how many keys each call asked for."""
    client = table.meta.client
    original = client._make_api_call
    asked: list[int] = []

    def make_api_call(operation: str, params: dict[str, Any]) -> Any:
        if operation != "BatchGetItem":
            return original(operation, params)
        (name, request), *_ = params["RequestItems"].items()
        asked.append(len(request["Keys"]))
        served = request["Keys"] if answer is None else request["Keys"][:answer]
        response = original(operation, {"RequestItems": {name: {**request, "Keys": served}}})
        if answer is None:
            response["Responses"] = {name: []}
        left = request["Keys"][len(served) :] if answer is not None else request["Keys"]
        response["UnprocessedKeys"] = {name: {**request, "Keys": left}} if left else {}
        return response

    monkeypatch.setattr(client, "_make_api_call", make_api_call)
    return asked


def test_parts_left_unprocessed_are_asked_for_again_until_all_are_read(
    aws: boto3.Session, monkeypatch: pytest.MonkeyPatch
):
    table = _goals_table(aws)
    store = DynamoDBGoalStore(table)
    store.create(full_goal("g-throttled"))
    sleeps: list[float] = []
    monkeypatch.setattr("cartpilot.adapters.aws.goals_table.time.sleep", sleeps.append)
    asked = _throttle_batch_gets(table, monkeypatch, answer=2)
    assert store.require("g-throttled") == full_goal("g-throttled")
    # request, plan, verdict, priceCheck, receipt and two steps: seven parts, two per answer.
    assert asked == [7, 5, 3, 1]
    assert sleeps == sorted(sleeps) and len(sleeps) == 3 and sleeps[0] < sleeps[-1]


def test_parts_still_unread_after_the_retries_are_an_error_not_a_partial_goal(
    aws: boto3.Session, monkeypatch: pytest.MonkeyPatch
):
    table = _goals_table(aws)
    store = DynamoDBGoalStore(table)
    store.create(full_goal("g-starved"))
    sleeps: list[float] = []
    monkeypatch.setattr("cartpilot.adapters.aws.goals_table.time.sleep", sleeps.append)
    asked = _throttle_batch_gets(table, monkeypatch, answer=None)
    with pytest.raises(RuntimeError, match="unread after retries"):
        store.get("g-starved")
    assert len(asked) == 7 and len(sleeps) == 6


# --- DynamoDB: an error that is not a failed condition is raised -----------------------------------


def _throttled_store(operation: str) -> tuple[DynamoDBGoalStore, Stubber]:
    """The store over a table that throttles ``operation`` (``create`` first writes its request part)."""
    table = boto3.resource(
        "dynamodb", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    ).Table("goals")
    stubber = Stubber(table.meta.client)
    *accepted, throttled = operation.split(">")
    for name in accepted:
        stubber.add_response(name, {})
    stubber.add_client_error(throttled, service_error_code="ProvisionedThroughputExceededException")
    return DynamoDBGoalStore(table), stubber


_FAILING_WRITES: list[tuple[str, Any]] = [
    ("update_item>put_item", lambda store: store.create(bare_goal("g-1"))),
    ("update_item", lambda store: store._put_part("g-1", "plan", {"plan": None})),
    ("put_item", lambda store: store.claim_submission("k-1", "g-1", "sha256:h")),
    ("update_item", lambda store: store.update("g-1", updated_at=LATER, failure="x")),
    ("update_item", lambda store: store.advance_audit_head("g-1", seq=3, head="sha256:h")),
    ("update_item", lambda store: store.claim_undo("g-1", LATER)),
    ("update_item", lambda store: store.release_undo_claim("g-1")),
    ("update_item", lambda store: store.claim_return_settlement("g-1", LATER)),
    ("update_item", lambda store: store.release_return_settlement("g-1")),
]


@pytest.mark.parametrize(
    ("operation", "call"),
    _FAILING_WRITES,
    ids=[
        "create", "put_part", "claim_submission", "update", "advance_audit_head",
        "claim_undo", "release_undo_claim", "claim_return_settlement", "release_return_settlement",
    ],
)  # fmt: skip
def test_a_throttled_write_is_raised_not_read_as_a_failed_condition(operation: str, call: Any):
    store, stubber = _throttled_store(operation)
    with stubber, pytest.raises(ClientError) as raised:
        call(store)
    assert raised.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    stubber.assert_no_pending_responses()
