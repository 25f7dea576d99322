"""No personal data in any log line or audit record, whatever the order went through.

The stack runs in its own process at DEBUG, so every line any part of it prints (the
functions' Powertools logs, tracebacks, the servers) is captured; then the flows a shopper
and an approver can cause are run, and the output and every audit record are searched for
the sandbox users' addresses, phone numbers, emails and for card numbers.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from cartpilot.brands.config import brand_dir
from cartpilot_local.client import CartPilotClient
from tests.conftest import SEED_GOAL
from tests.e2e.conftest import LOW_RISK_GOAL
from tests.e2e.stack_process import StackProcess, running_stack_process

STRONG_GOAL = (
    "Get my friend 5 pairs of running shoes, size 42, gift-wrap them and ship to Beijing before Feb 5"
)
# Someone the shopper has not saved, typed into the request and the goal's words.
STRANGER_PHONE = "+86 186 2100 7788"
STRANGER_LINE1 = "99 Nanjing West Road, Floor 12"
STRANGER = {
    "name": "Wu Jun",
    "phone": STRANGER_PHONE,
    "address": {
        "line1": STRANGER_LINE1,
        "city": "Shanghai",
        "region": "SH",
        "postalCode": "200040",
        "country": "CN",
    },
}
STRANGER_EMAIL = "wu.jun@example.net"
CARD = "4111 1111 1111 1111"
TALKATIVE_GOAL = (
    f"Buy me a pair of running socks; call me on {STRANGER_PHONE} or mail {STRANGER_EMAIL}, my card is {CARD}"
)
EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
CARD_LIKE = re.compile(r"(?<![\w-])(?:\d[ -]?){14,18}\d(?![\w-])")


def luhn_valid(number: str) -> bool:
    digits = [int(d) for d in re.sub(r"\D", "", number)][::-1]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(digits))
    return total % 10 == 0


def phone_pattern(phone: str) -> re.Pattern[str]:
    """The national number, however it is spaced or punctuated."""
    digits = re.sub(r"\D", "", phone)
    national = digits[2:] if digits.startswith("86") else digits[1:] if digits.startswith("1") else digits
    return re.compile(r"[\s\-().]?".join(national))


@functools.cache
def personal_data() -> tuple[list[str], list[re.Pattern[str]]]:
    users = yaml.safe_load((brand_dir("sandbox") / "users.yaml").read_text(encoding="utf-8"))["users"]
    literals = [STRANGER_LINE1, STRANGER_EMAIL]
    phones = [phone_pattern(STRANGER_PHONE)]
    for user in users:
        literals.append(user["email"])
        for saved in user["recipients"]:
            literals.append(saved["recipient"]["address"]["line1"])
            phones.append(phone_pattern(saved["recipient"]["phone"]))
    return literals, phones


def leaks(text: str) -> list[str]:
    literals, phones = personal_data()
    found = [literal for literal in literals if literal in text]
    found += [match.group() for pattern in phones for match in [pattern.search(text)] if match]
    found += EMAIL.findall(text)
    found += [match for match in CARD_LIKE.findall(text) if luhn_valid(match)]
    return found


@pytest.fixture(scope="module")
def chatty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    root = tmp_path_factory.mktemp("pii")
    with running_stack_process(root / "stack.log", log_level="DEBUG") as running:
        yield running


def run_flows(stack: StackProcess, api: CartPilotClient) -> list[str]:
    """Approve with gift-wrap left out, reject a stranger's delivery, a declined card (compensated),
    a denial, a forged link, a wrong phrase, and a merchant error that a retry gets past."""
    goals: list[str] = []

    def submit(user: str, goal: str, context: dict[str, Any] | None = None) -> str:
        response = api.submit(user, goal, context)
        assert response.status_code == 202, response.text
        goals.append(response.json()["goalId"])
        return goals[-1]

    seed = submit("user-1", SEED_GOAL)
    link = api.wait_for_approval_link(seed)
    fields = {"exp": link.exp, "kid": link.kid, "sig": link.sig, "decision": "approve", "offered": "s2"}
    assert api.http.post(link.post_url, data=fields).status_code == 200

    stranger = submit("user-2", TALKATIVE_GOAL, {"recipient": STRANGER})
    stranger_link = api.wait_for_approval_link(stranger)
    forged = {"exp": stranger_link.exp, "kid": stranger_link.kid, "sig": "A" * 43, "decision": "approve"}
    assert api.http.post(stranger_link.post_url, data=forged).status_code == 403
    assert api.decide(stranger_link, "reject").status_code == 200

    strong = submit("user-1", STRONG_GOAL)
    strong_link = api.wait_for_approval_link(strong)
    assert api.decide(strong_link, "approve", "CONFIRM BUY 1 CNY").status_code == 422
    assert api.decide(strong_link, "reject").status_code == 200

    submit("user-5", LOW_RISK_GOAL, {"paymentMethodId": "pm_declined"})
    submit("user-4", "Buy me running shoes size 42 under 100 CNY")
    stack.inject_fault("POST /checkout-sessions/{id}/complete", "error_500", times=1)
    submit("user-1", LOW_RISK_GOAL)

    for goal_id in goals:
        api.wait_for(goal_id, timeout=90)
    return goals


def test_no_personal_data_reaches_logs_or_audit_records(chatty: StackProcess):
    api = CartPilotClient(chatty.api_url)
    try:
        goals = run_flows(chatty, api)
        statuses = {api.goal(goal_id)["status"] for goal_id in goals}
        assert {"COMPLETED", "REJECTED", "COMPENSATED", "DENIED"} <= statuses
        audits = {goal_id: api.audit(goal_id) for goal_id in goals}
    finally:
        api.close()

    output = chatty.output_text()
    # The capture works and is verbose: the functions' own log lines are in it.
    for message in ('"message":"approval requested"', '"message":"approval decided"',
                    '"message":"approval link refused"'):  # fmt: skip
        assert message in output
    assert '"level":"INFO"' in output and '"level":"DEBUG"' in output
    # Nor the secrets of an approval: the flow's task token, a link's signature.
    assert "taskToken" not in output and "sig=" not in output

    problems = [
        f"log line {n}: {leaks(line)}" for n, line in enumerate(output.splitlines(), 1) if leaks(line)
    ]
    for goal_id, audit in audits.items():
        assert audit["verification"]["valid"], audit["verification"]["problems"]
        for record in audit["records"]:
            found = leaks(json.dumps(record, ensure_ascii=False))
            if found:
                problems.append(f"audit {goal_id} #{record['seq']} {record['event']}: {found}")
    assert problems == []

    # The masking is what kept them out: the stranger's delivery was recorded, without the person.
    received = next(r for r in audits[goals[1]]["records"] if r["event"] == "goal.received")
    assert received["detail"]["context"]["recipient"]["address"]["city"] == "Shanghai"
    assert "*****" in received["detail"]["goal"]
