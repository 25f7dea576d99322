"""A small HTTP client of the CartPilot API, used by the CLI, the demo and the end-to-end tests."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from cartpilot.goals.lifecycle import FINAL_STATUSES, SETTLED_STATUSES
from cartpilot.goals.model import GoalStatus


class WaitTimedOut(TimeoutError):
    pass


@dataclass(frozen=True)
class ApprovalLink:
    url: str
    approval_id: str
    exp: str
    kid: str
    sig: str

    @classmethod
    def parse(cls, url: str) -> ApprovalLink:
        parts = urlsplit(url)
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        return cls(
            url=url,
            approval_id=parts.path.rstrip("/").split("/")[-1],
            exp=query.get("exp", ""),
            kid=query.get("kid", ""),
            sig=query.get("sig", ""),
        )

    @property
    def post_url(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"


# The local stack's gateway takes the caller from this header, as API Gateway takes the IAM principal
# from a SigV4 signature; without it the caller is the sandbox's ``assistant`` client.
PRINCIPAL_HEADER = "X-Local-Principal"


class CartPilotClient:
    def __init__(self, api_url: str, timeout: float = 30.0, *, principal: str | None = None) -> None:
        """``principal``: who to call as on the local stack (an API client, or a staff member)."""
        self.api_url = api_url.rstrip("/")
        self.principal = principal
        headers = {PRINCIPAL_HEADER: principal} if principal else {}
        self.http = httpx.Client(base_url=self.api_url, timeout=timeout, headers=headers)

    def close(self) -> None:
        self.http.close()

    def submit(
        self, user_id: str, goal: str, context: dict[str, Any] | None = None, key: str | None = None
    ) -> httpx.Response:
        body: dict[str, Any] = {"userId": user_id, "goal": goal}
        if context is not None:
            body["context"] = context
        return self.http.post("/goals", json=body, headers={"Idempotency-Key": key or str(uuid.uuid4())})

    def goal(self, goal_id: str) -> dict[str, Any]:
        response = self.http.get(f"/goals/{goal_id}")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def wait_for(
        self, goal_id: str, statuses: set[str] | None = None, timeout: float = 60.0
    ) -> dict[str, Any]:
        """Polls until the goal reaches one of ``statuses`` (default: any settled status)."""
        wanted = statuses or {status.value for status in SETTLED_STATUSES}
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            goal = self.goal(goal_id)
            if goal["status"] in wanted:
                return goal
            if goal["status"] in {s.value for s in FINAL_STATUSES}:
                return goal  # it will never reach what was wanted
            if time.monotonic() > deadline:
                raise WaitTimedOut(f"goal {goal_id} is still {goal['status']} after {timeout:.0f}s")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def wait_for_approval_link(
        self,
        goal_id: str,
        timeout: float = 60.0,
        *,
        newer_than: ApprovalLink | None = None,
        audience: str = "shopper",
    ) -> ApprovalLink:
        """Waits until the goal asks for approval and its link is in the outbox.

        With ``newer_than``, waits for a link to a different approval (the goal asked again);
        ``audience="staff"`` waits for a staff-only approval's link on the staff channel.
        """
        deadline = time.monotonic() + timeout
        while True:
            goal = self.goal(goal_id)
            if goal["status"] in {s.value for s in SETTLED_STATUSES}:
                raise WaitTimedOut(f"goal {goal_id} ended {goal['status']} without asking for approval")
            if goal["status"] == GoalStatus.AWAITING_APPROVAL.value:
                for message in reversed(self.outbox()):
                    if (
                        message.get("goalId") == goal_id
                        and message.get("kind") == "approval_request"
                        and message.get("audience", "shopper") == audience
                    ):
                        link = ApprovalLink.parse(message["link"])
                        if newer_than is None or link.approval_id != newer_than.approval_id:
                            return link
                        break
            if time.monotonic() > deadline:
                raise WaitTimedOut(f"no approval link was sent for {goal_id}")
            time.sleep(0.05)

    def undo(self, goal_id: str, timeout: float = 30.0) -> httpx.Response:
        """POST /goals/{id}/undo, waiting while the just-completed order is still opening its undo window."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.http.post(f"/goals/{goal_id}/undo")
            not_ready = response.status_code == 409 and response.json()["error"]["code"] == "UNDO_NOT_READY"
            if not not_ready or time.monotonic() > deadline:
                return response
            time.sleep(0.05)

    def outbox(self) -> list[dict[str, Any]]:
        response = self.http.get("/_local/outbox")
        response.raise_for_status()
        messages: list[dict[str, Any]] = response.json()["messages"]
        return messages

    def open_link(self, link: ApprovalLink) -> httpx.Response:
        return self.http.get(link.url)

    def decide(
        self,
        link: ApprovalLink,
        decision: str,
        phrase: str | None = None,
        *,
        as_json: bool = False,
        otp: str | None = None,
    ) -> httpx.Response:
        """``decision``: approve, reject, or send-code (a step-up approval's one-time code by SMS)."""
        fields = {"exp": link.exp, "kid": link.kid, "sig": link.sig, "decision": decision}
        if phrase is not None:
            fields["phrase"] = phrase
        if otp is not None:
            fields["otp"] = otp
        if as_json:
            return self.http.post(link.post_url, json=fields)
        return self.http.post(link.post_url, data=fields)

    def audit_keys(self) -> dict[str, Any]:
        """The published public keys of plan signatures (``GET /audit/keys``)."""
        response = self.http.get("/audit/keys")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def audit(self, goal_id: str) -> dict[str, Any]:
        response = self.http.get(f"/goals/{goal_id}/audit")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def schedule_mandate(self, schedule_id: str) -> httpx.Response:
        """``GET /schedules/{id}/mandate``: the standing mandate as an AP2 open mandate SD-JWT."""
        return self.http.get(f"/schedules/{schedule_id}/mandate")

    def schedule_audit(self, schedule_id: str) -> httpx.Response:
        return self.http.get(f"/schedules/{schedule_id}/audit")

    def schedules_of(self, user_id: str) -> httpx.Response:
        """``GET /schedules?userId=``: the user's schedules made through this client."""
        return self.http.get("/schedules", params={"userId": user_id})
