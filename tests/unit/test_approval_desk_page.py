"""The approval page as rendered: what an approver reads, and nothing an attacker can inject."""

from __future__ import annotations

import dataclasses
import re

from cartpilot.approvals.page import image_origins, render_approval_page
from tests.unit.stages import STRONG_GOAL, Pending, wait_for_approval


def text_of(html: str, test_id: str) -> str:
    match = re.search(rf'data-testid="{re.escape(test_id)}"[^>]*>([^<]*)<', html)
    assert match, f"no element {test_id}"
    return match.group(1).strip()


def test_the_page_shows_what_the_approver_is_agreeing_to(merchant, brand, users):
    strong: Pending = wait_for_approval(merchant, brand, users, STRONG_GOAL)
    view = strong.desk.open(strong.approval_id, strong.link)
    html = render_approval_page(view, brand, action_url="/prod/approvals/" + strong.approval_id)

    assert text_of(html, "total") == "2117.00 CNY"
    assert text_of(html, "phrase") == "CONFIRM BUY 2117.00 CNY"
    assert text_of(html, "total-without-s2") == "2097.00 CNY"
    assert text_of(html, "phrase-without-s2") == "CONFIRM BUY 2097.00 CNY"
    assert re.search(r'<input type="checkbox" name="keep" value="s2" checked>', html)
    assert '<input type="hidden" name="offered" value="s2">' in html
    assert "3 × 699.00 CNY" in html.replace('<span data-testid="quantity">3</span>', "3")
    assert "needed by 2027-02-04" in html and text_of(html, "deadline") == "(on time)"
    assert "Zhang M., Beijing, BJ, CN (•••• 2266)" in html
    for personal in ("Gongti", "1088", "100027"):
        assert personal not in html
    assert 'data-testid="reasons"' in html and html.count("<li data-policy=") >= 1
    assert "undo it for 3 days" in html
    assert f'name="sig" value="{strong.link.sig}"' in html


def test_images_come_only_from_web_origins_and_fall_back_to_a_placeholder(pending: Pending, brand):
    view = pending.desk.open(pending.approval_id, pending.link)
    items = view.plan.summary.items
    shown = view.plan.model_copy(
        update={
            "summary": view.plan.summary.model_copy(
                update={
                    "items": [
                        items[0].model_copy(update={"imageUrl": "https://img.example.com/shoe.png"}),
                        items[1].model_copy(update={"imageUrl": "javascript:alert(1)"}),
                    ]
                }
            )
        }
    )
    view = dataclasses.replace(view, plan=shown)
    html = render_approval_page(view, brand, action_url="/approvals/x")
    assert '<img src="https://img.example.com/shoe.png"' in html
    assert "javascript:" not in html and '<span aria-hidden="true">G</span>' in html
    assert image_origins(view) == ["https://img.example.com"]


def test_what_a_shopper_typed_is_shown_as_text_never_as_markup(pending: Pending, brand):
    view = pending.desk.open(pending.approval_id, pending.link)
    view = dataclasses.replace(
        view, plan=view.plan.model_copy(update={"goal": '<script>alert("x")</script>'})
    )
    html = render_approval_page(view, brand, action_url="/approvals/x")
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_the_goal_is_shown_with_the_personal_data_a_shopper_typed_masked(pending: Pending, brand):
    """Whoever holds the link sees the goal as the audit keeps it, not the phone, email or card in it."""
    view = pending.desk.open(pending.approval_id, pending.link)
    typed = (
        "Socks for me; call +86 186 2100 7788 or mail wu.jun@example.net, card 4111 1111 1111 1111, size 42"
    )
    view = dataclasses.replace(view, plan=view.plan.model_copy(update={"goal": typed}))
    html = render_approval_page(view, brand, action_url="/approvals/x")

    shown = text_of(html, "goal")
    for personal in ("2100", "7788", "wu.jun", "example.net", "4111"):
        assert personal not in html
    assert shown.startswith("Socks for me; call *****") and shown.endswith("size 42")


def test_after_a_decision_the_page_says_what_was_decided_and_offers_no_form(pending: Pending, brand):
    view = pending.desk.decide(pending.approval_id, pending.link, "approve", None, drop=["s2"])
    html = render_approval_page(view, brand, action_url="/approvals/x")
    assert text_of(html, "decision") == "This order was approved: 699.00 CNY is being placed."
    assert "Left out: 1 x Gift Wrap (20.00 CNY)." in html
    assert "<form" not in html and "Gift Wrap" not in text_of(html, "total")
