"""Attacks on approval links, on the running local stack: each leaves the goal as it was and buys nothing.

(Approving after the flow gave up waiting needs a brand with a short approval timeout:
see test_approval_timeout.py.)
"""

from __future__ import annotations

import base64
import functools
import hashlib
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import boto3
import httpx
import pytest
from aws_lambda_powertools.utilities import parameters

from cartpilot.approvals.links import LinkClaims, sign_approval_link
from cartpilot.goals.parts import PART_OF, digest, encode_body, part_key, ref_attribute
from cartpilot.kernel.keyring import KeyRing
from cartpilot_local.client import ApprovalLink
from cartpilot_local.lambda_runtime import load_handler
from cartpilot_local.resources import table_names
from cartpilot_local.stack import FUNCTIONS_DIR
from tests.e2e.conftest import Stack

# Above the confirmation threshold (approval), and above the strong-approval threshold (typed phrase).
APPROVAL_GOAL = "Buy me 2 pairs of running shoes, size 42, and gift-wrap them"
STRONG_GOAL = "Buy me 5 pairs of running shoes, size 42, and gift-wrap them"
NOTHING_BOUGHT = {"orders": [], "charges": [], "refunds": []}
ALREADY_DECIDED = "A decision was already recorded; nothing was changed."


def observed(stack: Stack, goal_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Everything a refused request must leave alone: the goal as the API shows it, and its audit trail."""
    return stack.api.goal(goal_id), stack.api.audit(goal_id)["records"]


def attempt(stack: Stack, link: ApprovalLink, decision: str = "approve") -> list[int]:
    """What an attacker holding ``link`` gets from opening it and from posting a decision with it."""
    opened = stack.api.http.get(link.post_url, params={"exp": link.exp, "kid": link.kid, "sig": link.sig})
    posted = stack.api.decide(link, decision)
    posted_json = stack.api.decide(link, decision, as_json=True)
    return [opened.status_code, posted.status_code, posted_json.status_code]


# A fresh generated shopper per goal: the brand's per-user daily limits must not turn
# this module's goals into denials, whatever the other tests on this stack ordered.
_shoppers = itertools.count(101)


def waiting_goal(stack: Stack, goal: str = APPROVAL_GOAL) -> tuple[str, ApprovalLink]:
    goal_id = stack.api.submit(f"shopper-{next(_shoppers):04d}", goal).json()["goalId"]
    return goal_id, stack.api.wait_for_approval_link(goal_id)


def finish(stack: Stack, goal_id: str, link: ApprovalLink) -> None:
    """Ends a still-waiting flow the honest way, so no execution outlives its test."""
    assert stack.api.decide(link, "reject").status_code == 200
    assert stack.api.wait_for(goal_id)["status"] == "REJECTED"


def link_secret(stack: Stack) -> dict[str, Any]:
    value = boto3.client("secretsmanager").get_secret_value(SecretId=stack.local.link_secret_id)
    secret: dict[str, Any] = json.loads(value["SecretString"])
    return secret


def put_link_secret(stack: Stack, secret: dict[str, Any]) -> None:
    boto3.client("secretsmanager").put_secret_value(
        SecretId=stack.local.link_secret_id, SecretString=json.dumps(secret)
    )
    # The functions cache the key ring for five minutes (Powertools Parameters); a test cannot wait.
    parameters.clear_caches()


@pytest.fixture
def restore_link_secret(stack: Stack) -> Iterator[None]:
    original = link_secret(stack)
    yield
    put_link_secret(stack, original)


def test_a_forged_signature_is_refused_and_changes_nothing(stack: Stack):
    goal_id, link = waiting_goal(stack)
    before = observed(stack, goal_id)

    stranger_key = b"s" * 32
    claims = LinkClaims(
        approval_id=link.approval_id, expires_at=int(link.exp), plan_hash=before[0]["planHash"],
        approver=before[0]["userId"], tier=before[0]["approval"]["tier"],
    )  # fmt: skip
    signed_by_stranger = ApprovalLink.parse(
        sign_approval_link(
            stack.api.api_url, claims, KeyRing(current=link.kid, keys={link.kid: stranger_key})
        )
    )
    flipped = link.sig[:-1] + ("A" if link.sig[-1] != "A" else "B")
    forgeries = [
        replace(link, sig=flipped),
        replace(link, sig=""),
        replace(link, kid="k-unknown"),
        signed_by_stranger,
    ]
    for forged in forgeries:
        assert attempt(stack, forged) == [403, 403, 403]
    assert observed(stack, goal_id) == before
    assert stack.ledger() == NOTHING_BOUGHT
    finish(stack, goal_id, link)


def test_a_link_signed_with_a_rotated_out_key_is_refused(stack: Stack, restore_link_secret: None):
    goal_id, old_link = waiting_goal(stack)
    original = link_secret(stack)
    assert old_link.kid == original["current"]

    # Rotation adds a key and makes it current; links signed before it keep working meanwhile.
    new_kid = f"k-{uuid.uuid4().hex[:8]}"
    rotated = {
        "current": new_kid,
        "keys": {**original["keys"], new_kid: base64.b64encode(b"n" * 32).decode()},
    }
    put_link_secret(stack, rotated)
    assert stack.api.open_link(old_link).status_code == 200
    newer_goal, newer_link = waiting_goal(stack)
    assert newer_link.kid == new_kid

    # Dropping the old key revokes every link it signed.
    put_link_secret(stack, {"current": new_kid, "keys": {new_kid: rotated["keys"][new_kid]}})
    before = observed(stack, goal_id)
    assert attempt(stack, old_link) == [403, 403, 403]
    assert observed(stack, goal_id) == before
    assert stack.ledger() == NOTHING_BOUGHT

    finish(stack, newer_goal, newer_link)
    put_link_secret(stack, original)
    finish(stack, goal_id, old_link)


def test_an_expired_link_is_gone_and_changes_nothing(stack: Stack):
    goal_id, link = waiting_goal(stack)
    before = observed(stack, goal_id)
    goal = before[0]
    # A link the stack itself signed, whose expiry has passed: valid signature, past its time.
    expired = ApprovalLink.parse(
        sign_approval_link(
            stack.api.api_url,
            LinkClaims(
                approval_id=link.approval_id, expires_at=int(time.time()) - 1, plan_hash=goal["planHash"],
                approver=goal["userId"], tier=goal["approval"]["tier"],
            ),
            KeyRing.from_secret(link_secret(stack)),
        )
    )  # fmt: skip
    assert expired.sig != link.sig
    assert attempt(stack, expired) == [410, 410, 410]
    # Moving the expiry of a real link forward breaks its signature instead.
    assert attempt(stack, replace(expired, exp=link.exp)) == [403, 403, 403]
    assert observed(stack, goal_id) == before
    assert stack.ledger() == NOTHING_BOUGHT
    finish(stack, goal_id, link)


def test_a_link_for_another_approval_is_refused(stack: Stack):
    first_goal, first = waiting_goal(stack)
    second_goal, second = waiting_goal(stack)
    before = [observed(stack, first_goal), observed(stack, second_goal)]

    transplanted = [
        replace(first, url=first.url.replace(first.approval_id, second.approval_id), approval_id=second.approval_id),
        replace(second, url=second.url.replace(second.approval_id, first.approval_id), approval_id=first.approval_id),
        replace(first, url=first.url.replace(first.approval_id, "a-" + "0" * 32), approval_id="a-" + "0" * 32),
    ]  # fmt: skip
    for moved in transplanted:
        assert attempt(stack, moved) == [403, 403, 403]
    assert [observed(stack, first_goal), observed(stack, second_goal)] == before
    assert stack.ledger() == NOTHING_BOUGHT
    finish(stack, first_goal, first)
    finish(stack, second_goal, second)


def test_a_replayed_post_after_a_decision_only_shows_the_decision(stack: Stack):
    goal_id, link = waiting_goal(stack)
    assert stack.api.decide(link, "reject").status_code == 200
    assert stack.api.wait_for(goal_id)["status"] == "REJECTED"
    before = observed(stack, goal_id)

    for decision, as_json in (("reject", False), ("approve", False), ("approve", True)):
        replayed = stack.api.decide(link, decision, as_json=as_json)
        assert replayed.status_code == 200
        assert "This order was rejected" in replayed.text and ALREADY_DECIDED in replayed.text
    dropped = stack.api.http.post(link.post_url, data={"exp": link.exp, "kid": link.kid, "sig": link.sig,
                                                       "decision": "approve", "offered": "s2"})  # fmt: skip
    assert dropped.status_code == 200 and ALREADY_DECIDED in dropped.text
    assert observed(stack, goal_id) == before
    assert stack.ledger() == NOTHING_BOUGHT


def test_a_link_scanner_opening_the_link_changes_nothing(stack: Stack):
    goal_id, link = waiting_goal(stack)
    before = observed(stack, goal_id)

    scanners = ["Mozilla/5.0 (compatible; SafeLinks)", "Slackbot-LinkExpanding 1.0", "curl/8.5.0"]
    for agent in scanners:
        page = stack.api.http.get(link.url, headers={"User-Agent": agent})
        assert page.status_code == 200 and "<form" in page.text
    # Even a link that carries a decision in its query is only a page to look at.
    loaded = stack.api.http.get(link.url + "&decision=approve&phrase=CONFIRM")
    assert loaded.status_code == 200
    assert stack.api.http.head(link.url).status_code < 500
    assert observed(stack, goal_id) == before
    assert stack.ledger() == NOTHING_BOUGHT
    finish(stack, goal_id, link)


def race(stack: Stack, link: ApprovalLink, decisions: list[str]) -> list[httpx.Response]:
    """Posts every decision at the same moment, each from its own connection."""
    barrier = threading.Barrier(len(decisions))
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    def post(decision: str) -> None:
        with httpx.Client(timeout=60) as client:
            barrier.wait(timeout=30)
            fields = {"exp": link.exp, "kid": link.kid, "sig": link.sig, "decision": decision}
            response = client.post(link.post_url, data=fields)
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=post, args=(decision,)) for decision in decisions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    return responses


def decisions_recorded(stack: Stack, goal_id: str) -> list[str]:
    return [e for e in stack.events(goal_id) if e in ("approval.approved", "approval.rejected")]


def test_concurrent_posts_make_exactly_one_decision(stack: Stack):
    goal_id, link = waiting_goal(stack)
    responses = race(stack, link, ["reject"] * 6)

    assert [r.status_code for r in responses] == [200] * 6
    assert sum(ALREADY_DECIDED in r.text for r in responses) == 5
    assert stack.api.wait_for(goal_id)["status"] == "REJECTED"
    assert decisions_recorded(stack, goal_id) == ["approval.rejected"]
    assert stack.ledger() == NOTHING_BOUGHT


def test_concurrent_approvals_place_one_order(stack: Stack):
    goal_id, link = waiting_goal(stack)
    responses = race(stack, link, ["approve"] * 6)

    assert sum(ALREADY_DECIDED in r.text for r in responses) == 5
    assert stack.api.wait_for(goal_id)["status"] == "COMPLETED"
    assert decisions_recorded(stack, goal_id) == ["approval.approved"]
    ledger = stack.ledger()
    assert len(ledger["orders"]) == 1 and len(ledger["charges"]) == 1


def test_a_strong_approval_without_the_phrase_decides_nothing(stack: Stack):
    goal_id, link = waiting_goal(stack, STRONG_GOAL)
    before = observed(stack, goal_id)
    assert before[0]["approval"]["tier"] == "STRONG_APPROVAL"
    for phrase in (None, "CONFIRM BUY", "CONFIRM BUY 2515.01 CNY", "CONFIRM BUY 2495.00 CNY"):
        refused = stack.api.decide(link, "approve", phrase)
        assert refused.status_code == 422 and "CONFIRM BUY 2515.00 CNY" in refused.text
    assert observed(stack, goal_id) == before
    assert stack.ledger() == NOTHING_BOUGHT
    finish(stack, goal_id, link)


def goals_table(stack: Stack) -> Any:
    return boto3.resource("dynamodb").Table(table_names(stack.local.brand)["goals"])


def stored_plan(stack: Stack, goal_id: str) -> tuple[str, str]:
    """The goal's stored plan document (JSON text, as its part holds it) and plan hash."""
    table = goals_table(stack)
    head = table.get_item(Key={"pk": f"GOAL#{goal_id}"}, ConsistentRead=True)["Item"]
    key = part_key(goal_id, PART_OF["plan"], head[ref_attribute(PART_OF["plan"])])
    document = json.loads(table.get_item(Key={"pk": key}, ConsistentRead=True)["Item"]["body"])["plan"]
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False), str(head["planHash"])


