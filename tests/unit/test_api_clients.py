"""Who may call a brand's API: its listed API clients (each for its own users) and its listed staff."""

from __future__ import annotations

import pytest

from cartpilot.brands.access import (
    ApiClient,
    CallerRefused,
    StaffMember,
    client_for,
    local_principal_arn,
    principal_matches,
    staff_member_for,
)
from cartpilot.brands.config import BrandConfig, load_brand
from cartpilot.goals.ownership import goal_of_client
from tests.fakes.storage import InMemoryGoalStore

ROLE_SESSIONS = "arn:aws:sts::111122223333:assumed-role/chat-backend/*"


@pytest.mark.parametrize(
    ("pattern", "principal", "matches"),
    [
        ("arn:aws:iam::111122223333:user/app", "arn:aws:iam::111122223333:user/app", True),
        ("arn:aws:iam::111122223333:user/app", "arn:aws:iam::111122223333:user/app2", False),
        ("arn:aws:iam::111122223333:user/app", "arn:aws:iam::444455556666:user/app", False),
        (ROLE_SESSIONS, "arn:aws:sts::111122223333:assumed-role/chat-backend/i-0abc", True),
        (ROLE_SESSIONS, "arn:aws:sts::111122223333:assumed-role/chat-backend/", False),
        (ROLE_SESSIONS, "arn:aws:sts::111122223333:assumed-role/chat-backend-2/s", False),
        (ROLE_SESSIONS, "arn:aws:sts::111122223333:assumed-role/chat-backend/a/b", False),
    ],
)
def test_principal_patterns(pattern: str, principal: str, matches: bool):
    assert principal_matches(pattern, principal) is matches


@pytest.mark.parametrize(
    "principals",
    [["app"], ["arn:aws:iam::111122223333:user/*"], ["arn:aws:sts::111122223333:assumed-role/*"], []],
)
def test_a_client_names_principals_by_arn_and_wildcards_only_role_sessions(principals: list[str]):
    with pytest.raises(ValueError):
        ApiClient(id="app", principals=principals, users="all")


def test_the_sandbox_lists_its_two_clients_and_its_staff():
    brand = load_brand("sandbox")
    assistant = client_for(brand.apiClients, local_principal_arn("assistant"))
    partner = client_for(brand.apiClients, local_principal_arn("partner"))
    assert assistant.id == "assistant" and partner.id == "partner"
    assert assistant.may_act_for("user-1") and assistant.may_act_for("shopper-0420")
    assert partner.may_act_for("user-5") and not partner.may_act_for("user-1")
    assert staff_member_for(brand.staff, local_principal_arn("staff-1")).id == "staff-1"


@pytest.mark.parametrize(
    "principal", [None, "", local_principal_arn("intruder"), local_principal_arn("staff-1")]
)
def test_a_caller_the_brand_does_not_list_is_refused(principal: str | None):
    brand = load_brand("sandbox")
    with pytest.raises(CallerRefused) as refused:
        client_for(brand.apiClients, principal)
    assert (refused.value.status, refused.value.code) == (403, "CLIENT_NOT_ALLOWED")


@pytest.mark.parametrize(
    "principal", [None, local_principal_arn("assistant"), local_principal_arn("partner")]
)
def test_only_listed_staff_are_staff(principal: str | None):
    with pytest.raises(CallerRefused) as refused:
        staff_member_for(load_brand("sandbox").staff, principal)
    assert (refused.value.status, refused.value.code) == (403, "NOT_STAFF")


def test_ids_must_be_unique(brand: BrandConfig):
    twice = [StaffMember(id="s", principals=["arn:aws:iam::1:user/a"])] * 2
    with pytest.raises(ValueError, match="staff: ids must be unique"):
        BrandConfig.model_validate({**brand.model_dump(), "staff": [m.model_dump() for m in twice]})


def test_a_goal_is_visible_to_its_client_only(ledger):
    from cartpilot.goals.model import GoalContext, GoalRecord, GoalStatus
    from tests.unit.stages import NOON

    store = InMemoryGoalStore()
    stamp = NOON.isoformat()
    store.create(
        GoalRecord(goalId="g-1", userId="user-5", clientId="partner", brand="sandbox", goal="socks",
                   context=GoalContext(), status=GoalStatus.RECEIVED, requestHash="r", createdAt=stamp,
                   updatedAt=stamp)
    )  # fmt: skip
    brand = load_brand("sandbox")
    assistant, partner = brand.apiClients
    found = goal_of_client(store, "g-1", partner)
    assert found is not None and found.goalId == "g-1"
    assert goal_of_client(store, "g-1", assistant) is None
    assert goal_of_client(store, "g-unknown", partner) is None
