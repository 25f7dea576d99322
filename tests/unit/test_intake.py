"""Goal intake on the fakes: one goal and one order flow per (API client, Idempotency-Key), whatever the
retries; a client submits only for the users it may act for."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from cartpilot.brands.access import ApiClient
from cartpilot.brands.config import BrandConfig
from cartpilot.brands.users import UserDirectory
from cartpilot.commerce.ports import Address, Recipient
from cartpilot.goals.intake import GoalIntake, IntakeError
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.model import GoalContext, GoalRequest, GoalStatus
from tests.conftest import SEED_GOAL
from tests.fakes import FakeWorkflow
from tests.fakes.merchant import cny, usd

KEY = "8c0b3a52-idempotency-key-1"
ASSISTANT = ApiClient(id="assistant", principals=["arn:aws:iam::123456789012:user/assistant"], users="all")
PARTNER = ApiClient(id="partner", principals=["arn:aws:iam::123456789012:user/partner"], users=["user-5"])
FRIEND = Recipient(
    name="Zhang Min",
    phone="+86 139 1088 2266",
    address=Address(line1="7 Gongti North Road, Building 3", city="Beijing", region="BJ",
                    postalCode="100027", country="CN"),
)  # fmt: skip


class CrashBeforeCreate:
    """The goal store, with the function crashing (timed out, killed) after the key was claimed and
    before the goal was stored."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def create(self, record: Any) -> None:
        raise RuntimeError("the function crashed")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class BrokenWorkflow(FakeWorkflow):
    """StartExecution failing (throttled) a given number of times, then working."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def start(self, name: str, flow_input: dict[str, Any]) -> str:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("ThrottlingException: Rate exceeded")
        return super().start(name, flow_input)


@pytest.fixture
def workflow() -> FakeWorkflow:
    return FakeWorkflow()


@pytest.fixture
def intake(
    ledger: GoalLedger, workflow: FakeWorkflow, brand: BrandConfig, users: UserDirectory
) -> GoalIntake:
    return GoalIntake(ledger=ledger, workflow=workflow, brand=brand, users=users)


def request(goal: str = SEED_GOAL, user: str = "user-1", **context: Any) -> GoalRequest:
    return GoalRequest(userId=user, goal=goal, context=GoalContext(**context))


def test_a_goal_is_stored_and_one_flow_is_started(intake: GoalIntake, ledger: GoalLedger, workflow, brand):
    accepted = intake.submit(request(budget=cny("800.00")), KEY, client=ASSISTANT)

    goal_id = accepted.goalId
    assert accepted.status == "RECEIVED"
    assert accepted.links == {
        "self": f"/goals/{goal_id}",
        "audit": f"/goals/{goal_id}/audit",
        "undo": f"/goals/{goal_id}/undo",
    }
    goal = ledger.store.require(goal_id)
    assert (goal.userId, goal.brand, goal.goal, goal.status) == (
        "user-1",
        "sandbox",
        SEED_GOAL,
        GoalStatus.RECEIVED,
    )
    assert goal.context == GoalContext(budget=cny("800.00"))
    assert goal.requestHash == request(budget=cny("800.00")).fingerprint()
    assert goal.plan is None and goal.steps == []

    assert workflow.started == {
        goal_id: {
            "goalId": goal_id,
            "settings": {
                "approvalTimeoutSeconds": brand.approvalTimeoutSeconds,
                "undoWindowSeconds": brand.undoWindowSeconds,
            },
        }
    }
    assert goal.executionArn == f"arn:aws:states:us-east-1:123456789012:execution:flow:{goal_id}"


def test_the_audit_records_the_goal_as_received(intake: GoalIntake, ledger: GoalLedger):
    accepted = intake.submit(request(deliverBy=date(2027, 2, 5)), KEY, client=ASSISTANT)

    (record,) = ledger.audit.records(accepted.goalId)
    assert (record.seq, record.event, record.actor, record.status) == (
        1,
        "goal.received",
        "user:user-1",
        "RECEIVED",
    )
    assert record.detail == {"client": "assistant", "goal": SEED_GOAL, "context": {"deliverBy": "2027-02-05"}}
    assert ledger.store.require(accepted.goalId).auditHead == record.hash


def test_the_audit_keeps_the_recipients_phone_and_street_out(intake: GoalIntake, ledger: GoalLedger):
    accepted = intake.submit(
        request("Send running socks to my friend, call +86 139 1088 2266", recipient=FRIEND),
        KEY,
        client=ASSISTANT,
    )

    (record,) = ledger.audit.records(accepted.goalId)
    text = record.model_dump_json()
    for personal in ("1088", "Gongti", "100027", "Zhang Min"):
        assert personal not in text
    assert record.detail["context"]["recipient"]["address"]["city"] == "Beijing"
    # The stored goal keeps what the planner needs.
    assert ledger.store.require(accepted.goalId).context.recipient == FRIEND


def test_the_same_key_and_body_return_the_same_goal_and_start_nothing_new(
    intake: GoalIntake, ledger, workflow
):
    first = intake.submit(request(), KEY, client=ASSISTANT)
    ledger.transition(first.goalId, GoalStatus.PLANNING, actor="planner:rules", event="planning.started")

    again = intake.submit(request(), KEY, client=ASSISTANT)

    assert again.goalId == first.goalId and again.links == first.links
    assert again.status == "PLANNING"  # where the goal is now, not a fresh RECEIVED
    assert list(workflow.started) == [first.goalId]
    assert [r.event for r in ledger.audit.records(first.goalId)] == ["goal.received", "planning.started"]


def test_the_same_key_with_another_body_is_refused_and_changes_nothing(intake: GoalIntake, ledger, workflow):
    first = intake.submit(request(), KEY, client=ASSISTANT)
    stored = ledger.store.require(first.goalId)

    for other in (request("Buy me running socks"), request(budget=cny("500.00"))):
        with pytest.raises(IntakeError) as refused:
            intake.submit(other, KEY, client=ASSISTANT)
        assert (refused.value.status, refused.value.code) == (422, "IDEMPOTENCY_KEY_REUSED")

    assert ledger.store.require(first.goalId) == stored
    assert list(workflow.started) == [first.goalId]


def test_another_key_or_another_client_is_another_goal(intake: GoalIntake, workflow):
    first = intake.submit(request(user="user-5"), KEY, client=ASSISTANT)
    other_key = intake.submit(request(user="user-5"), "another-key", client=ASSISTANT)
    other_client = intake.submit(request(user="user-5"), KEY, client=PARTNER)

    assert len({first.goalId, other_key.goalId, other_client.goalId}) == 3
    assert set(workflow.started) == {first.goalId, other_key.goalId, other_client.goalId}


def test_one_key_for_another_user_is_another_body(intake: GoalIntake, ledger, workflow):
    first = intake.submit(request(), KEY, client=ASSISTANT)
    with pytest.raises(IntakeError) as refused:
        intake.submit(request(user="user-2"), KEY, client=ASSISTANT)
    assert (refused.value.status, refused.value.code) == (422, "IDEMPOTENCY_KEY_REUSED")
    assert ledger.store.goal_ids() == [first.goalId]


def test_goal_ids_are_random_not_derived_from_the_key(ledger, brand, users):
    ids = set()
    for _ in range(3):
        fresh = GoalLedger(type(ledger.store)(), ledger.audit)
        intake = GoalIntake(ledger=fresh, workflow=FakeWorkflow(), brand=brand, users=users)
        ids.add(intake.submit(request(), KEY, client=ASSISTANT).goalId)
    assert len(ids) == 3
    assert all(goal_id.startswith("g-") and len(goal_id) == 28 for goal_id in ids)


@pytest.mark.parametrize("user", ["user-1", "user-nobody", "shopper-0001"])
def test_a_client_may_not_submit_for_a_user_it_does_not_act_for(intake: GoalIntake, ledger, workflow, user):
    with pytest.raises(IntakeError) as refused:
        intake.submit(request(user=user), KEY, client=PARTNER)
    # The same answer for a user that does not exist: nothing to learn about other users.
    assert (refused.value.status, refused.value.code) == (403, "USER_NOT_ALLOWED")
    assert ledger.store.goal_ids() == [] and workflow.started == {}


def test_a_crash_between_claiming_the_key_and_storing_the_goal_is_finished_by_the_retry(
    ledger: GoalLedger, brand, users
):
    workflow = FakeWorkflow()
    crashing = GoalLedger(CrashBeforeCreate(ledger.store), ledger.audit)
    with pytest.raises(RuntimeError, match="crashed"):
        GoalIntake(ledger=crashing, workflow=workflow, brand=brand, users=users).submit(
            request(), KEY, client=ASSISTANT
        )
    assert ledger.store.goal_ids() == [] and workflow.started == {}

    intake = GoalIntake(ledger=ledger, workflow=workflow, brand=brand, users=users)
    accepted = intake.submit(request(), KEY, client=ASSISTANT)
    again = intake.submit(request(), KEY, client=ASSISTANT)

    assert again.goalId == accepted.goalId
    assert ledger.store.goal_ids() == [accepted.goalId]
    assert list(workflow.started) == [accepted.goalId]
    assert [r.event for r in ledger.audit.records(accepted.goalId)] == ["goal.received"]


def test_a_crash_between_storing_the_goal_and_starting_its_flow_is_finished_by_the_retry(
    ledger, brand, users
):
    workflow = BrokenWorkflow(failures=1)
    intake = GoalIntake(ledger=ledger, workflow=workflow, brand=brand, users=users)
    with pytest.raises(RuntimeError, match="Throttling"):
        intake.submit(request(), KEY, client=ASSISTANT)
    (stored,) = ledger.store.goal_ids()

    accepted = intake.submit(request(), KEY, client=ASSISTANT)

    assert accepted.goalId == stored and ledger.store.goal_ids() == [stored]
    assert list(workflow.started) == [stored]
    assert [r.event for r in ledger.audit.records(stored)] == ["goal.received"]


def test_an_unknown_user_is_refused_and_nothing_is_stored(intake: GoalIntake, ledger, workflow, brand):
    with pytest.raises(IntakeError) as refused:
        intake.submit(request(user="user-nobody"), KEY, client=ASSISTANT)
    assert (refused.value.status, refused.value.code) == (422, "UNKNOWN_USER")
    assert ledger.store.goal_ids() == []
    assert workflow.started == {}


def test_a_budget_in_another_currency_is_refused_and_nothing_is_stored(
    intake: GoalIntake, ledger, workflow, brand
):
    with pytest.raises(IntakeError) as refused:
        intake.submit(request(budget=usd("100.00")), KEY, client=ASSISTANT)
    assert (refused.value.status, refused.value.code) == (422, "BUDGET_CURRENCY")
    assert refused.value.message == "budget must be in CNY"
    assert ledger.store.goal_ids() == []
    assert workflow.started == {}
    # The key is still free for a corrected request.
    corrected = intake.submit(request(budget=cny("100.00")), KEY, client=ASSISTANT)
    assert ledger.store.goal_ids() == [corrected.goalId]


def test_a_brand_without_an_undo_window_still_gives_the_flow_a_positive_wait(ledger, workflow, brand, users):
    no_undo = brand.model_copy(update={"undoWindowSeconds": 0})
    intake = GoalIntake(ledger=ledger, workflow=workflow, brand=no_undo, users=users)
    accepted = intake.submit(request(), KEY, client=ASSISTANT)
    assert workflow.started[accepted.goalId]["settings"]["undoWindowSeconds"] == 1


def test_a_retry_after_the_flow_failed_to_start_starts_it(ledger, brand, users):
    workflow = BrokenWorkflow(failures=1)
    intake = GoalIntake(ledger=ledger, workflow=workflow, brand=brand, users=users)
    with pytest.raises(RuntimeError, match="Throttling"):
        intake.submit(request(), KEY, client=ASSISTANT)

    accepted = intake.submit(request(), KEY, client=ASSISTANT)  # the client retries, as told by the 5xx

    assert list(workflow.started) == [accepted.goalId]
    assert ledger.store.require(accepted.goalId).executionArn is not None


def test_a_goal_may_name_one_of_the_brands_merchants(intake: GoalIntake, ledger, workflow, brand):
    accepted = intake.submit(request(merchantId="sandbox-merchant"), KEY, client=ASSISTANT)
    assert ledger.store.require(accepted.goalId).context.merchantId == "sandbox-merchant"
    assert list(workflow.started) == [accepted.goalId]


def test_a_merchant_the_brand_does_not_buy_from_is_refused_and_nothing_is_stored(
    intake: GoalIntake, ledger, workflow, brand
):
    with pytest.raises(IntakeError) as refused:
        intake.submit(request(merchantId="other-shop"), KEY, client=ASSISTANT)
    assert (refused.value.status, refused.value.code) == (422, "UNKNOWN_MERCHANT")
    assert refused.value.message == "merchant other-shop is not one this brand buys from (sandbox-merchant)"
    assert ledger.store.goal_ids() == []
    assert workflow.started == {}


@pytest.mark.parametrize("merchant_id", ["", "Sandbox Merchant", "../etc", "x" * 80])
def test_a_merchant_id_that_cannot_be_one_is_refused_by_the_request_model(merchant_id: str):
    with pytest.raises(ValueError, match="merchantId"):
        request(merchantId=merchant_id)
