"""The commerce ports over UCP REST, in whichever version discovery negotiates with the merchant.

Nothing here names a field: the codec of the negotiated version (``commerce/codecs``) builds every
body and reads every answer, and ``MerchantClient`` owns retries, timeouts, headers, signatures and
error envelopes. This module holds the flow the specification prescribes:

- a shipping option exists only inside a checkout once it has a destination (fulfillment.md), so a
  quote opens a pricing session, sets the destination, reads the merchant's groups, options and
  line prices, and cancels the session; it charges nothing;
- selecting sets the destination (adopting the id the merchant gives it), reads the groups back
  and chooses the planned option in each, by id, else by the same title and price; each of its
  updates has a key derived from the step's, and a body that comes out the same on a retry;
- a checkout that ``requires_escalation`` hands the buyer the merchant's ``continue_url``
  (``MerchantEscalation``); its error messages are refusals in the merchant's words;
- orders are cancelled only where the merchant advertises ``com.cartpilot.order_cancel``, and
  returned only where it advertises ``com.cartpilot.order_return``.

The merchant is discovered on first use, never at construction or import.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from cartpilot.commerce.breaker import BreakerPolicy, RetryBudget
from cartpilot.commerce.codecs import WireCodec, codec_for
from cartpilot.commerce.codecs.wire import (
    CheckoutUpdate,
    JsonObject,
    LineUpdate,
    MalformedAnswer,
    MethodUpdate,
    WireCheckout,
    destination_body,
    kept_lines,
    order_from_completed,
    raise_for_escalation,
    refusal_of,
    return_id_of,
    without_lines_added_by,
)
from cartpilot.commerce.discovery import MerchantDiscovery
from cartpilot.commerce.errors import MerchantOutcomeUnknown, MerchantRejected, UndoUnsupported
from cartpilot.commerce.http import MerchantAuth, MerchantClient, RequestSigner, RetryPolicy, Timeouts
from cartpilot.commerce.platform_profile import (
    CATALOG_LOOKUP,
    CATALOG_SEARCH,
    FULFILLMENT,
    ORDER_CANCEL,
    ORDER_RETURN,
    SUPPORTED_VERSIONS,
    profile_url,
)
from cartpilot.commerce.ports import (
    Buyer,
    CartLine,
    CheckoutSession,
    MerchantProfile,
    Order,
    PaymentCredential,
    Product,
    ProductVariant,
    Quote,
    Recipient,
    ReturnFiled,
    SearchQuery,
    ShippingOption,
)

log = logging.getLogger("cartpilot.commerce.ucp")

SEARCH: Final = "/catalog/search"
LOOKUP: Final = "/catalog/lookup"
SESSIONS: Final = "/checkout-sessions"
SESSION: Final = "/checkout-sessions/{id}"
COMPLETE: Final = "/checkout-sessions/{id}/complete"
CANCEL_SESSION: Final = "/checkout-sessions/{id}/cancel"
ORDER: Final = "/orders/{id}"
# The com.cartpilot.order_cancel extension's route (UCP itself has none).
CANCEL_ORDER: Final = "/orders/{id}/cancel"
# The com.cartpilot.order_return extension's route: files a return of a shipped order.
RETURN_ORDER: Final = "/orders/{id}/return"


@dataclass(frozen=True)
class PlatformIdentity:
    """Who CartPilot is to a merchant: the profile ``UCP-Agent`` names per version, and how it signs."""

    profile_urls: Mapping[str, str]
    signers: Mapping[str, RequestSigner] = field(default_factory=dict)

    def profile_url(self, version: str) -> str:
        try:
            return self.profile_urls[version]
        except KeyError:
            raise MerchantRejected(
                f"CartPilot publishes no profile for UCP {version}", code="version_unsupported"
            ) from None

    @classmethod
    def served_at(cls, base_url: str, signers: Mapping[str, RequestSigner] | None = None) -> PlatformIdentity:
        """Our profiles as the API serves them under ``base_url`` (``platform_profile.profile_url``)."""
        return cls(
            {version: profile_url(base_url, version) for version in SUPPORTED_VERSIONS}, dict(signers or {})
        )


class _Connection:
    """One merchant: its negotiated profile, and a client and codec for that version, made on first use."""

    def __init__(
        self,
        merchant_url: str,
        *,
        identity: PlatformIdentity,
        discovery: MerchantDiscovery,
        client_factory: Callable[[str, str, RequestSigner | None], MerchantClient],
    ) -> None:
        self.merchant_url = merchant_url.rstrip("/")
        self.identity = identity
        self.discovery = discovery
        self._client_factory = client_factory
        self._client: MerchantClient | None = None
        self._client_key: tuple[str, str] | None = None
        self._lock = threading.Lock()

    def profile(self) -> MerchantProfile:
        return self.discovery.profile(self.merchant_url)

    def speaking(self) -> tuple[MerchantClient, WireCodec, MerchantProfile]:
        profile = self.profile()
        key = (profile.endpoint, profile.version)
        with self._lock:
            if self._client is None or self._client_key != key:
                if self._client is not None:
                    self._client.close()
                self._client = self._client_factory(
                    profile.endpoint,
                    self.identity.profile_url(profile.version),
                    self.identity.signers.get(profile.version),
                )
                self._client_key = key
            return self._client, codec_for(profile.version), profile

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def _read_checkout(codec: WireCodec, answer: Mapping[str, Any], *, mutating: bool, what: str) -> WireCheckout:
    try:
        return codec.read_checkout(answer)
    except MalformedAnswer as error:
        raise _malformed(error, mutating=mutating, what=what) from error


def _malformed(error: Exception, *, mutating: bool, what: str) -> Exception:
    message = f"{what}: the merchant's answer has an unexpected shape ({error})"
    # After a mutating call the change may have happened; only a replay of the key can tell.
    return (
        MerchantOutcomeUnknown(message) if mutating else MerchantRejected(message, code="malformed_response")
    )


def _settled(checkout: WireCheckout, what: str) -> WireCheckout:
    """A checkout that is still being filled in: escalation, or an error that blocks, stops here."""
    raise_for_escalation(checkout, what)
    refusal = refusal_of(checkout, what, blocking_only=True)
    if refusal is not None:
        raise refusal
    return checkout


def _matching(offered: Sequence[ShippingOption], planned: ShippingOption) -> ShippingOption | None:
    """The planned option by id, else by the same title and price: ids are the merchant's and may
    differ between its sessions."""
    return next((o for o in offered if o.id == planned.id), None) or next(
        (o for o in offered if o.title == planned.title and o.price == planned.price), None
    )


# --- adapters ------------------------------------------------------------------------------------


class UcpCatalog:
    def __init__(self, connection: _Connection) -> None:
        self._connection = connection

    def _require(self, capability: str) -> tuple[MerchantClient, WireCodec]:
        client, codec, profile = self._connection.speaking()
        if not profile.offers(capability):
            raise MerchantRejected(
                f"merchant {profile.merchantUrl} offers no {capability} at UCP {profile.version}: "
                "plan from the brand's product feed",
                code="catalog_unsupported",
            )
        return client, codec

    def search(self, query: SearchQuery) -> list[Product]:
        client, codec = self._require(CATALOG_SEARCH)
        answer = client.query(SEARCH, codec.search_request(query))
        try:
            return codec.read_search(answer)
        except MalformedAnswer as error:
            raise _malformed(error, mutating=False, what="catalog search") from error

    def lookup(self, item_ids: list[str], currency: str) -> list[ProductVariant]:
        """The variants for these ids, in the order asked; a product id stands for all its variants."""
        if not item_ids:
            return []
        client, codec = self._require(CATALOG_LOOKUP)
        answer = client.query(LOOKUP, codec.lookup_request(item_ids, currency))
        try:
            return codec.read_lookup(answer, item_ids)
        except MalformedAnswer as error:
            raise _malformed(error, mutating=False, what="catalog lookup") from error


class UcpCheckout:
    def __init__(self, connection: _Connection) -> None:
        self._connection = connection

    def create(
        self, lines: list[CartLine], buyer: Buyer, currency: str, idempotency_key: str
    ) -> CheckoutSession:
        client, codec, profile = self._connection.speaking()
        body = codec.create_checkout(lines, buyer, currency, shipping=profile.offers(FULFILLMENT))
        answer = client.mutate("POST", SESSIONS, body, idempotency_key=idempotency_key)
        checkout = _read_checkout(codec, answer, mutating=True, what="create checkout")
        return _settled(checkout, f"create checkout {checkout.id}").session()

    def add_items(self, session_id: str, lines: list[CartLine], idempotency_key: str) -> CheckoutSession:
        client, codec, _ = self._connection.speaking()
        current = _read_checkout(
            codec, client.get(SESSION, path={"id": session_id}), mutating=False, what="checkout"
        )
        # A full replacement: the lines the session had before this step, then the new ones.
        kept = without_lines_added_by(current, lines)
        added = tuple(LineUpdate(item_id=line.itemId, quantity=line.quantity) for line in lines)
        body = codec.update_checkout(current, CheckoutUpdate(lines=kept + added))
        answer = client.mutate("PUT", SESSION, body, idempotency_key=idempotency_key, path={"id": session_id})
        checkout = _read_checkout(codec, answer, mutating=True, what="add items")
        return _settled(checkout, f"add items to checkout {session_id}").session()

    def get(self, session_id: str) -> CheckoutSession:
        client, codec, _ = self._connection.speaking()
        answer = client.get(SESSION, path={"id": session_id})
        return _read_checkout(codec, answer, mutating=False, what="checkout").session()

    def cancel(self, session_id: str, idempotency_key: str) -> CheckoutSession:
        client, codec, _ = self._connection.speaking()
        try:
            answer = client.mutate(
                "POST", CANCEL_SESSION, None, idempotency_key=idempotency_key, path={"id": session_id}
            )
            checkout = _read_checkout(codec, answer, mutating=True, what="cancel checkout")
        except MerchantRejected as refused:
            # checkout.md: canceling a canceled session is an error; for the port, canceling is done.
            if refused.code != "checkout_canceled":
                raise
            checkout = _read_checkout(
                codec, client.get(SESSION, path={"id": session_id}), mutating=False, what="checkout"
            )
        if checkout.status != "canceled":
            # checkout.md "Cancel Checkout": a completed session cannot be canceled; the merchant says why.
            what = f"cancel checkout {session_id}"
            raise refusal_of(checkout, what, blocking_only=False) or MerchantRejected(
                f"{what}: the checkout is {checkout.status}", code=f"checkout_{checkout.status}"
            )
        return checkout.session()


class UcpFulfillment:
    def __init__(self, connection: _Connection) -> None:
        self._connection = connection

    def quote(self, lines: list[CartLine], recipient: Recipient, currency: str) -> Quote:
        """A pricing session: created, given the destination, read, and canceled; nothing is charged."""
        client, codec, profile = self._connection.speaking()
        if not profile.offers(FULFILLMENT):
            raise MerchantRejected(
                f"merchant {profile.merchantUrl} offers no fulfillment: CartPilot cannot ship its goods",
                code="fulfillment_unsupported",
            )
        key = f"cp-quote-{uuid.uuid4()}"
        answer = client.mutate(
            "POST", SESSIONS, codec.create_checkout(lines, None, currency, shipping=True), idempotency_key=key
        )
        opened = _read_checkout(codec, answer, mutating=True, what="open a pricing session")
        try:
            _settled(opened, "price the items")
            destined = self._set_destination(client, codec, opened, recipient, key)
            options = destined.options()
            if not options:
                raise _no_options(destined, recipient)
            return Quote(
                sessionId=destined.id,
                currency=destined.currency,
                lines=[line.domain() for line in destined.lines],
                options=options,
                tax=destined.tax,
            )
        finally:
            self._close_pricing_session(client, codec, opened.id, f"{key}.cancel")

    def select(
        self, session_id: str, recipient: Recipient, option: ShippingOption, idempotency_key: str
    ) -> CheckoutSession:
        client, codec, _ = self._connection.speaking()
        current = _read_checkout(
            codec, client.get(SESSION, path={"id": session_id}), mutating=False, what="checkout"
        )
        destined = self._set_destination(client, codec, current, recipient, idempotency_key)
        method = destined.shipping
        if method is None or not method.groups:
            raise _no_options(destined, recipient)
        choices: list[tuple[str, str]] = []
        for group in method.groups:
            chosen = _matching(group.options, option)
            if chosen is None:
                offered = ", ".join(f"{o.title} {o.price.format()}" for o in group.options) or "none"
                raise MerchantRejected(
                    f"checkout {session_id}: the planned shipping option {option.title} {option.price.format()} "
                    f"is not offered for this destination (offered: {offered})",
                    code="fulfillment_option_unavailable",
                )
            choices.append((group.id, chosen.id))
        destination_id = method.selected_destination_id or _our_destination(method.destinations)
        update = CheckoutUpdate(
            lines=kept_lines(destined),
            method=MethodUpdate(
                id=method.id,
                line_item_ids=tuple(line.id for line in destined.lines),
                destination={**destination_body(recipient), "id": destination_id},
                selected_destination_id=destination_id,
                group_choices=tuple(choices),
            ),
        )
        answer = client.mutate(
            "PUT", SESSION, codec.update_checkout(destined, update), idempotency_key=f"{idempotency_key}.option",
            path={"id": session_id},
        )  # fmt: skip
        selected = _read_checkout(codec, answer, mutating=True, what="choose shipping")
        what = f"choose shipping for checkout {session_id}"
        _settled(selected, what)
        chosen_ids = {group.selected_option_id for group in selected.groups}
        if chosen_ids != {option_id for _, option_id in choices}:
            refusal = refusal_of(selected, what, blocking_only=False)
            raise refusal or MerchantRejected(
                f"{what}: the merchant did not take the planned option", code="fulfillment_option_unavailable"
            )
        return selected.session()

    def _set_destination(
        self, client: MerchantClient, codec: WireCodec, current: WireCheckout, recipient: Recipient, key: str
    ) -> WireCheckout:
        """Sends the destination without an id and reads back what the merchant made of it: the id it
        assigned, its groups and their options (fulfillment.md). The body depends only on the session's
        lines, buyer and method, and the recipient, so a retry sends it again byte for byte."""
        method = current.shipping
        update = CheckoutUpdate(
            lines=kept_lines(current),
            method=MethodUpdate(
                id=method.id if method else None,
                line_item_ids=tuple(line.id for line in current.lines),
                destination=destination_body(recipient),
            ),
        )
        what = f"ship checkout {current.id} to {recipient.address.city}"
        answer = client.mutate(
            "PUT", SESSION, codec.update_checkout(current, update), idempotency_key=f"{key}.destination",
            path={"id": current.id},
        )  # fmt: skip
        destined = _settled(_read_checkout(codec, answer, mutating=True, what="set the destination"), what)
        method = destined.shipping
        if method is None or method.groups or method.selected_destination_id or not method.destinations:
            return destined
        # The merchant kept the destination but selected none: select it by the id it assigned.
        chosen = _our_destination(method.destinations)
        update = CheckoutUpdate(
            lines=kept_lines(destined),
            method=MethodUpdate(
                id=method.id,
                line_item_ids=tuple(line.id for line in destined.lines),
                destination={**destination_body(recipient), "id": chosen},
                selected_destination_id=chosen,
            ),
        )
        answer = client.mutate(
            "PUT", SESSION, codec.update_checkout(destined, update), idempotency_key=f"{key}.destination-choice",
            path={"id": current.id},
        )  # fmt: skip
        return _settled(_read_checkout(codec, answer, mutating=True, what="select the destination"), what)

    @staticmethod
    def _close_pricing_session(client: MerchantClient, codec: WireCodec, session_id: str, key: str) -> None:
        try:
            client.mutate("POST", CANCEL_SESSION, None, idempotency_key=key, path={"id": session_id})
        except Exception as error:  # the quote stands; an open session expires at the merchant anyway
            log.warning("pricing session not canceled: %s", type(error).__name__)


def _our_destination(destinations: Sequence[JsonObject]) -> str | None:
    ids = [str(d["id"]) for d in destinations if d.get("id")]
    return ids[-1] if ids else None


def _no_options(checkout: WireCheckout, recipient: Recipient) -> MerchantRejected:
    what = f"checkout {checkout.id} to {recipient.address.city}, {recipient.address.country}"
    refusal = refusal_of(checkout, what, blocking_only=False)
    if refusal is not None:
        return refusal
    return MerchantRejected(
        f"{what}: the merchant offers no shipping option", code="fulfillment_option_unavailable"
    )


class UcpPayments:
    def __init__(self, connection: _Connection) -> None:
        self._connection = connection

    def complete(self, session_id: str, credential: PaymentCredential, idempotency_key: str) -> Order:
        client, codec, _ = self._connection.speaking()
        body = codec.complete_checkout(session_id, credential)
        answer = client.mutate(
            "POST", COMPLETE, body, idempotency_key=idempotency_key, path={"id": session_id}
        )
        checkout = _read_checkout(codec, answer, mutating=True, what="complete checkout")
        return order_from_completed(checkout, f"complete checkout {session_id}")


class UcpOrders:
    def __init__(self, connection: _Connection) -> None:
        self._connection = connection

    def get(self, order_id: str, checkout_id: str | None = None) -> Order:
        client, codec, profile = self._connection.speaking()
        if codec.has_order_route:
            return self._order(client, codec, client.get(ORDER, path={"id": order_id}), mutating=False)
        if checkout_id is None:
            raise MerchantRejected(
                f"UCP {profile.version} has no order route: the order is read from its checkout",
                code="order_lookup_unsupported",
            )
        checkout = _read_checkout(
            codec, client.get(SESSION, path={"id": checkout_id}), mutating=False, what="checkout"
        )
        order = order_from_completed(checkout, f"checkout {checkout_id}")
        if order.id != order_id:
            raise MerchantRejected(
                f"checkout {checkout_id} became order {order.id}, not {order_id}", code="order_mismatch"
            )
        return order

    def entity(self, order_id: str) -> JsonObject:
        """The order entity as the merchant answers Get Order, whole (fulfilment events, adjustments):
        what order events carry, for merchants that are polled instead of pushing them."""
        client, codec, profile = self._connection.speaking()
        if not codec.has_order_route:
            raise MerchantRejected(
                f"UCP {profile.version} has no order route: its orders reach us by webhook only",
                code="order_lookup_unsupported",
            )
        return client.get(ORDER, path={"id": order_id})

    def cancel(self, order_id: str, idempotency_key: str) -> Order:
        client, codec, profile = self._connection.speaking()
        if not profile.offers(ORDER_CANCEL):
            raise UndoUnsupported(
                f"merchant {profile.merchantUrl} advertises no way to cancel an order ({ORDER_CANCEL})"
            )
        answer = client.mutate(
            "POST", CANCEL_ORDER, None, idempotency_key=idempotency_key, path={"id": order_id}
        )
        return self._order(client, codec, answer, mutating=True)

    def file_return(self, order_id: str, idempotency_key: str) -> ReturnFiled:
        client, codec, profile = self._connection.speaking()
        if not profile.offers(ORDER_RETURN):
            raise UndoUnsupported(f"merchant {profile.merchantUrl} advertises no returns ({ORDER_RETURN})")
        answer = client.mutate(
            "POST", RETURN_ORDER, None, idempotency_key=idempotency_key, path={"id": order_id}
        )
        order = self._order(client, codec, answer, mutating=True)
        return_id = return_id_of(answer)
        if return_id is None:
            # The merchant took the request (a retry with the same key replays it) but named no return.
            raise MerchantOutcomeUnknown(f"return of order {order_id}: the answer names no return")
        return ReturnFiled(returnId=return_id, order=order)

    @staticmethod
    def _order(client: MerchantClient, codec: WireCodec, answer: JsonObject, *, mutating: bool) -> Order:
        currency: str | None = None
        if not codec.orders_carry_currency and isinstance(answer.get("checkout_id"), str):
            # 2026-01-11 orders carry no currency: it is the checkout's.
            checkout = client.get(SESSION, path={"id": str(answer["checkout_id"])})
            currency = _read_checkout(codec, checkout, mutating=False, what="checkout").currency
        try:
            return codec.read_order(answer, currency)
        except MalformedAnswer as error:
            raise _malformed(error, mutating=mutating, what="order") from error


class UcpMerchant:
    """Every port over one merchant, discovered on first use: what a connector function needs."""

    def __init__(
        self,
        merchant_url: str,
        *,
        identity: PlatformIdentity,
        discovery: MerchantDiscovery | None = None,
        auth: MerchantAuth | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        breakers: BreakerPolicy | None = None,
        retry_budget: RetryBudget | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        def client(endpoint: str, agent_profile_url: str, signer: RequestSigner | None) -> MerchantClient:
            return MerchantClient(
                endpoint, agent_profile_url=agent_profile_url, signer=signer, auth=auth, timeouts=timeouts,
                retry=retry, transport=transport, sleep=sleep, breakers=breakers, retry_budget=retry_budget,
            )  # fmt: skip

        self.merchant_url = merchant_url.rstrip("/")
        self._owns_discovery = discovery is None
        self.discovery = discovery or MerchantDiscovery(transport=transport)
        self._connection = _Connection(
            self.merchant_url, identity=identity, discovery=self.discovery, client_factory=client
        )
        self.catalog = UcpCatalog(self._connection)
        self.fulfillment = UcpFulfillment(self._connection)
        self.checkout = UcpCheckout(self._connection)
        self.payments = UcpPayments(self._connection)
        self.orders = UcpOrders(self._connection)

    def profile(self) -> MerchantProfile:
        """Discovery and negotiation, cached by the discovery's TTL; refuses a merchant with no version in common."""
        return self._connection.profile()

    @classmethod
    def for_url(cls, url: str, *, identity: PlatformIdentity, **options: Any) -> UcpMerchant:
        return cls(url, identity=identity, **options)

    def close(self) -> None:
        self._connection.close()
        if self._owns_discovery:
            self.discovery.close()