def tamper_with_plan(stack: Stack, goal_id: str) -> tuple[str, str]:
    """Someone with write access to the goals table triples the order and fixes up the stored hash.

    Returns the plan and hash as they were, so a test can put them back.
    """
    original = stored_plan(stack, goal_id)
    plan = json.loads(original[0])
    plan["summary"]["items"][0]["quantity"] = 3
    for step in plan["steps"]:
        if step["action"] == "checkout.create":
            step["args"]["lines"][0]["quantity"] = 3
    canonical = json.dumps(plan, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    set_plan(stack, goal_id, json.dumps(plan, separators=(",", ":"), ensure_ascii=False),
             "sha256:" + hashlib.sha256(canonical.encode()).hexdigest())  # fmt: skip
    return original


def set_plan(stack: Stack, goal_id: str, plan: str, plan_hash: str) -> None:
    """Stores ``plan`` as the goal's plan part and points the goal at it, past every rule of the store."""
    body = {"plan": json.loads(plan)}
    ref = digest(body)
    goals_table(stack).put_item(
        Item={"pk": part_key(goal_id, PART_OF["plan"], ref), "goalId": goal_id, "body": encode_body(body)}
    )
    goals_table(stack).update_item(
        Key={"pk": f"GOAL#{goal_id}"},
        UpdateExpression="SET #ref = :ref, planHash = :hash",
        ExpressionAttributeNames={"#ref": ref_attribute(PART_OF["plan"])},
        ExpressionAttributeValues={":ref": ref, ":hash": plan_hash},
    )


def test_a_plan_tampered_before_approval_cannot_be_approved(stack: Stack):
    goal_id, link = waiting_goal(stack)
    original = tamper_with_plan(stack, goal_id)
    before = observed(stack, goal_id)
    assert attempt(stack, link) == [409, 409, 409]
    assert observed(stack, goal_id) == before
    assert stack.ledger() == NOTHING_BOUGHT
    set_plan(stack, goal_id, *original)
    finish(stack, goal_id, link)


class HeldStep:
    """Holds the first call of a connector for one goal until released: a window to act in."""

    def __init__(self, goal_id: str) -> None:
        self.goal_id = goal_id
        self.entered = threading.Event()
        self.release = threading.Event()

    def wrap(self, load: Callable[[], Callable[[dict[str, Any], Any], Any]]) -> Callable[[], Any]:
        def load_held() -> Callable[[dict[str, Any], Any], Any]:
            handler = load()

            def held(event: dict[str, Any], context: Any) -> Any:
                if event.get("goalId") == self.goal_id and not self.entered.is_set():
                    self.entered.set()
                    self.release.wait(timeout=60)
                return handler(event, context)

            return held

        return load_held


def test_a_plan_tampered_after_approval_is_refused_by_the_executor(stack: Stack):
    goal_id, link = waiting_goal(stack)
    checkout = functools.partial(load_handler, FUNCTIONS_DIR / "connectors" / "checkout" / "app.py")
    held = HeldStep(goal_id)
    stack.local.runtime.register("checkout", held.wrap(checkout))
    try:
        assert stack.api.decide(link, "approve").status_code == 200
        assert held.entered.wait(timeout=60), "the first mutating step never started"
        tamper_with_plan(stack, goal_id)
    finally:
        held.release.set()
        stack.local.runtime.register("checkout", checkout)

    goal = stack.api.wait_for(goal_id, timeout=90)
    assert goal["status"] == "COMPENSATED" and goal["steps"] == []
    assert goal["reason"]["code"] == "PLAN_CHANGED"
    (undone,) = [r for r in stack.api.audit(goal_id)["records"] if r["event"] == "compensation.completed"]
    assert undone["detail"]["reason"] == "the stored plan is not the plan this execution carries"
    refused = [i for i in stack.local.runtime.invocations if i.function_name == "checkout"
               and i.event.get("goalId") == goal_id]  # fmt: skip
    assert refused and {i.error_type for i in refused} == {"PlanIntegrityError"}
    assert "step.executed" not in stack.events(goal_id)
    assert stack.ledger() == NOTHING_BOUGHT
