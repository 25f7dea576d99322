"""Issue 11, row 18: an approval link opened with a trailing slash still decides.

``GET /approvals/{id}/`` rendered the page at a URL whose relative form action resolved to
``/approvals/{id}/{id}`` (404). The slash form now redirects to the one canonical URL, keeping
the link's query, so the form a browser submits from the page posts where it should.
"""

from __future__ import annotations

import itertools
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin, urlsplit

from cartpilot_local.client import ApprovalLink
from tests.e2e.conftest import Stack

FORM = "application/x-www-form-urlencoded"
APPROVAL_GOAL = "Buy me 2 pairs of running shoes, size 42, and gift-wrap them"

_shoppers = itertools.count(701)


class ApprovalForm(HTMLParser):
    """The page's form as a browser reads it: its action and the fields it submits."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self.action = attributes.get("action")
        elif tag == "input" and (
            attributes.get("type") == "hidden"
            or (attributes.get("type") == "checkbox" and "checked" in attributes)
        ):
            self.fields.append((attributes.get("name") or "", attributes.get("value") or ""))


def with_slash(link: ApprovalLink) -> str:
    parts = urlsplit(link.url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}/?{parts.query}"


def test_the_page_opened_with_a_trailing_slash_posts_its_decision_where_it_should(stack: Stack):
    goal_id = stack.api.submit(f"shopper-{next(_shoppers):04d}", APPROVAL_GOAL).json()["goalId"]
    link = stack.api.wait_for_approval_link(goal_id)

    opened = stack.api.http.get(with_slash(link), follow_redirects=True)
    assert opened.status_code == 200
    assert stack.api.goal(goal_id)["status"] == "AWAITING_APPROVAL"

    form = ApprovalForm()
    form.feed(opened.text)
    assert form.action is not None
    action = urljoin(str(opened.url), form.action)  # as a browser resolves a relative action
    body = urlencode([*form.fields, ("decision", "approve")])
    decided = stack.api.http.post(action, content=body, headers={"Content-Type": FORM})
    assert decided.status_code == 200, f"{action} answered {decided.status_code}"
    assert "This order was approved" in decided.text
    assert str(opened.url) == link.url, "one canonical URL, with the link's query kept"
    assert urlsplit(action).path == urlsplit(link.url).path

    done = stack.api.wait_for(goal_id)
    assert done["status"] == "COMPLETED"
    ledger = stack.ledger()
    assert len(ledger["orders"]) == 1 and len(ledger["charges"]) == 1 and ledger["refunds"] == []
    assert stack.events(goal_id).count("approval.approved") == 1


def test_a_decision_posted_to_the_trailing_slash_form_is_decided_once(stack: Stack):
    goal_id = stack.api.submit(f"shopper-{next(_shoppers):04d}", APPROVAL_GOAL).json()["goalId"]
    link = stack.api.wait_for_approval_link(goal_id)

    fields = {"exp": link.exp, "kid": link.kid, "sig": link.sig, "decision": "reject"}
    posted = stack.api.http.post(f"{link.post_url}/", data=fields, follow_redirects=True)
    assert posted.status_code == 200 and "This order was rejected" in posted.text
    assert stack.api.wait_for(goal_id)["status"] == "REJECTED"
    assert stack.ledger() == {"orders": [], "charges": [], "refunds": []}
    assert stack.events(goal_id).count("approval.rejected") == 1
