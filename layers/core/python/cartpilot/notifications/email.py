"""Receipts, shipping notices and fallback messages as email: HTML and plain text from Jinja2
templates, in the brand's name and the approval page's look.

The HTML is autoescaped (product titles and reasons are other people's text); the plain text is
rendered apart, unescaped, as text. Neither holds the shopper's address, phone or street: the
recipient appears as the receipt already masks it (``audit.privacy.describe_recipient``).
"""

from __future__ import annotations

import functools
from email.utils import formataddr
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from cartpilot.brands.config import BrandConfig
from cartpilot.goals.model import GoalRecord
from cartpilot.notifications.ports import Email

# The kinds that go by email as well as the topic: what people keep.
EMAILED_KINDS = frozenset({"receipt", "shipped", "delivered"})

_HEADINGS = {
    "receipt": "Your order is placed",
    "shipped": "Your order is on its way",
    "delivered": "Your order was delivered",
    "approval_request": "Please approve your order",
    "approval-reminder": "Your approval link expires soon",
}
# Body fields shown as lines of a message that has no template of its own, in this order.
_SHOWN_FIELDS = (
    ("reason", "Why"),
    ("total", "Total"),
    ("status", "Status"),
    ("message", "Note"),
    ("carrier", "Carrier"),
    ("trackingNumber", "Tracking number"),
    ("phrase", "Type to confirm"),
)
# Fields a kind's own template section already shows, so the generic lines leave them out.
_TEMPLATED_FIELDS = {
    "shipped": ("carrier", "trackingNumber"),
    "delivered": ("carrier", "trackingNumber"),
}
# Fields that are links the shopper follows (their own approval link, the merchant's page).
_LINK_FIELDS = ("link", "continueUrl", "viewUrl", "trackingUrl")


@functools.cache
def _html() -> Environment:
    return Environment(
        loader=PackageLoader("cartpilot.notifications", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


@functools.cache
def _text() -> Environment:
    # Plain text is not HTML: escaping it would show "&amp;" to the reader.
    return Environment(
        loader=PackageLoader("cartpilot.notifications", "templates"),
        autoescape=False,  # noqa: S701
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def sender_address(brand: BrandConfig, identity: str) -> str:
    """The From address: brand.yaml ``notifications.sender``, else the verified identity itself
    (an address), else ``receipts@`` the verified domain."""
    return brand.notifications.get("sender") or (identity if "@" in identity else f"receipts@{identity}")


def compose_email(
    *,
    kind: str,
    goal: GoalRecord | None,
    goal_id: str,
    subject: str,
    body: dict[str, Any],
    brand: BrandConfig,
    to: str,
    sender: str,
) -> Email:
    context = {
        "brand": brand,
        "kind": kind,
        "heading": _HEADINGS.get(kind, subject),
        "subject": subject,
        "goal_id": goal_id,
        "receipt": goal.receipt if goal is not None else None,
        "body": body,
        "lines": [
            (label, str(body[name]))
            for name, label in _SHOWN_FIELDS
            if body.get(name) and name not in _TEMPLATED_FIELDS.get(kind, ())
        ],
        "links": [str(body[name]) for name in _LINK_FIELDS if isinstance(body.get(name), str)],
    }
    return Email(
        to=to,
        sender=formataddr((brand.displayName, sender)),
        subject=subject,
        html=_html().get_template("email.html.j2").render(context),
        text=_text().get_template("email.txt.j2").render(context),
        kind=kind,
        goal_id=goal_id,
    )
