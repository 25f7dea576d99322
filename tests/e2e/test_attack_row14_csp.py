"""Issue 11, row 14: a merchant's image URL cannot write the approval page's Content-Security-Policy.

The sandbox merchant publishes a crafted image URL for the running shoes the goal buys; the
approval page's CSP must keep exactly its own directives (no ``script-src``, the one
``form-action 'self'``), the crafted image is not shown, and the approval still works.
"""

from __future__ import annotations

import itertools

import pytest

from tests.e2e.conftest import Stack

APPROVAL_GOAL = "Buy me 2 pairs of running shoes, size 42, and gift-wrap them"
EXPECTED_DIRECTIVES = {
    "default-src": ["'none'"],
    "style-src": ["'unsafe-inline'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
    "base-uri": ["'none'"],
}
CRAFTED = [
    "https://cdn.example.com/shoe.png; script-src *; form-action https://evil.example",
    "https://cdn.example.com, https://evil.example/x.png",
    "https://cdn.example.com'/x.png",
    "https://cdn.example.com\n; script-src *",
    "https://user:pass@evil.example/x.png",
    "http://evil.example/x.png",
]

_shoppers = itertools.count(501)


def directives(header: str) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for directive in header.split(";"):
        name, *values = directive.split()
        assert name not in parsed, f"{name} appears twice in {header!r}"
        parsed[name] = values
    return parsed


@pytest.mark.parametrize("crafted", CRAFTED)
def test_a_crafted_image_url_adds_nothing_to_the_pages_csp(stack: Stack, crafted: str):
    stack.merchant.post(
        "/_sandbox/images", json={"category": "running-shoes", "url": crafted}
    ).raise_for_status()
    goal_id = stack.api.submit(f"shopper-{next(_shoppers):04d}", APPROVAL_GOAL).json()["goalId"]
    link = stack.api.wait_for_approval_link(goal_id)
    shoes = [
        item for item in stack.api.goal(goal_id)["plan"]["summary"]["items"] if item["imageUrl"] == crafted
    ]
    assert shoes, "the plan carries the merchant's crafted URL as given"

    page = stack.api.open_link(link)
    assert page.status_code == 200
    policy = directives(page.headers["Content-Security-Policy"])
    img_src = policy.pop("img-src")
    assert policy == EXPECTED_DIRECTIVES
    # Only the page itself, inline data and loopback origins (the sandbox merchant's own images).
    assert all(source in ("'self'", "data:") or source.startswith("http://127.0.0.1:") for source in img_src)
    assert "evil.example" not in page.text and "cdn.example.com" not in page.text

    approved = stack.api.decide(link, "approve")
    assert approved.status_code == 200
    assert directives(approved.headers["Content-Security-Policy"]).get("script-src") is None
    assert stack.api.wait_for(goal_id)["status"] == "COMPLETED"
    ledger = stack.ledger()
    assert len(ledger["orders"]) == 1 and len(ledger["charges"]) == 1
    assert "approval.approved" in stack.events(goal_id)
