"""Who may call a brand's API: its API clients (and the shoppers each may act for) and its staff.

Both are named by the IAM principals API Gateway passes on for a SigV4-signed request
(``requestContext.identity.userArn``). A principal is an exact ARN, or a role's sessions:
``arn:aws:sts::ACCOUNT:assumed-role/ROLE/*`` matches every session of that role, since a
session name is chosen by whoever assumes the role and proves nothing on its own. On the local
stack the gateway builds the same ARN from the ``X-Local-Principal`` header.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cartpilot.kernel.errors import Refusal

# The account the local stack's emulated AWS uses, which its gateway puts in a caller's ARN.
LOCAL_ACCOUNT = "123456789012"
_SESSIONS = "/*"
_ROLE_SESSIONS = re.compile(r"arn:[a-z\-]+:sts::[0-9]{12}:assumed-role/[^/*]+/\*")


def local_principal_arn(name: str) -> str:
    """The ARN the local gateway passes on for ``X-Local-Principal: name``."""
    return f"arn:aws:iam::{LOCAL_ACCOUNT}:user/{name}"


def principal_matches(pattern: str, principal: str) -> bool:
    if pattern.endswith(_SESSIONS):
        prefix = pattern[: -len(_SESSIONS) + 1]
        session = principal[len(prefix) :]
        return principal.startswith(prefix) and bool(session) and "/" not in session
    return pattern == principal


def _valid_principals(principals: list[str]) -> list[str]:
    for principal in principals:
        if not principal.startswith("arn:"):
            raise ValueError(f"{principal!r} is not an IAM ARN")
        if "*" in principal and not _ROLE_SESSIONS.fullmatch(principal):
            raise ValueError(f"{principal!r}: only one assumed role's sessions may be matched with /*")
    return principals


class ApiClient(BaseModel):
    """A backend allowed to submit goals, and the shoppers it may submit them for."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9\-]{0,40}$")
    principals: list[str] = Field(min_length=1)
    users: Literal["all"] | list[str] = Field(
        description='"all": every user of the brand (generated shoppers included); else these user ids'
    )

    _principals_are_arns = field_validator("principals")(_valid_principals)

    def may_act_for(self, user_id: str) -> bool:
        return self.users == "all" or user_id in self.users


class StaffMember(BaseModel):
    """A member of the brand's staff who decides staff-only approvals."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9\-]{0,40}$")
    principals: list[str] = Field(min_length=1)

    _principals_are_arns = field_validator("principals")(_valid_principals)


class CallerRefused(Refusal):
    """The caller is not one the brand lists for this route."""


def client_for(clients: Sequence[ApiClient], principal: str | None) -> ApiClient:
    """The API client the signed-in principal is; refused (403) when the brand lists it nowhere."""
    for client in clients:
        if principal and any(principal_matches(pattern, principal) for pattern in client.principals):
            return client
    raise CallerRefused(403, "CLIENT_NOT_ALLOWED", "this caller is not an API client of this brand")


def staff_member_for(staff: Sequence[StaffMember], principal: str | None) -> StaffMember:
    """The staff member the signed-in principal is; refused (403) otherwise."""
    for member in staff:
        if principal and any(principal_matches(pattern, principal) for pattern in member.principals):
            return member
    raise CallerRefused(403, "NOT_STAFF", "only the brand's staff may open staff approvals")
