"""A platform's checkout calls, written from each version's schemas, for driving the sandbox in tests.

Independent of CartPilot's client: bodies are built here from the 2026-01-11 and 2026-04-08
``checkout.json`` / ``fulfillment.json`` request rules (create, update, complete).
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

BEIJING = {
    "street_address": "7 Gongti North Road, Building 3",
    "address_locality": "Beijing",
    "address_region": "BJ",
    "postal_code": "100027",
    "address_country": "CN",
    "first_name": "Zhang",
    "last_name": "Min",
    "phone_number": "+86 139 1088 2266",
}
SAN_FRANCISCO = {"street_address": "1 Market St", "address_locality": "San Francisco", "address_region": "CA",
                 "postal_code": "94105", "address_country": "US"}  # fmt: skip
SHOE_42 = "rs-stride-lite-black-42"
GIFT_WRAP = "gift-wrap-standard"


def new_key() -> str:
    return str(uuid.uuid4())


class UcpShopper:
    def __init__(self, http: httpx.Client, version: str) -> None:
        self.http = http
        self.version = version
        self.legacy = version == "2026-01-11"

    # --- bodies ------------------------------------------------------------------------------

    def create_body(self, *items: tuple[str, int], currency: str = "CNY") -> dict[str, Any]:
        body: dict[str, Any] = {
            "line_items": [{"item": {"id": item}, "quantity": quantity} for item, quantity in items],
            "buyer": {"first_name": "Lin", "last_name": "Wei", "email": "lin.wei@example.com"},
        }
        if self.legacy:
            body |= {"currency": currency, "payment": {}}  # required in a 2026-01-11 create
        else:
            body["context"] = {"currency": currency}
        return body

    def update_body(
        self,
        session: dict[str, Any],
        *,
        destination: dict[str, Any] | None = None,
        option: str | None = None,
        quantities: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        """The whole checkout again (PUT replaces it), optionally with a destination and an option."""
        lines = [
            {
                "id": line["id"],
                "item": {"id": line["item"]["id"]},
                "quantity": (quantities or {}).get(line["id"], line["quantity"]),
            }
            for line in session["line_items"]
        ]
        body: dict[str, Any] = {"line_items": lines}
        if self.legacy:
            body |= {"id": session["id"], "currency": session["currency"], "payment": {}}
        method = session.get("fulfillment", {}).get("methods", [{}])[0]
        if destination is not None or option is not None:
            sent: dict[str, Any] = {"id": method["id"], "line_item_ids": [line["id"] for line in lines]}
            if not self.legacy:
                sent["type"] = "shipping"
            if destination is not None:
                sent["destinations"] = [destination]
            else:
                sent["destinations"] = method["destinations"]
                sent["selected_destination_id"] = method["selected_destination_id"]
            if option is not None:
                sent["groups"] = [{"id": method["groups"][0]["id"], "selected_option_id": option}]
            body["fulfillment"] = {"methods": [sent]}
        return body

    def payment_body(self, token: str, *, handler_id: str = "sandbox_tokenizer") -> dict[str, Any]:
        credential = {"type": "token", "token": token}
        if self.legacy:
            return {
                "payment_data": {
                    "id": "instrument_1",
                    "handler_id": handler_id,
                    "type": "card",
                    "brand": "visa",
                    "last_digits": "4242",
                    "credential": credential,
                },
                "risk_signals": {"session_id": "s-1"},
            }
        return {
            "payment": {
                "instruments": [
                    {
                        "id": "instrument_1",
                        "handler_id": handler_id,
                        "type": "card",
                        "selected": True,
                        "display": {"brand": "visa", "last_digits": "4242"},
                        "credential": credential,
                    }
                ]
            },
            "signals": {"dev.ucp.buyer_ip": "203.0.113.42"},
        }

    # --- calls -------------------------------------------------------------------------------

    def create(
        self, *items: tuple[str, int], key: str | None = None, currency: str = "CNY"
    ) -> httpx.Response:
        return self.http.post(
            "/checkout-sessions",
            json=self.create_body(*items, currency=currency),
            headers={"Idempotency-Key": key or new_key()},
        )

    def update(self, session: dict[str, Any], key: str | None = None, **changes: Any) -> httpx.Response:
        return self.http.put(
            f"/checkout-sessions/{session['id']}",
            json=self.update_body(session, **changes),
            headers={"Idempotency-Key": key or new_key()},
        )

    def ship(
        self, session: dict[str, Any], *, destination: dict[str, Any] = BEIJING, option: str = "standard"
    ) -> dict[str, Any]:
        """Sets the destination, adopts the id the merchant gives it, then chooses ``option``."""
        with_destination = self.update(session, destination=destination)
        assert with_destination.status_code == 200, with_destination.text
        shipped = self.update(with_destination.json(), option=option)
        assert shipped.status_code == 200, shipped.text
        return dict(shipped.json())

    def ready(self, *items: tuple[str, int], option: str = "standard") -> dict[str, Any]:
        created = self.create(*(items or ((SHOE_42, 1), (GIFT_WRAP, 1))))
        assert created.status_code == 201, created.text
        return self.ship(created.json(), option=option)

    def token(self, payment_method_id: str = "pm_user1_visa") -> str:
        response = self.http.post("/psp/tokens", json={"payment_method_id": payment_method_id})
        assert response.status_code == 201, response.text
        return str(response.json()["token"])

    def complete(
        self, session_id: str, token: str, *, key: str | None = None, handler_id: str = "sandbox_tokenizer"
    ) -> httpx.Response:
        return self.http.post(
            f"/checkout-sessions/{session_id}/complete",
            json=self.payment_body(token, handler_id=handler_id),
            headers={"Idempotency-Key": key or new_key()},
        )

    def cancel(self, session_id: str, key: str | None = None) -> httpx.Response:
        return self.http.post(
            f"/checkout-sessions/{session_id}/cancel", headers={"Idempotency-Key": key or new_key()}
        )

    def ledger(self) -> dict[str, Any]:
        return dict(self.http.get("/_sandbox/ledger").json())
