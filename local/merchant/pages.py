"""The merchant's web pages the UCP messages link to: storefront, products, policies, media, and the
checkout page a ``continue_url`` hands the buyer to. Placeholders, but real URLs that answer."""

from __future__ import annotations

from html import escape

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response

from cartpilot_local.merchant.state import MerchantState

SHOP_NAME = "Sandbox Outfitters"


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><title>{escape(title)} · {SHOP_NAME}</title><h1>{escape(title)}</h1>{body}"
    )


def add_pages(app: FastAPI, merchant: MerchantState) -> None:
    @app.get("/", response_class=HTMLResponse)
    async def storefront() -> HTMLResponse:
        return _page(SHOP_NAME, "<p>Running shoes, apparel, books and more, shipped from Shanghai.</p>")

    @app.get("/products/{product_id}", response_class=HTMLResponse)
    async def product_page(product_id: str) -> HTMLResponse:
        product = merchant.catalog.product(product_id)
        if product is None:
            return HTMLResponse("<h1>Not found</h1>", status_code=404)
        return _page(product.title, f"<p>{escape(product.description)}</p>")

    @app.get("/checkout/{session_id}", response_class=HTMLResponse)
    async def checkout_page(session_id: str) -> HTMLResponse:
        """Where a continue_url leads: the buyer finishes the checkout here, on the merchant's site."""
        session = merchant.sessions.get(session_id)
        if session is None:
            return HTMLResponse("<h1>Not found</h1>", status_code=404)
        reason = f"<p>{escape(session.escalation.content)}</p>" if session.escalation else ""
        return _page(
            f"Checkout {session.id}", f"{reason}<p>{len(session.lines)} item(s), {session.currency}.</p>"
        )

    @app.get("/media/{name}")
    async def media(name: str) -> Response:
        label = escape(name.removesuffix(".svg"))[:40]
        svg = (
            '<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400">'
            '<rect width="100%" height="100%" fill="#e8ecef"/>'
            '<text x="50%" y="50%" text-anchor="middle" font-family="sans-serif" font-size="16">'
            f"{label}</text></svg>"
        )
        return Response(svg, media_type="image/svg+xml")

    @app.get("/policies/{name}", response_class=HTMLResponse)
    async def policy(name: str) -> HTMLResponse:
        return _page(name.replace("-", " ").title(), "<p>Sandbox Outfitters policy placeholder.</p>")
