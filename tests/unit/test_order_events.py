"""Order events: tracking from the order entity, webhook signatures of both UCP versions, and the
intake's refusals, dedupe and notices, on in-memory fakes. The signatures are made by the sandbox
merchant's own signer, independent of the verifier under test."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from cartpilot.brands.config import MerchantConfig
from cartpilot.commerce.errors import MerchantRejected
from cartpilot.commerce.signatures import SignatureError
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.model import GoalContext, GoalRecord, GoalStatus
from cartpilot.orders.events import accept_order_event, apply_order_snapshot, snapshot_id
from cartpilot.orders.merchant_keys import MerchantSigner, keys_of
from cartpilot.orders.polling import sweep_orders
from cartpilot.orders.ports import OrderLink
from cartpilot.orders.reach import refuse_unreachable
from cartpilot.orders.tracking import derive_tracking, notices_reached
from cartpilot.orders.webhook_signatures import verify_webhook_signature
from cartpilot.orders.webhooks import WebhookRefused, receive_order_webhook
from cartpilot_local.merchant.jwk import SigningKey
from cartpilot_local.merchant.webhooks import sign_detached_jws, sign_rfc9421
from tests.fakes.orders import InMemoryOrderEventStore, StaticMerchantKeys
from tests.fakes.services import RecordingNotifier
from tests.unit.stages import fake_ledger

NEW, OLD = "2026-04-08", "2026-01-11"
MERCHANT = "sandbox-merchant"
MERCHANT_URL = "https://shop.example"
URL = f"https://api.example/v1/webhooks/merchants/{MERCHANT}"
AGENT = f'profile="{MERCHANT_URL}/.well-known/ucp"'


def _event(kind: str, at: str, *, event_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": event_id or f"fe_{kind}",
        "occurred_at": at,
        "type": kind,
        "line_items": [{"id": "li_1", "quantity": 1}],
        **extra,
    }


def _order(*events: dict[str, Any], order_id: str = "ord_1") -> dict[str, Any]:
    return {"id": order_id, "fulfillment": {"expectations": [], "events": list(events)}}


SHIPPED = _event(
    "shipped",
    "2026-01-10T08:00:00Z",
    carrier="SF Express",
    tracking_number="SF123",
    description="Handed over",
)
DELIVERED = _event(
    "delivered", "2026-01-12T09:30:00+08:00", tracking_number="SF123", description="At the door"
)


# --- tracking -----------------------------------------------------------------------------------


def test_tracking_follows_the_event_log_in_time_order() -> None:
    tracking = derive_tracking(_order(DELIVERED, SHIPPED))
    assert tracking is not None
    assert tracking.status == "delivered"
    assert (tracking.carrier, tracking.trackingNumber) == ("SF Express", "SF123")
    assert [(e.at, e.status, e.detail) for e in tracking.events] == [
        ("2026-01-10T08:00:00Z", "shipped", "Handed over"),
        ("2026-01-12T09:30:00+08:00", "delivered", "At the door"),
    ]
    assert tracking.final


def test_tracking_skips_unreadable_and_repeated_events() -> None:
    broken = [
        {"id": "x", "type": "shipped"},  # no time
        _event("in_transit", "yesterday", event_id="y"),  # no RFC 3339 time
        _event("in_transit", "2026-01-10T09:00:00", event_id="z"),  # no offset
        "not an event",
        {**SHIPPED, "description": "a repeat of the same id"},
    ]
    tracking = derive_tracking(_order(SHIPPED, *broken))  # type: ignore[arg-type]
    assert tracking is not None
    assert [e.status for e in tracking.events] == ["shipped"]
    assert tracking.events[0].detail == "Handed over"
    assert not tracking.final


def test_no_events_no_tracking() -> None:
    assert derive_tracking({"id": "ord_1"}) is None
    assert derive_tracking(_order()) is None


def test_notices_follow_the_shipment() -> None:
    in_transit = derive_tracking(_order(_event("in_transit", "2026-01-10T08:00:00Z")))
    delivered = derive_tracking(_order(SHIPPED, DELIVERED))
    processing = derive_tracking(_order(_event("processing", "2026-01-10T08:00:00Z")))
    assert in_transit is not None and delivered is not None and processing is not None
    assert notices_reached(in_transit) == ["shipped"]
    assert notices_reached(delivered) == ["shipped", "delivered"]
    assert notices_reached(processing) == []


def test_a_poll_snapshot_id_depends_on_the_order_only() -> None:
    order = _order(SHIPPED)
    assert snapshot_id(order) == snapshot_id({**order, "ucp": {"version": NEW}})
    assert snapshot_id(order) != snapshot_id(_order(SHIPPED, DELIVERED))


# --- signatures ---------------------------------------------------------------------------------


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate("merchant")


def _signed_new(
    key: SigningKey, body: bytes, *, now: int, url: str = URL, webhook_id: str | None = None
) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "UCP-Agent": AGENT,
        "Webhook-Id": webhook_id or str(uuid.uuid4()),
        "Webhook-Timestamp": str(now),
    }
    return {name.lower(): value for name, value in sign_rfc9421(url, headers, body, key, now).items()}


def _keys(key: SigningKey) -> dict[str, Any]:
    return {key.kid: key.public_jwk}


def test_rfc9421_webhook_verifies_and_tampering_does_not(key: SigningKey) -> None:
    now = int(time.time())
    body = json.dumps(_order(SHIPPED)).encode()
    headers = _signed_new(key, body, now=now)
    assert (
        verify_webhook_signature(NEW, url=URL, headers=headers, body=body, keys=_keys(key), now=now)
        == key.kid
    )

    with pytest.raises(SignatureError) as tampered:
        verify_webhook_signature(NEW, url=URL, headers=headers, body=body + b" ", keys=_keys(key), now=now)
    assert tampered.value.code == "digest_mismatch"
    other_url = URL.replace(MERCHANT, "other-merchant")
    with pytest.raises(SignatureError) as elsewhere:
        verify_webhook_signature(NEW, url=other_url, headers=headers, body=body, keys=_keys(key), now=now)
    assert elsewhere.value.code == "signature_invalid"
    other = SigningKey.generate("merchant")
    with pytest.raises(SignatureError) as unknown:
        verify_webhook_signature(NEW, url=URL, headers=headers, body=body, keys=_keys(other), now=now)
    assert unknown.value.code == "key_not_found"
    bare = {k: v for k, v in headers.items() if k not in {"signature", "signature-input"}}
    with pytest.raises(SignatureError) as unsigned:
        verify_webhook_signature(NEW, url=URL, headers=bare, body=body, keys=_keys(key), now=now)
    assert unsigned.value.code == "signature_missing"


def test_detached_jws_webhook_verifies_and_tampering_does_not(key: SigningKey) -> None:
    body = json.dumps({**_order(SHIPPED), "event_id": "e1", "created_time": "2026-01-10T08:00:00Z"}).encode()
    headers = {"request-signature": sign_detached_jws(body, key)}
    assert (
        verify_webhook_signature(OLD, url=URL, headers=headers, body=body, keys=_keys(key), now=0) == key.kid
    )

    for bad_body, code in ((body.replace(b"SF123", b"SF999"), "signature_invalid"),):
        with pytest.raises(SignatureError) as refused:
            verify_webhook_signature(OLD, url=URL, headers=headers, body=bad_body, keys=_keys(key), now=0)
        assert refused.value.code == code
    with pytest.raises(SignatureError) as unknown:
        verify_webhook_signature(
            OLD, url=URL, headers=headers, body=body, keys=_keys(SigningKey.generate("x")), now=0
        )
    assert unknown.value.code == "key_not_found"
    with pytest.raises(SignatureError) as missing:
        verify_webhook_signature(OLD, url=URL, headers={}, body=body, keys=_keys(key), now=0)
    assert missing.value.code == "signature_missing"
    attached = headers["request-signature"].replace("..", ".e30.")
    with pytest.raises(SignatureError) as not_detached:
        verify_webhook_signature(
            OLD, url=URL, headers={"request-signature": attached}, body=body, keys=_keys(key), now=0
        )
    assert not_detached.value.code == "signature_invalid"


def test_a_jws_claiming_another_algorithm_than_the_key_is_refused(key: SigningKey) -> None:
    import base64

    body = b'{"id":"ord_1"}'
    token = sign_detached_jws(body, key)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    forged = base64.urlsafe_b64encode(json.dumps({**header, "alg": "HS256"}).encode()).rstrip(b"=").decode()
    with pytest.raises(SignatureError) as refused:
        verify_webhook_signature(
            OLD, url=URL, headers={"request-signature": forged + token[token.index(".") :]}, body=body,
            keys=_keys(key), now=0,
        )  # fmt: skip
    assert refused.value.code == "algorithm_unsupported"


def test_profile_keys_are_read_by_kid(key: SigningKey) -> None:
    document = {"signing_keys": [key.public_jwk, {"no": "kid"}, "junk"]}
    assert keys_of(document) == {key.kid: key.public_jwk}
    assert keys_of({}) == {}


# --- the intake ---------------------------------------------------------------------------------


class World:
    def __init__(self, key: SigningKey, version: str = NEW) -> None:
        self.key = key
        self.version = version
        self.ledger: GoalLedger = fake_ledger()
        self.store = InMemoryOrderEventStore()
        self.notifier = RecordingNotifier()
        self.keys = StaticMerchantKeys(
            {
                MERCHANT: MerchantSigner(
                    version=version, profile_url=f"{MERCHANT_URL}/.well-known/ucp", keys=_keys(key)
                )
            }
        )
        self.ledger.store.create(
            GoalRecord(
                goalId="g-1", userId="user-1", brand="sandbox", goal="socks", context=GoalContext(),
                status=GoalStatus.COMPLETED, requestHash="h", createdAt="2026-01-01T00:00:00Z",
                updatedAt="2026-01-01T00:00:00Z",
            )
        )  # fmt: skip
        self.store.link_order(OrderLink(MERCHANT, "ord_1", "g-1"), polled=False)

    def post(self, body: bytes, headers: dict[str, str], *, now: int, merchant: str = MERCHANT) -> Any:
        return receive_order_webhook(
            merchant, url=URL.replace(MERCHANT, merchant), headers=headers, body=body, now=now,
            merchants={MERCHANT: MERCHANT_URL, "other-merchant": "https://other.example"}, keys=self.keys,
            store=self.store, ledger=self.ledger,
        )  # fmt: skip

    def sweep(self, fetch: Any = None) -> Any:
        """The scheduled tracking sweep, once."""
        return sweep_orders(store=self.store, fetch_order=fetch, ledger=self.ledger, notifier=self.notifier)

    def audit_events(self) -> list[str]:
        return [record.event for record in self.ledger.audit.records("g-1")]


@pytest.fixture
def world(key: SigningKey) -> World:
    return World(key)


def test_an_accepted_event_sets_tracking_audits_and_tells_the_shopper_once(world: World) -> None:
    now = int(time.time())
    body = json.dumps(_order(SHIPPED)).encode()
    headers = _signed_new(world.key, body, now=now)
    accepted = world.post(body, headers, now=now)
    assert accepted.body() == {
        "ucp": {
            "version": NEW,
            "status": "success",
            "capabilities": {"dev.ucp.shopping.order": [{"version": NEW}]},
        }
    }
    assert not accepted.duplicate
    assert world.audit_events().count("order.event") == 1
    # Answered at once; the sweep applies the snapshot and tells the shopper.
    assert world.ledger.store.require("g-1").tracking is None and world.notifier.sent == []
    assert world.sweep().applied == 1
    goal = world.ledger.store.require("g-1")
    assert goal.tracking is not None and goal.tracking.status == "shipped"
    assert [m["kind"] for m in world.notifier.sent] == ["shipped"]
    assert world.sweep().applied == 0  # nothing pending any more

    again = world.post(body, headers, now=now)  # the same Webhook-Id: absorbed
    assert again.duplicate
    assert world.audit_events().count("order.event") == 1 and world.store.pending == {}
    # Another event with the same news: recorded, but the shopper is not told twice.
    resent = world.post(body, _signed_new(world.key, body, now=now), now=now)
    assert not resent.duplicate
    world.sweep()
    assert [m["kind"] for m in world.notifier.sent] == ["shipped"]


def test_a_late_older_event_does_not_move_the_shipment_back(world: World) -> None:
    now = int(time.time())
    newer = json.dumps(_order(SHIPPED, DELIVERED)).encode()
    older = json.dumps(_order(SHIPPED)).encode()
    world.post(newer, _signed_new(world.key, newer, now=now), now=now)
    world.sweep()
    world.post(older, _signed_new(world.key, older, now=now), now=now)
    world.sweep()
    tracking = world.ledger.store.require("g-1").tracking
    assert tracking is not None and tracking.status == "delivered"
    assert [m["kind"] for m in world.notifier.sent] == ["shipped", "delivered"]


def _unchanged(world: World) -> None:
    assert world.ledger.store.require("g-1").tracking is None
    assert "order.event" not in world.audit_events()
    assert world.notifier.sent == []
    assert world.store.events == {}
    assert world.store.pending == {}


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("stale", 400, "stale_event"),
        ("future", 400, "stale_event"),
        ("unknown order", 404, "unknown_order"),
        ("unknown merchant", 404, "unknown_merchant"),
        ("no webhook id", 400, "invalid_event"),
        ("no agent", 400, "invalid_profile_url"),
        ("another signer", 403, "signer_mismatch"),
        ("tampered", 400, "digest_mismatch"),
        ("not an order", 400, "invalid_order"),
    ],
)
def test_refused_events_change_nothing(world: World, case: str, status: int, code: str) -> None:
    now = int(time.time())
    order = _order(SHIPPED, order_id="ord_2") if case == "unknown order" else _order(SHIPPED)
    body = json.dumps(["not", "an", "order"] if case == "not an order" else order).encode()
    sent_at = {"stale": now - 301, "future": now + 301}.get(case, now)
    headers = _signed_new(world.key, body, now=sent_at)
    if case in {"stale", "future"}:
        # A signature whose own ``created`` fits, on an event whose timestamp does not.
        headers = _signed_new(world.key, body, now=now)
        headers["webhook-timestamp"] = str(sent_at)
        headers = {**_resign(world.key, body, headers, now)}
    if case == "no webhook id":
        headers = _resign(world.key, body, {k: v for k, v in headers.items() if k != "webhook-id"}, now)
    if case == "no agent":
        headers = _resign(world.key, body, {k: v for k, v in headers.items() if k != "ucp-agent"}, now)
    if case == "another signer":
        headers = _resign(
            world.key, body, {**headers, "ucp-agent": 'profile="https://evil.example/.well-known/ucp"'}, now
        )
    if case == "tampered":
        body = body.replace(b"SF123", b"SF999")
    merchant = "nobody" if case == "unknown merchant" else MERCHANT
    with pytest.raises(WebhookRefused) as refused:
        world.post(body, headers, now=now, merchant=merchant)
    assert (refused.value.status, refused.value.code) == (status, code)
    _unchanged(world)


def _resign(key: SigningKey, body: bytes, headers: dict[str, str], now: int) -> dict[str, str]:
    """The same fields signed again (covering only what is present)."""
    from http_message_signatures import HTTPMessageSigner, MappingKeyResolver
    from http_message_signatures.algorithms import ECDSA_P256_SHA256

    fields = {k: v for k, v in headers.items() if k not in {"signature", "signature-input"}}

    class Message:
        method = "POST"
        url = URL
        headers = fields

    covered = [
        "@method",
        "@authority",
        "@path",
        *(c for c in ("ucp-agent", "content-digest", "content-type") if c in fields),
    ]
    HTTPMessageSigner(
        signature_algorithm=ECDSA_P256_SHA256,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={key.kid: key.private_key}),
    ).sign(
        Message,  # type: ignore[arg-type]
        key_id=key.kid,
        label="sig1",
        include_alg=False,
        covered_component_ids=covered,
        use_existing_digest=True,
    )
    return dict(Message.headers)


def test_another_merchants_key_cannot_speak_for_this_order(world: World) -> None:
    now = int(time.time())
    intruder = SigningKey.generate("other")
    world.keys.signers["other-merchant"] = MerchantSigner(
        version=NEW, profile_url="https://other.example/.well-known/ucp", keys=_keys(intruder)
    )
    body = json.dumps(_order(SHIPPED)).encode()
    # Signed by the other merchant, for our merchant's URL: its key is not our merchant's.
    with pytest.raises(WebhookRefused) as at_ours:
        world.post(body, _signed_new(intruder, body, now=now), now=now)
    assert at_ours.value.code == "key_not_found" and world.keys.refreshed == 1
    # At its own URL, with its own profile: the order was not placed with it.
    headers = _signed_new(intruder, body, now=now, url=URL.replace(MERCHANT, "other-merchant"))
    headers["ucp-agent"] = 'profile="https://other.example/.well-known/ucp"'
    headers = _resign_at(intruder, body, headers, now, URL.replace(MERCHANT, "other-merchant"))
    with pytest.raises(WebhookRefused) as at_its_own:
        world.post(body, headers, now=now, merchant="other-merchant")
    assert at_its_own.value.code == "unknown_order"
    _unchanged(world)


def _resign_at(key: SigningKey, body: bytes, headers: dict[str, str], now: int, url: str) -> dict[str, str]:
    fields = {k: v for k, v in headers.items() if k not in {"signature", "signature-input", "content-digest"}}
    return {name.lower(): value for name, value in sign_rfc9421(url, fields, body, key, now).items()}


def test_2026_01_11_events_carry_their_id_and_time_in_the_signed_body(key: SigningKey) -> None:
    world = World(key, version=OLD)
    now = int(time.time())
    fresh = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    body = json.dumps({**_order(SHIPPED), "event_id": "evt-1", "created_time": fresh}).encode()
    headers = {"request-signature": sign_detached_jws(body, key)}
    accepted = world.post(body, headers, now=now)
    assert accepted.body()["ucp"] == {
        "version": OLD,
        "capabilities": [{"name": "dev.ucp.shopping.order", "version": OLD}],
    }
    assert world.post(body, headers, now=now).duplicate
    assert world.store.events == {(MERCHANT, "evt-1"): "g-1"}

    stale = json.dumps(
        {**_order(SHIPPED), "event_id": "evt-2", "created_time": "2026-01-01T00:00:00Z"}
    ).encode()
    with pytest.raises(WebhookRefused) as refused:
        world.post(stale, {"request-signature": sign_detached_jws(stale, key)}, now=now)
    assert refused.value.code == "stale_event"


def test_a_failure_while_recording_gives_the_event_back(world: World) -> None:
    class Broken(RecordingNotifier):
        def send(self, **kwargs: Any) -> str:
            raise RuntimeError("topic down")

    link = OrderLink(MERCHANT, "ord_1", "g-1")
    missing = OrderLink(MERCHANT, "ord_1", "g-nope")
    with pytest.raises(LookupError):
        accept_order_event(
            missing, "e1", _order(SHIPPED), source="webhook", store=world.store, ledger=world.ledger
        )
    assert world.store.events == {} and world.store.pending == {}
    # A notice that cannot go out is sent with the next snapshot.
    first = apply_order_snapshot(
        link, _order(SHIPPED), store=world.store, ledger=world.ledger, notifier=Broken()
    )
    assert first.notified == () and world.store.notices == set()
    second = apply_order_snapshot(
        link, _order(SHIPPED), store=world.store, ledger=world.ledger, notifier=world.notifier
    )
    assert second.notified == ("shipped",)


def test_polling_records_changes_once_and_stops_at_delivery(world: World) -> None:
    world.store.link_order(OrderLink(MERCHANT, "ord_1", "g-1"), polled=True)
    snapshots = {"ord_1": _order(SHIPPED)}

    def fetch(merchant_id: str, order_id: str) -> dict[str, Any]:
        return snapshots[order_id]

    first, second = world.sweep(fetch), world.sweep(fetch)
    assert (first.applied, second.unchanged) == (1, 1)
    snapshots["ord_1"] = _order(SHIPPED, DELIVERED)
    assert world.sweep(fetch).applied == 1
    assert world.store.open_orders(10) == []  # delivered: nothing more to ask
    assert [m["kind"] for m in world.notifier.sent] == ["shipped", "delivered"]
    tracking = world.ledger.store.require("g-1").tracking
    assert tracking is not None and [e.status for e in tracking.events] == ["shipped", "delivered"]
    assert world.audit_events().count("order.event") == 2


def test_a_failing_merchant_leaves_the_order_for_the_next_sweep(world: World) -> None:
    world.store.link_order(OrderLink(MERCHANT, "ord_1", "g-1"), polled=True)

    def fetch(merchant_id: str, order_id: str) -> dict[str, Any]:
        raise ConnectionError("merchant down")

    report = world.sweep(fetch)
    assert (report.polled, report.failed) == (1, 1)
    assert world.store.open_orders(10) == [(OrderLink(MERCHANT, "ord_1", "g-1"), "poll")]
    _unchanged(world)


def test_an_order_that_cannot_be_polled_leaves_the_sweep_noted_once(world: World) -> None:
    world.store.link_order(OrderLink(MERCHANT, "ord_1", "g-1"), polled=True)
    calls: list[str] = []

    def fetch(merchant_id: str, order_id: str) -> dict[str, Any]:
        # What the UCP client answers for a 2026-01-11 merchant, which defines no Get Order.
        calls.append(order_id)
        raise MerchantRejected("UCP 2026-01-11 has no order route", code="order_lookup_unsupported")

    report = world.sweep(fetch)
    assert (report.polled, report.unreachable, report.failed) == (1, 1, 0)
    assert world.store.open_orders(10) == []
    assert world.sweep(fetch).polled == 0 and calls == ["ord_1"]
    (noted,) = [r for r in world.ledger.audit.records("g-1") if r.event == "tracking.unreachable"]
    assert noted.detail == {
        "merchantId": MERCHANT,
        "orderId": "ord_1",
        "why": "this merchant neither pushes order events nor can be polled",
    }
    assert world.ledger.store.require("g-1").status is GoalStatus.COMPLETED


@pytest.mark.parametrize(
    ("events", "version", "refused"),
    [("poll", OLD, True), ("poll", NEW, False), ("webhook", OLD, False), ("webhook", NEW, False)],
)
def test_a_merchant_set_to_poll_that_cannot_be_polled_is_refused(
    events: Any, version: str, refused: bool
) -> None:
    merchant = MerchantConfig(id=MERCHANT, url=MERCHANT_URL, orderEvents=events)
    if not refused:
        refuse_unreachable(merchant, version)
        return
    with pytest.raises(MerchantRejected) as refusal:
        refuse_unreachable(merchant, version)
    assert refusal.value.code == "order_events_unreachable" and "orderEvents: webhook" in str(refusal.value)


def test_the_receipts_order_is_linked_to_its_goal_once(world: World) -> None:
    from cartpilot.brands.config import load_brand
    from cartpilot.orders.links import link_goal_order, placed_order_id

    outputs = {"s1": {"checkoutId": "chk_1"}, "s3": {"orderId": "ord_9"}, "confirm": {"orderId": "ord_9"}}
    assert placed_order_id(outputs) == "ord_9"
    assert placed_order_id({"s1": {"checkoutId": "chk_1"}}) is None
    brand = load_brand("sandbox")
    link = link_goal_order("g-1", "ord_9", goals=world.ledger.store, brand=brand, store=world.store)
    assert link == OrderLink(MERCHANT, "ord_9", "g-1")
    # An order id is one goal's for good.
    world.store.link_order(OrderLink(MERCHANT, "ord_9", "g-2"), polled=False)
    assert world.store.goal_for_order(MERCHANT, "ord_9") == "g-1"
    assert world.store.open_orders(10) == []  # the sandbox merchant pushes its events


def test_the_platform_profile_advertises_the_webhook_in_each_versions_place() -> None:
    from cartpilot.commerce.platform_profile import platform_profile
    from cartpilot.commerce.signing_keys import SigningKeyRing, new_ring_secret

    ring = SigningKeyRing.from_secret(new_ring_secret())
    url = f"https://api.example/v1/webhooks/merchants/{MERCHANT}"
    current = platform_profile("https://api.example/v1", NEW, ring, webhook_merchant=MERCHANT)
    assert current["ucp"]["capabilities"]["dev.ucp.shopping.order"][0]["config"] == {"webhook_url": url}
    legacy = platform_profile("https://api.example/v1", OLD, ring, webhook_merchant=MERCHANT)
    (order,) = [c for c in legacy["ucp"]["capabilities"] if c["name"] == "dev.ucp.shopping.order"]
    assert order["config"] == {"webhook_url": url}
    quiet = platform_profile("https://api.example/v1", NEW, ring)
    assert "config" not in quiet["ucp"]["capabilities"]["dev.ucp.shopping.order"][0]


def test_profile_keys_refetch_for_an_unknown_kid_at_most_once_a_minute(key: SigningKey) -> None:
    import httpx

    from cartpilot.orders.merchant_keys import ProfileKeys

    fetched: list[str] = []

    def serve(request: httpx.Request) -> httpx.Response:
        fetched.append(str(request.url))
        return httpx.Response(200, json={"ucp": {"version": NEW}, "signing_keys": [key.public_jwk]})

    clock = [0.0]
    keys = ProfileKeys(
        lambda _: MERCHANT_URL, lambda _: NEW, transport=httpx.MockTransport(serve), clock=lambda: clock[0]
    )
    assert keys.signer(MERCHANT).keys == {key.kid: key.public_jwk}
    keys.signer(MERCHANT)
    assert len(fetched) == 1  # cached
    keys.signer(MERCHANT, refresh=True)
    keys.signer(MERCHANT, refresh=True)
    assert len(fetched) == 2  # one refetch per TTL, however many unknown kids arrive
    clock[0] += 61
    keys.signer(MERCHANT)
    assert len(fetched) == 3 and fetched[0] == f"{MERCHANT_URL}/.well-known/ucp"


def test_planning_refuses_a_polled_merchant_that_cannot_be_polled_before_anything_is_asked(brand, users):
    from pathlib import Path

    from cartpilot.commerce.feed import FeedCatalog
    from cartpilot.goals.model import GoalContext
    from cartpilot.planning.rules import PlanningFailed, RulesPlanner
    from tests.conftest import handler_chooser, planning_request
    from tests.fakes import FakeMerchant
    from tests.fakes.merchant import FakeShop

    feed = FeedCatalog.load(str(Path(__file__).resolve().parents[1] / "fixtures" / "feeds" / "sandbox.tsv"))
    merchant = FakeMerchant(shop=FakeShop(products=list(feed.products), offers_catalog=False, version=OLD))
    polled = brand.merchant().model_copy(update={"orderEvents": "poll"})
    planner = RulesPlanner(merchant, polled, feed, choose_handler=handler_chooser(merchant))
    with pytest.raises(PlanningFailed, match="neither pushes order events nor can be polled"):
        planner.plan(planning_request(brand, users, "a yoga mat", context=GoalContext()))
    assert merchant.shop.calls == []
