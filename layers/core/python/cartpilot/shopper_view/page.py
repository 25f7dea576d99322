"""The shopper's page of one goal (Jinja2, autoescaped; no scripts, as the API's CSP allows none).

The confirmation step works without JavaScript: the undo button is a GET form that reopens the page
asking "are you sure?" (GET changes nothing), and only that page's POST, carrying the link and
``confirm=undo``, asks for the undo. Both forms post to the page's own URL (no ``action``), so the
API stage in the URL and a trailing slash cannot send them elsewhere.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from jinja2 import Environment, PackageLoader, select_autoescape

from cartpilot.approvals.page import ItemRow, item_image_origins, item_rows
from cartpilot.audit.privacy import describe_recipient, scrub_text
from cartpilot.brands.config import BrandConfig
from cartpilot.goals.model import delivery_estimate
from cartpilot.shopper_view.desk import CONFIRM_UNDO, ShopperView

CONFIRM_STEP = "confirm-undo"


@functools.cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("cartpilot.shopper_view", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _rows(view: ShopperView) -> list[ItemRow]:
    return item_rows(view.plan.summary.items) if view.plan is not None else []


def image_origins(view: ShopperView) -> list[str]:
    """The origins the page loads product images from (for the img-src policy), from checked parts."""
    return item_image_origins(view.plan.summary.items) if view.plan is not None else []


def render_shopper_page(view: ShopperView, brand: BrandConfig, *, error: str | None = None) -> str:
    plan = view.plan
    summary = plan.summary if plan else None
    expires_at = view.link.expires_at()
    return (
        _environment()
        .get_template("goal.html.j2")
        .render(
            brand=brand,
            view=view,
            goal=view.goal,
            # The goal as the audit keeps it: phones, emails, card numbers and street addresses masked.
            goal_text=scrub_text(view.goal.goal),
            summary=summary,
            rows=_rows(view),
            recipient=describe_recipient(summary.recipient) if summary else None,
            delivery=delivery_estimate(summary.shipping) if summary else None,
            receipt=view.goal.receipt,
            link=view.link,
            confirm_step=CONFIRM_STEP,
            confirm_value=CONFIRM_UNDO,
            expires=(
                datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%d %H:%M UTC") if expires_at else None
            ),
            error=error,
        )
    )
