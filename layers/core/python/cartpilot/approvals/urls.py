"""One canonical URL per approval page: ``…/approvals/{id}``, never ``…/approvals/{id}/``.

API Gateway's ``{approvalId}`` resource, and the resolver behind it, serve the page with a trailing
slash too, but the page's form posts to a URL relative to the page (behind API Gateway the page's
URL carries the stage, ``/v1``, which the event's path does not), and from ``…/{id}/`` that
resolves to ``…/{id}/{id}``. So the slash form is redirected to the canonical one, relative to
itself (so the stage, unseen here, is kept), with the link's query kept.
"""

from __future__ import annotations

from urllib.parse import urlencode

APPROVAL_ROUTES = ("/approvals/", "/staff/approvals/")


class NoSuchPage(LookupError):
    """More than one trailing slash: resolvers disagree on where "../" leads from there, so the
    page is not served at all."""


def canonical_location(path: str, query: dict[str, list[str]] | None) -> str | None:
    """Where ``path`` (an approval route with a trailing slash) belongs, relative to ``path``
    itself; None when the path is canonical already (or not an approval page)."""
    if not path.startswith(APPROVAL_ROUTES) or not path.endswith("/"):
        return None
    trimmed = path.rstrip("/")
    approval_id = trimmed.rsplit("/", 1)[-1]
    if trimmed.endswith("/approvals") or not approval_id:
        return None
    if len(path) - len(trimmed) > 1:
        raise NoSuchPage(path)
    # From ".../{id}/", "../" leads back to ".../".
    encoded = urlencode(query or {}, doseq=True)
    return f"../{approval_id}?{encoded}" if encoded else f"../{approval_id}"
