"""The approval page in a real browser (Debian's chromium, headless) on a phone-sized screen."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
# 5 pairs at 499.00 plus gift-wrap at 20.00: above 2,000.00 CNY, so the approver types a phrase.
STRONG_GOAL = "Buy me 5 pairs of running shoes, size 42, gift-wrap them and ship them before Feb 5"
_shoppers = itertools.count(401)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(**PHONE)  # type: ignore[arg-type]
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def screenshots(request: pytest.FixtureRequest) -> Path:
    directory = request.config.rootpath / "test-results" / "approval-page"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def test_an_approver_on_a_phone_leaves_out_gift_wrap_types_the_phrase_and_approves(
    stack: Stack, phone: Page, screenshots: Path
):
    goal_id = stack.api.submit(f"shopper-{next(_shoppers):04d}", STRONG_GOAL).json()["goalId"]
    link = stack.api.wait_for_approval_link(goal_id)

    phone.goto(link.url)
    expect(phone.get_by_test_id("total")).to_have_text("2515.00 CNY")
    expect(phone.get_by_test_id("phrase")).to_have_text("CONFIRM BUY 2515.00 CNY")
    expect(phone.get_by_test_id("deadline")).to_have_text("(on time)")
    expect(phone.get_by_test_id("recipient")).to_contain_text("Beijing")
    expect(phone.get_by_test_id("recipient")).not_to_contain_text("Test Road")
    expect(phone.locator("[data-policy]").first).to_be_visible()
    images = phone.locator(".thumb img")
    expect(images).to_have_count(2)
    assert all(width > 0 for width in images.evaluate_all("all => all.map(img => img.naturalWidth)"))
    # Usable on a phone: nothing is wider than the screen.
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.screenshot(path=screenshots / "1-opened.png", full_page=True)

    # 2,000.00 CNY or more: the shopper's one-time code as well, sent by SMS when asked for.
    phone.get_by_role("button", name="Send a code to my phone").click()
    expect(phone.get_by_test_id("notice")).to_contain_text("six-digit code")
    (text,) = [
        m["text"] for m in stack.api.outbox() if m.get("kind") == "verification-code" and goal_id in m["text"]
    ]
    code = text[:6]

    gift_wrap = phone.get_by_role("checkbox", name=re.compile("Gift Wrap"))
    expect(gift_wrap).to_be_checked()
    gift_wrap.uncheck()
    expect(phone.get_by_test_id("total-without-s2")).to_have_text("2495.00 CNY")
    phrase = phone.get_by_test_id("phrase-without-s2").inner_text()
    assert phrase == "CONFIRM BUY 2495.00 CNY"

    # The phrase for the full total does not approve an order without the gift-wrap.
    phone.get_by_label(re.compile("To approve, type")).fill("CONFIRM BUY 2515.00 CNY")
    phone.get_by_role("button", name="Approve", exact=True).click()
    expect(phone.get_by_role("alert")).to_contain_text("CONFIRM BUY 2495.00 CNY")
    expect(phone.get_by_role("checkbox", name=re.compile("Gift Wrap"))).not_to_be_checked()
    assert stack.api.goal(goal_id)["status"] == "AWAITING_APPROVAL"

    phone.get_by_label(re.compile("To approve, type")).fill(phrase)
    phone.get_by_label(re.compile("one-time code")).fill(code)
    phone.screenshot(path=screenshots / "2-ready-to-approve.png", full_page=True)
    phone.get_by_role("button", name="Approve", exact=True).click()

    expect(phone.get_by_test_id("decision")).to_have_text(
        "This order was approved: 2495.00 CNY is being placed."
    )
    expect(phone.get_by_text("Left out: 1 x Gift Wrap (Standard) (20.00 CNY).")).to_be_visible()
    expect(phone.get_by_test_id("total")).to_have_text("2495.00 CNY")
    phone.screenshot(path=screenshots / "3-approved.png", full_page=True)

    goal = stack.api.wait_for(goal_id)
    assert goal["status"] == "COMPLETED"
    assert [item["category"] for item in goal["plan"]["summary"]["items"]] == ["running-shoes"]
    assert [step["action"] for step in goal["steps"]] == [
        "checkout.create",
        "fulfillment.select",
        "payment.complete",
    ]
    (charge,) = stack.ledger()["charges"]
    assert charge["amount"] == 249500
    assert (screenshots / "3-approved.png").stat().st_size > 10_000
