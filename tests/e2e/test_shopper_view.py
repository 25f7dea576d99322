"""The shopper's own view of a goal: the signed link from the receipt opens a read-only page; forged,
moved and expired links get the HTML error page; the confirmed undo button undoes the order once.

The last test drives the page in Debian's chromium on a phone-sized screen and keeps screenshots
under test-results/shopper-view/.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import boto3
import httpx
import pytest

from cartpilot.kernel.keyring import KeyRing
from cartpilot.kernel.money import Money
from cartpilot.shopper_view.links import ViewClaims, sign_view_link
from tests.e2e.conftest import LOW_RISK_GOAL, Stack

FORM = "application/x-www-form-urlencoded"
_shoppers = itertools.count(901)


class PageForms(HTMLParser):
    """The page's forms as a browser reads them: method, action and hidden fields."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self.forms.append({"method": (attributes.get("method") or "get").lower(),
                               "action": attributes.get("action"), "fields": []})  # fmt: skip
        elif tag == "input" and attributes.get("type") == "hidden" and self.forms:
            self.forms[-1]["fields"].append((attributes.get("name") or "", attributes.get("value") or ""))


def forms_of(html: str) -> list[dict[str, Any]]:
    parser = PageForms()
    parser.feed(html)
    return parser.forms


def submit(http: httpx.Client, page: httpx.Response, method: str, extra: dict[str, str] | None = None,
           headers: dict[str, str] | None = None) -> httpx.Response:  # fmt: skip
    """Submits the page's form of ``method`` as a browser would: no action means the page's own URL."""
    (form,) = [form for form in forms_of(page.text) if form["method"] == method]
    fields = [*form["fields"], *(extra or {}).items()]
    target = urljoin(str(page.url), form["action"]) if form["action"] else str(page.url)
    if method == "get":
        return http.get(target.split("?", 1)[0] + "?" + urlencode(fields))
    return http.post(target, content=urlencode(fields), headers={"Content-Type": FORM, **(headers or {})})


def receipt_of(stack: Stack, goal_id: str) -> dict[str, Any]:
    """The receipt notification (not its email rendering)."""
    (receipt,) = [
        m for m in stack.api.outbox()
        if m.get("goalId") == goal_id and m.get("kind") == "receipt" and m.get("channel") != "email"
    ]  # fmt: skip
    return receipt


@pytest.fixture
def completed(stack: Stack) -> tuple[str, str]:
    """A completed low-risk order whose undo window is open: (goal id, the receipt's view link)."""
    goal_id = stack.api.submit(f"shopper-{next(_shoppers):04d}", LOW_RISK_GOAL).json()["goalId"]
    assert stack.api.wait_for(goal_id)["status"] == "COMPLETED"
    stack.wait_until_flow_ended(goal_id)
    return goal_id, receipt_of(stack, goal_id)["viewUrl"]


def _html_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("text/html")
    assert f"data-code='{code}'" in response.text
    assert response.headers["cache-control"] == "no-store"


def _unchanged(stack: Stack, goal_id: str, events: list[str]) -> None:
    assert stack.api.goal(goal_id)["status"] == "COMPLETED"
    assert stack.events(goal_id) == events
    ledger = stack.ledger()
    assert len(ledger["charges"]) == 1 and ledger["refunds"] == []


def test_the_receipts_link_opens_the_page_of_the_completed_goal(stack: Stack, completed: tuple[str, str]):
    goal_id, view_url = completed
    events = stack.events(goal_id)

    page = stack.api.http.get(view_url)

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
    assert '<meta name="robots" content="noindex">' in page.text
    goal = stack.api.goal(goal_id)
    assert "Your order is placed." in page.text
    assert goal["receipt"]["orderId"] in page.text
    assert goal["plan"]["summary"]["total"]["amount_minor"] and "Order placed" in page.text
    recipient = goal["plan"]["summary"]["recipient"]
    assert recipient["address"]["line1"] not in page.text and recipient["phone"] not in page.text
    assert "Undo this order…" in page.text
    # GET /goals/{id} hands the client a link to the same page.
    assert urlsplit(goal["viewUrl"]).path == urlsplit(view_url).path
    # Opening the page (and its "are you sure?" step) changes nothing.
    assert stack.api.http.get(view_url + "&step=confirm-undo").status_code == 200
    _unchanged(stack, goal_id, events)


