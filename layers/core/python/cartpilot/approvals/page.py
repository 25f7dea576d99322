"""Server-rendered pages (Jinja2, autoescaped): the approval page an approver opens.

The page works without JavaScript (the API's Content-Security-Policy allows none), so
everything a choice changes, such as the total and the confirmation phrase without an
optional step, is computed here and shown next to the choice.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from jinja2 import Environment, PackageLoader, select_autoescape

from cartpilot.approvals.desk import ApprovalView
from cartpilot.approvals.images import image_source
from cartpilot.approvals.staff import is_staff_approval
from cartpilot.approvals.step_up import STEP_UP_LOCK
from cartpilot.audit.privacy import describe_recipient, scrub_text
from cartpilot.brands.config import BrandConfig
from cartpilot.goals.model import delivery_estimate
from cartpilot.goals.undo import NO_UNDO_NOTICE, offers_undo, undo_action
from cartpilot.kernel.money import Money
from cartpilot.plans.costs import plan_cost_summary
from cartpilot.plans.model import PlanItem


@functools.cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("cartpilot.approvals", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


@dataclass(frozen=True)
class ItemRow:
    item: PlanItem
    line_total: Money
    image_url: str | None
    placeholder: str


def _safe_image(url: str | None) -> str | None:
    """Only plain web images (see ``approvals.images``); anything else gets the placeholder."""
    source = image_source(url)
    return source.url if source else None


def item_image_origins(items: Sequence[PlanItem]) -> list[str]:
    """The origins a page loads product images from (for the response's img-src policy): rebuilt
    from checked parts, never copied from the merchant's text. The shopper's view shares it."""
    return sorted({source.origin for item in items if (source := image_source(item.imageUrl))})


def item_rows(items: Sequence[PlanItem]) -> list[ItemRow]:
    """The plan's lines as a page shows them (the approval page and the shopper's view)."""
    return [
        ItemRow(
            item=item,
            line_total=item.unitPrice.times(item.quantity),
            image_url=_safe_image(item.imageUrl),
            placeholder=(item.category[:1] or "?").upper(),
        )
        for item in items
    ]


def image_origins(view: ApprovalView) -> list[str]:
    return item_image_origins(view.plan.summary.items)


def _rows(view: ApprovalView) -> list[ItemRow]:
    return item_rows(view.plan.summary.items)


def _undo_terms(seconds: int) -> str:
    if seconds >= 2 * 86400 and seconds % 86400 == 0:
        return f"{seconds // 86400} days"
    if seconds >= 3600:
        return f"{seconds // 3600} hours"
    return f"{max(seconds // 60, 1)} minutes"


def render_approval_page(
    view: ApprovalView,
    brand: BrandConfig,
    *,
    action_url: str,
    error: str | None = None,
    dropped: Collection[str] = (),
) -> str:
    """``dropped``: optional steps the approver had unticked, kept unticked when the page comes back."""
    summary = view.plan.summary
    return (
        _environment()
        .get_template("approval.html.j2")
        .render(
            brand=brand,
            approval=view.approval,
            plan=view.plan,
            # Whoever holds the link sees the goal as the audit keeps it: phones, emails, card and
            # identity numbers and street addresses the shopper typed are masked.
            goal_text=scrub_text(view.plan.goal),
            summary=summary,
            rows=_rows(view),
            recipient=describe_recipient(summary.recipient),
            # A window-less option is never "on time": the merchant promised no date.
            meets_deadline=summary.deliverBy is None or summary.shipping.arrives_by(summary.deliverBy),
            delivery=delivery_estimate(summary.shipping),
            phrase=view.phrase,
            options=view.options,
            dropped=set(dropped),
            link=view.link,
            outcome=view.outcome,
            undelivered=view.undelivered,
            action_url=action_url,
            undo_terms=_undo_terms(brand.undoWindowSeconds),
            undo_offered=offers_undo(view.plan),
            undo_action=undo_action(view.plan),
            no_undo_notice=NO_UNDO_NOTICE,
            expires=datetime.fromtimestamp(view.approval.expiresAt, UTC).strftime("%Y-%m-%d %H:%M UTC"),
            error=error,
            code=view.code,
            notice=view.notice,
            step_up_lock=STEP_UP_LOCK,
            # Staff weigh what the order cost to plan; the shopper's page leaves it out.
            planner_cost=plan_cost_summary(view.plan) if is_staff_approval(view.approval) else None,
        )
    )
