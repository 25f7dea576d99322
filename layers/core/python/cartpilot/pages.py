"""Server-rendered pages (Jinja2, autoescaped): the approval page an approver opens."""

from __future__ import annotations

import functools

from jinja2 import Environment, PackageLoader, select_autoescape

from cartpilot.approval_desk import ApprovalView
from cartpilot.brands import BrandConfig
from cartpilot.privacy import describe_recipient


@functools.cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("cartpilot", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_approval_page(
    view: ApprovalView, brand: BrandConfig, *, action_url: str, error: str | None = None
) -> str:
    summary = view.plan.summary
    undo_hours = brand.undoWindowSeconds // 3600
    return (
        _environment()
        .get_template("approval.html.j2")
        .render(
            brand=brand,
            approval=view.approval,
            plan=view.plan,
            summary=summary,
            recipient=describe_recipient(summary.recipient),
            meets_deadline=summary.deliverBy is None or summary.shipping.latestDelivery <= summary.deliverBy,
            phrase=view.phrase,
            link=view.link,
            outcome=view.outcome,
            action_url=action_url,
            undo_hours=undo_hours,
            error=error,
        )
    )