def test_forged_moved_and_expired_links_get_the_html_error_page(stack: Stack, completed: tuple[str, str]):
    goal_id, view_url = completed
    events = stack.events(goal_id)
    parts = urlsplit(view_url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    base = f"{parts.scheme}://{parts.netloc}"

    tampered_sig = {**query, "sig": ("A" if query["sig"][0] != "A" else "B") + query["sig"][1:]}
    _html_error(stack.api.http.get(f"{base}{parts.path}?{urlencode(tampered_sig)}"), 403, "LINK_INVALID")
    stretched = {**query, "exp": str(int(query["exp"]) + 86400)}
    _html_error(stack.api.http.get(f"{base}{parts.path}?{urlencode(stretched)}"), 403, "LINK_INVALID")
    _html_error(stack.api.http.get(f"{base}/shoppers/goals/g-{'0' * 26}?{parts.query}"), 403, "LINK_INVALID")
    _html_error(stack.api.http.get(f"{base}{parts.path}?exp=%C2%B2&kid=k1&sig=x"), 403, "LINK_INVALID")
    _html_error(stack.api.http.get(f"{base}{parts.path}"), 403, "LINK_INVALID")

    user_id = stack.api.goal(goal_id)["userId"]
    # Signed with the approval-link key ring: view links have a ring of their own.
    approval_ring = json.loads(
        boto3.client("secretsmanager").get_secret_value(SecretId=stack.local.link_secret_id)["SecretString"]
    )
    other_ring = sign_view_link(
        base, ViewClaims(goal_id, user_id, int(time.time()) + 3600), KeyRing.from_secret(approval_ring)
    )
    _html_error(stack.api.http.get(other_ring), 403, "LINK_INVALID")

    # A genuine signature whose time has passed: gone, not forged.
    stored = boto3.client("secretsmanager").get_secret_value(SecretId=stack.local.view_link_secret_id)
    secret = json.loads(stored["SecretString"])
    expired = sign_view_link(
        base, ViewClaims(goal_id, user_id, int(time.time()) - 5), KeyRing.from_secret(secret)
    )
    _html_error(stack.api.http.get(expired), 410, "LINK_EXPIRED")
    # The same link posted with the undo confirmation changes nothing either.
    expired_fields = {name: values[0] for name, values in parse_qs(urlsplit(expired).query).items()}
    posted = stack.api.http.post(
        f"{base}{parts.path}",
        content=urlencode({**expired_fields, "confirm": "undo"}),
        headers={"Content-Type": FORM},
    )
    _html_error(posted, 410, "LINK_EXPIRED")
    # A body that is not UTF-8 is refused before any work, as an HTML page.
    garbled = stack.api.http.post(view_url, content=b"\xff\xfe", headers={"Content-Type": FORM})
    assert 400 <= garbled.status_code < 500 and garbled.headers["content-type"].startswith("text/html")
    _unchanged(stack, goal_id, events)


def test_the_confirmed_undo_button_undoes_the_order_and_a_second_press_changes_nothing(
    stack: Stack, completed: tuple[str, str]
):
    goal_id, view_url = completed
    page = stack.api.http.get(view_url)

    confirming = submit(stack.api.http, page, "get")
    assert confirming.status_code == 200 and "Undo this order?" in confirming.text
    assert stack.api.goal(goal_id)["status"] == "COMPLETED"

    # The link alone, without the confirmation step's field, undoes nothing.
    unconfirmed = stack.api.http.post(view_url, content="", headers={"Content-Type": FORM})
    assert unconfirmed.status_code == 422 and "confirm the undo" in unconfirmed.text
    # Nor does a confirmation put in the URL: a link someone was sent must never undo by itself.
    in_url = stack.api.http.post(view_url + "&confirm=undo", content="", headers={"Content-Type": FORM})
    assert in_url.status_code == 422 and "confirm the undo" in in_url.text
    # A browser that says the form came from another site is refused.
    cross_site = submit(stack.api.http, confirming, "post", headers={"Sec-Fetch-Site": "cross-site"})
    _html_error(cross_site, 403, "CROSS_SITE")
    assert "undo.requested" not in stack.events(goal_id)

    undone = submit(stack.api.http, confirming, "post")
    assert undone.status_code == 202 and "Undo requested" in undone.text
    assert stack.api.wait_for(goal_id, {"UNDONE"})["status"] == "UNDONE"
    ledger = stack.ledger()
    assert len(ledger["charges"]) == 1 and len(ledger["refunds"]) == 1
    assert ledger["refunds"][0]["amount"] == ledger["charges"][0]["amount"]

    again = submit(stack.api.http, confirming, "post")
    assert again.status_code == 202 and "already undone" in again.text
    assert stack.ledger() == ledger
    assert stack.events(goal_id).count("undo.requested") == 1
    reopened = stack.api.http.get(view_url)
    assert (
        "The order was cancelled and refunded." in reopened.text and "Undo this order…" not in reopened.text
    )
    assert stack.api.audit(goal_id)["verification"]["valid"]


# --- in a real browser, on a phone -----------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    from tests.e2e.test_approval_page import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    from tests.e2e.test_approval_page import PHONE

    context = browser.new_context(**PHONE)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def screenshots(request: pytest.FixtureRequest) -> Path:
    directory = request.config.rootpath / "test-results" / "shopper-view"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _fits_the_screen(page: Any) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


@pytest.mark.browser
def test_a_shopper_on_a_phone_reads_the_order_and_undoes_it_after_confirming(
    stack: Stack, completed: tuple[str, str], phone: Any, screenshots: Path
):
    from playwright.sync_api import expect

    goal_id, view_url = completed
    goal = stack.api.goal(goal_id)

    phone.goto(view_url)
    expect(phone.get_by_test_id("status")).to_have_text("Your order is placed.")
    total = Money.model_validate(goal["plan"]["summary"]["total"]).format()
    expect(phone.get_by_test_id("total")).to_have_text(total)
    expect(phone.get_by_test_id("order-id")).to_have_text(goal["receipt"]["orderId"])
    expect(phone.get_by_test_id("timeline")).to_contain_text("Order placed")
    expect(phone.get_by_test_id("recipient")).not_to_contain_text(
        goal["plan"]["summary"]["recipient"]["address"]["line1"]
    )
    _fits_the_screen(phone)
    phone.screenshot(path=screenshots / "1-opened.png", full_page=True)

    # The first press only asks; keeping the order changes nothing.
    phone.get_by_role("button", name="Undo this order…").click()
    dialog = phone.get_by_role("alertdialog")
    expect(dialog).to_contain_text("Undo this order?")
    expect(dialog).to_contain_text(goal["receipt"]["orderId"])
    _fits_the_screen(phone)
    phone.screenshot(path=screenshots / "2-confirm.png", full_page=True)
    dialog.get_by_role("link", name="Keep my order").click()
    expect(phone.get_by_role("alertdialog")).to_have_count(0)
    assert stack.api.goal(goal_id)["status"] == "COMPLETED" and stack.ledger()["refunds"] == []

    phone.get_by_role("button", name="Undo this order…").click()
    phone.get_by_role("alertdialog").get_by_role("button", name="Yes, undo it").click()
    expect(phone.get_by_test_id("outcome")).to_contain_text("Undo requested")
    _fits_the_screen(phone)
    phone.screenshot(path=screenshots / "3-undo-requested.png", full_page=True)

    assert stack.api.wait_for(goal_id, {"UNDONE"})["status"] == "UNDONE"
    assert len(stack.ledger()["refunds"]) == 1
    phone.goto(view_url)
    expect(phone.get_by_test_id("status")).to_have_text("The order was cancelled and refunded.")
    expect(phone.get_by_test_id("timeline")).to_contain_text("Order cancelled and refunded")
    phone.screenshot(path=screenshots / "4-undone.png", full_page=True)
    assert (screenshots / "4-undone.png").stat().st_size > 10_000
