"""Applying a platform's ``fulfillment`` to a session (fulfillment.md).

The sandbox offers one shipping method (present from the start) with one group (``allows_multi_destination`` false, no
pickup). The merchant assigns the ids: the method's, the group's and each destination's. A platform
refers to a destination by the id the merchant gave it; a destination sent without a known id is a
new one and gets a new id, which the platform is expected to adopt. Options exist only once a
deliverable destination is selected.

Problems with what was asked (an unknown id, an option not on offer) are returned as messages for
this response, and the rest of the request still applies.
"""

from __future__ import annotations

from collections.abc import Callable

from cartpilot_local.merchant.payloads import MethodRequest
from cartpilot_local.merchant.protocol import Message
from cartpilot_local.merchant.sessions import GROUP_ID, METHOD_ID, CheckoutSession, Destination
from cartpilot_local.merchant.shipping import ShippingQuote

Offered = Callable[[CheckoutSession], list[ShippingQuote]]

_BASE = "$.fulfillment.methods[0]"


def apply_fulfillment(
    session: CheckoutSession, methods: tuple[MethodRequest, ...], offered: Offered
) -> list[Message]:
    """Full replacement of the session's fulfillment; returns messages about what could not apply."""
    if not methods:
        session.destinations = []
        session.selected_destination_id = session.selected_option_id = None
        return []
    notes: list[Message] = []
    if len(methods) > 1:
        notes.append(
            _invalid("one shipping method per checkout; only the first was used", "$.fulfillment.methods")
        )
    method = methods[0]
    if method.type != "shipping":
        return [*notes, _invalid("only shipping is offered", f"{_BASE}.type")]
    if method.id is not None and method.id != METHOD_ID:
        notes.append(
            _invalid(f"no fulfillment method has id {method.id}; ours is {METHOD_ID}", f"{_BASE}.id")
        )
    session.method_id = METHOD_ID

    if method.destinations is not None:
        _replace_destinations(session, method)
    if method.selects_destination:
        chosen = method.selected_destination_id
        if chosen is not None and chosen not in {d.id for d in session.destinations}:
            notes.append(
                _invalid(
                    f"no destination has id {chosen}; use the id the merchant assigned",
                    f"{_BASE}.selected_destination_id",
                )
            )
            chosen = None
        session.selected_destination_id = chosen
    elif method.destinations is not None:
        known = {d.id for d in session.destinations}
        if len(session.destinations) == 1:
            session.selected_destination_id = session.destinations[0].id
        elif session.selected_destination_id not in known:
            session.selected_destination_id = None

    on_offer = {quote.id for quote in offered(session)}
    for index, group in enumerate(method.groups or ()):
        path = f"{_BASE}.groups[{index}]"
        if group.id is not None and group.id != GROUP_ID:
            notes.append(
                _invalid(f"no fulfillment group has id {group.id}; ours is {GROUP_ID}", f"{path}.id")
            )
            continue
        if not group.selects_option:
            continue
        option = group.selected_option_id
        if option is not None and option not in on_offer:
            notes.append(
                _invalid(
                    f"shipping option {option} is not offered for this destination",
                    f"{path}.selected_option_id",
                )
            )
            option = None
        session.selected_option_id = option
    if session.selected_option_id not in on_offer:
        session.selected_option_id = None  # a choice made for another destination does not carry over
    return notes


def _replace_destinations(session: CheckoutSession, method: MethodRequest) -> None:
    known = {d.id for d in session.destinations}
    replaced = []
    for given in method.destinations or ():
        destination_id = given.id if given.id in known else session.new_destination_id()
        replaced.append(Destination(destination_id, dict(given.postal)))
    session.destinations = replaced


def _invalid(content: str, path: str) -> Message:
    return Message.error("invalid", content, path=path)
