"""The money path against an attacker (issue 18): verification fails closed, an event pays an order only
for what it asked, a cancel racing a ship never refunds a shipped order, holds are bounded per shopper.

Stripe's side is tests/payments/recording_stripe.py (a Stripe API of the suite's own that records
every refund) or the shop's stand-in; events are signed with the stripe library's own scheme.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from threading import Barrier

import pytest
import stripe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from shop import payments
from shop.extensions import db
from shop.mail.models import OutboxMail
from shop.models import Role, WebhookEvent
from shop.payments import events as stripe_events
from shop.payments.webhook import InvalidSignature, verify
from shop.store import cart, checkout, lifecycle, orders
from shop.store.models import CheckoutSession, Order
from tests.conftest import STRIPE_WEBHOOK_SECRET
from tests.payments.conftest import ADDRESS
from tests.payments.recording_stripe import recording_stripe
from tests.payments.support import checkout_session, post_event, stripe_event, stripe_headers
from tests.store.conftest import checkout_fields, latest_order_id
from tests.support import live_server

METRICS_TOKEN = "metrics-token-for-money-tests"


def completed(order_id: int, **fields):
    return stripe_event("checkout.session.completed", checkout_session(order_id, f"cs_test_{order_id}", **fields))


def state(app, order_id: int) -> tuple[str, str, bool]:
    with app.app_context():
        order = db.session.get(Order, order_id)
        found = (order.status, order.payment_status, order.holds_stock)
        db.session.rollback()
        return found


def rows(app, model, *where) -> int:
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(model).where(*where))
        db.session.rollback()
        return count


# --- 1. verification fails closed ---------------------------------------------------------------------------


def test_a_non_ascii_signature_pays_nothing(client, app, pending_order):
    """The critical finding: `v1=\\xe9` made stripe raise TypeError, which the old check took for a pass."""
    order_id, _ = pending_order()
    body = json.dumps(completed(order_id))
    header = f"t={int(time.time())},v1=\xe9"
    with pytest.raises((TypeError, stripe.SignatureVerificationError)):  # the library itself does not say "no"
        stripe.WebhookSignature.verify_header(body, header, STRIPE_WEBHOOK_SECRET)
    response = client.post("/api/webhooks/stripe", data=body, headers={"Stripe-Signature": header})
    assert (response.status_code, response.json) == (400, {"error": "Invalid signature"})
    assert state(app, order_id) == ("placed", "pending", True)
    assert rows(app, WebhookEvent) == rows(app, OutboxMail) == 0
    with pytest.raises(InvalidSignature):
        verify(body.encode(), header, [STRIPE_WEBHOOK_SECRET, "whsec_second"])


def test_a_body_that_is_not_utf8_is_refused_at_the_signature(client, app, pending_order):
    with pytest.raises(UnicodeDecodeError):
        verify(b"\xff\xfe", f"t={int(time.time())},v1=00", [STRIPE_WEBHOOK_SECRET])


_ODD = st.text(st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"), max_size=60)
_HEX = st.text("0123456789abcdef", max_size=70)
_PART = st.one_of(
    st.builds("t={}".format, st.one_of(st.integers(), st.just("now"), _ODD)),
    st.builds("v1={}".format, st.one_of(_HEX, _ODD)),
    st.builds("v0={}".format, _HEX),
    _ODD,
)
_HEADERS = st.one_of(_ODD, st.lists(_PART, max_size=12).map(",".join))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=_HEADERS, forged_body=st.one_of(st.none(), st.binary(max_size=200)))
def test_nothing_unsigned_is_ever_processed(client, app, pending_order, header, forged_body):
    """Any Stripe-Signature (bytes above ASCII, parts missing or repeated, many v1=) with a body naming a
    pending order, or with any other bytes: refused, and nothing recorded or changed."""
    if not hasattr(test_nothing_unsigned_is_ever_processed, "order"):
        test_nothing_unsigned_is_ever_processed.order = pending_order()[0]  # type: ignore[attr-defined]
    order_id = test_nothing_unsigned_is_ever_processed.order  # type: ignore[attr-defined]
    header = header.replace("now", str(int(time.time())))
    body = forged_body if forged_body is not None else json.dumps(completed(order_id)).encode()
    response = client.post("/api/webhooks/stripe", data=body, headers={"Stripe-Signature": header})
    assert response.status_code == 400
    assert state(app, order_id) == ("placed", "pending", True)
    assert rows(app, WebhookEvent) == 0


@pytest.fixture(autouse=True)
def _forget_the_property_tests_order():
    yield
    if hasattr(test_nothing_unsigned_is_ever_processed, "order"):
        del test_nothing_unsigned_is_ever_processed.order  # type: ignore[attr-defined]


def test_a_signature_of_other_bytes_is_refused(client, app, pending_order):
    order_id, _ = pending_order()
    body = json.dumps(completed(order_id))
    signed_for_another = stripe_headers(json.dumps(completed(order_id, amount_total=1)))
    response = client.post("/api/webhooks/stripe", data=body, headers=signed_for_another)
    assert response.status_code == 400
    assert state(app, order_id) == ("placed", "pending", True)


# --- 2. an event pays an order only for what it asked --------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"amount_subtotal": 1, "amount_total": 1, "currency": "usd"}, "charged in USD but order #1 is in EUR"),
        ({"amount_subtotal": 1, "amount_total": 1}, "charged a subtotal of €0.01 but order #1 asked for €10.00"),
        ({"currency": "usd"}, "charged in USD"),
        ({"amount_subtotal": None}, "does not state its amounts"),
        ({"amount_subtotal": "1000"}, "does not state its amounts"),
        ({"amount_total": True}, "does not state its amounts"),
    ],
)
def test_an_event_that_charged_another_amount_pays_nothing(make_app, make_user, make_product, fields, why):
    app = make_app(METRICS_TOKEN=METRICS_TOKEN)
    client = app.test_client()
    make_user("user_payer", email="payer@example.com")
    product = make_product(stock=10, price_cents=1000)
    with app.app_context():
        user = db.session.scalar(select(db.text("id")).select_from(db.text("users")))
        cart.add(user, product_id=product, quantity=1)
        order_id = checkout.place_order(user, "mismatch-key-000001", address=ADDRESS).order.id
        stripe_events.remember_session(order_id, f"cs_test_{order_id}")
        db.session.commit()
    event = completed(order_id, **fields)
    response = post_event(client, event)
    assert (response.status_code, response.json) == (200, {"status": "refused"})
    assert state(app, order_id) == ("placed", "pending", True)
    assert rows(app, OutboxMail) == 0
    with app.app_context():
        stored = db.session.execute(select(WebhookEvent.status, WebhookEvent.error)).one()
        order = db.session.get(Order, order_id)
        assert stored.status == "failed" and why in stored.error and "was not marked paid" in stored.error
        assert order.payment_warning == stored.error and order.charged_total_cents is None
    # Sent again, it is refused again (a failed row is taken over, and the rule has not changed).
    assert post_event(client, event).json == {"status": "refused"}
    assert state(app, order_id) == ("placed", "pending", True)
    # Staff see why on the order; /metrics counts it.
    staff = app.test_client()
    make_user("user_staff", role=Role.ADMIN)
    from tests.conftest import TOKENS

    staff.set_cookie("__session", TOKENS.mint("user_staff"))
    page = staff.get(f"/admin/orders/{order_id}").get_data(as_text=True)
    assert "Payment refused:" in page and why in page
    scrape = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).get_data(as_text=True)
    refused = re.search(
        r'shop_webhook_deliveries_total\{outcome="refused",source="stripe",type="checkout.session.completed"\} (\S+)',
        scrape,
    )
    assert refused is not None and float(refused.group(1)) >= 2
    assert re.search(r'shop_webhook_failed_events\{source="stripe"\} 1\.0', scrape)


def test_a_matching_event_pays_and_records_what_stripe_charged(client, app, pending_order):
    order_id, _ = pending_order()
    # Tax and shipping come on top of the lines (outside the subtotal): the total is recorded as charged.
    response = post_event(client, completed(order_id, amount_subtotal=1000, amount_total=1190))
    assert response.json == {"status": "processed"}
    with app.app_context():
        order = db.session.get(Order, order_id)
        assert (order.payment_status, order.charged_total_cents, order.payment_warning) == ("paid", 1190, None)


def test_an_event_for_any_session_the_order_created_applies(client, app, pending_order):
    order_id, _ = pending_order()
    with app.app_context():  # a second session, now the order's newest (a later issue's "pay again")
        stripe_events.remember_session(order_id, "cs_test_newer")
        db.session.execute(
            Order.__table__.update().where(Order.id == order_id).values(stripe_checkout_session_id="cs_test_newer")
        )
        db.session.commit()
    older_expired = checkout_session(order_id, f"cs_test_{order_id}", status="expired", payment_status="unpaid")
    assert post_event(client, stripe_event("checkout.session.expired", older_expired)).json == {"status": "processed"}
    assert state(app, order_id) == ("placed", "pending", True)  # the newer session is still open
    assert post_event(client, completed(order_id)).json == {"status": "processed"}  # the older one paid after all
    assert state(app, order_id) == ("placed", "paid", True)


def test_a_session_the_order_did_not_create_pays_nothing(client, app, pending_order):
    order_id, _ = pending_order()
    foreign = checkout_session(order_id, "cs_test_someone_elses", order_key="not-this-orders-key")
    assert post_event(client, stripe_event("checkout.session.completed", foreign)).status_code == 200
    assert state(app, order_id) == ("placed", "pending", True)
    with app.app_context():
        assert (
            db.session.scalar(select(CheckoutSession.id).where(CheckoutSession.id == "cs_test_someone_elses")) is None
        )


# --- 3. a cancel racing a ship -------------------------------------------------------------------------------


@pytest.fixture
def stripe_api(app):
    with recording_stripe(app) as recording:
        yield recording


@pytest.fixture
def paid_checkout(app, client, shopper, make_product, stripe_api):
    """A real checkout paid on (recording) Stripe and confirmed by its signed event; returns the order id."""
    keys = itertools.count(1)

    def pay(quantity: int = 1, *, product_id: int | None = None) -> int:
        product_id = product_id or make_product(stock=50, price_cents=1000)
        order_id = open_checkout(app, shopper, product_id, quantity, key=f"paid-checkout-{next(keys):06d}")
        with app.app_context():
            session_id = db.session.get(Order, order_id).stripe_checkout_session_id
        session = stripe_api.complete(session_id)
        assert post_event(client, stripe_event("checkout.session.completed", session)).json == {"status": "processed"}
        return order_id

    return pay


def open_checkout(app, user_id: int, product_id: int, quantity: int, *, key: str) -> int:
    """Place an order and open its Checkout Session, as POST /checkout does."""
    with app.test_request_context():
        cart.add(user_id, product_id=product_id, quantity=quantity)
        order = checkout.place_order(user_id, key, address=ADDRESS).order
        payments.checkout.start(order)
        return order.id


def in_threads(app, calls):
    """Run the calls at the same moment, each in its own app context; what each returned or raised."""
    barrier = Barrier(len(calls))

    def run(call):
        with app.app_context():
            barrier.wait()
            try:
                return call()
            except Exception as exc:
                return exc
            finally:
                db.session.remove()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_nine_cancels_and_a_ship_never_leave_a_shipped_order_refunded(app, paid_checkout, stripe_api, shopper):
    outcomes = set()
    for _ in range(4):
        order_id = paid_checkout()
        calls = [partial(payments.checkout.cancel, order_id, by="shopper", user_id=shopper)] * 9
        calls.insert(4, partial(orders.move, order_id, "shipped", by="staff"))
        in_threads(app, calls)
        status, payment, holds = state(app, order_id)
        with app.app_context():
            order = db.session.get(Order, order_id)
            intent, requests = order.stripe_payment_intent_id, order.refund_requests
        refunds = [refund for refund in stripe_api.refunds if refund.payment_intent == intent]
        if status == "shipped":
            assert (payment, holds, refunds, requests) == ("paid", True, [], 0)
        else:
            assert (status, payment, holds, requests) == ("cancelled", "refund_pending", False, 1)
            assert len({refund.id for refund in refunds}) == 1  # one refund, asked once
        outcomes.add(status)
    assert outcomes <= {"shipped", "cancelled"}


def test_two_cancels_at_once_ask_stripe_for_one_refund(app, paid_checkout, stripe_api, shopper, stock_of):
    order_id = paid_checkout(3)
    results = in_threads(app, [lambda: payments.checkout.cancel(order_id, by="shopper", user_id=shopper)] * 2)
    assert sum(isinstance(result, Order) for result in results) >= 1
    with app.app_context():
        order = db.session.get(Order, order_id)
        assert (order.status, order.payment_status, order.refund_requests) == ("cancelled", "refund_pending", 1)
        assert order.stripe_refund_id == stripe_api.refunds[0].id
    assert len(stripe_api.refunds) == 1
    assert stripe_api.refunds[0].idempotency_key.endswith("-refund-1")


def test_a_refund_stripe_could_not_be_asked_for_is_asked_again_by_the_sweep(app, paid_checkout, stripe_api, shopper):
    order_id = paid_checkout()
    app.config["STRIPE_API_BASE"] = "http://127.0.0.1:9"  # nothing listens: Stripe cannot be reached
    app.extensions.pop("stripe_clients", None)
    with app.app_context(), pytest.raises(payments.PaymentsUnavailable, match="will be asked again"):
        payments.checkout.cancel(order_id, by="shopper", user_id=shopper)
    assert state(app, order_id) == ("cancelled", "refund_pending", False)  # decided, whatever Stripe said
    assert stripe_api.refunds == []
    with recording_stripe(app) as again, app.app_context():
        again.charged = stripe_api.charged
        later = payments.checkout.REFUND_RETRY_AFTER * 2
        from datetime import UTC, datetime

        counts = payments.checkout.sweep(now=datetime.now(UTC) + later)
        assert counts["refunds asked"] == 1
        assert [refund.idempotency_key for refund in again.refunds] == [again.refunds[0].idempotency_key]
        assert again.refunds[0].idempotency_key.endswith("-refund-1")
        assert db.session.get(Order, order_id).stripe_refund_id == again.refunds[0].id


def test_every_asker_of_one_refund_derives_its_key_and_stripe_makes_one(app, paid_checkout, stripe_api, shopper):
    """The cancel asked Stripe for the refund, and its answer was never recorded (the process died between
    the two): whoever asks again, here two askers at once as the sweep and a retry might, derives the same
    key, so Stripe replays the first refund instead of making more (RecordingStripe makes what it is asked)."""
    order_id = paid_checkout()
    with app.app_context():
        payments.checkout.cancel(order_id, by="shopper", user_id=shopper)
        db.session.execute(update(Order).where(Order.id == order_id).values(stripe_refund_id=None))
        db.session.commit()
    in_threads(app, [partial(payments.checkout.ask_refund, order_id)] * 2)
    assert len(stripe_api.refunds) == 1, [refund.idempotency_key for refund in stripe_api.refunds]
    with app.app_context():
        assert db.session.get(Order, order_id).stripe_refund_id == stripe_api.refunds[0].id


def test_a_hold_is_given_back_once(app, pending_order, stock_of):
    order_id, product = pending_order(3, stock=5)
    assert stock_of(product) == 2
    with app.app_context():
        assert lifecycle.release_stock(order_id) is True
        assert lifecycle.release_stock(order_id) is False
        db.session.commit()
    assert stock_of(product) == 5
    with app.app_context():  # and a move that gives stock back, taken after, gives nothing again
        order = lifecycle.lock(order_id)
        lifecycle.take(order, lifecycle.Move.FAIL, by="test")
        db.session.commit()
    assert stock_of(product) == 5


# --- 4. one account cannot hold all the stock ----------------------------------------------------------------


def test_a_shopper_has_at_most_three_unpaid_orders(app, shopper, make_product, stripe_api):
    product = make_product(stock=100)
    for n in range(3):
        order_id = open_checkout(app, shopper, product, 1, key=f"unpaid-order-{n:06d}")
        with app.app_context():
            session_id = db.session.get(Order, order_id).stripe_checkout_session_id
        stripe_api.sessions[session_id].update(status="complete", payment_status="unpaid")  # a bank debit on its way
    with app.app_context():
        # A new checkout expires what it can: sessions awaiting an asynchronous payment cannot be expired.
        assert payments.checkout.expire_earlier_checkouts(shopper, keep_key="unpaid-order-000003") == 0
        cart.add(shopper, product_id=product, quantity=1)
        with pytest.raises(checkout.HoldLimit, match="You have 3 unpaid orders; pay or cancel one"):
            checkout.place_order(shopper, "unpaid-order-000003", address=ADDRESS)


def test_one_shoppers_holds_of_a_product_are_capped(app, shopper, make_product, stock_of):
    poster = make_product(stock=15, name="Poster")
    with app.app_context():
        cart.add(shopper, product_id=poster, quantity=8)
        checkout.place_order(shopper, "poster-order-000001", address=ADDRESS)
        cart.add(shopper, product_id=poster, quantity=3)
        with pytest.raises(checkout.HoldLimit, match="already hold 8 of Poster, and one shopper can hold at most 10"):
            checkout.place_order(shopper, "poster-order-000002", address=ADDRESS)
        cart.set_quantity(shopper, poster, 2)
        checkout.place_order(shopper, "poster-order-000003", address=ADDRESS)
    assert stock_of(poster) == 5


def test_a_new_checkout_expires_the_shoppers_open_session(app, client, sign_in, make_product, post_form, stock_of):
    """Through the pages and the shop's Stripe stand-in: the second checkout gives the first's stock back."""
    with live_server(app) as url:
        app.config["STRIPE_API_BASE"] = f"{url}/dev-stripe"
        posters = make_product("poster", stock=15)
        sign_in("user_hoarder")
        post_form("/cart/add", {"slug": "poster", "quantity": "10"})
        assert client.post("/checkout", data=checkout_fields(client)).status_code == 303
        first = latest_order_id(app, "user_hoarder")
        assert stock_of(posters) == 5
        post_form("/cart/add", {"slug": "poster", "quantity": "5"})
        assert client.post("/checkout", data=checkout_fields(client)).status_code == 303
        second = latest_order_id(app, "user_hoarder")
    assert second != first
    assert state(app, first) == ("cancelled", "failed", False)
    assert state(app, second) == ("placed", "pending", True)
    assert stock_of(posters) == 10


def test_staff_see_the_stock_unpaid_orders_hold(app, pending_order, make_user, tokens):
    pending_order(4)
    make_user("user_staff", role=Role.ADMIN)
    staff = app.test_client()
    staff.set_cookie("__session", tokens.mint("user_staff"))
    page = staff.get("/admin/products").get_data(as_text=True)
    assert re.search(r'data-testid="held-by-unpaid"[^>]*>\s*4\b', page), page


def test_replaying_a_refused_event_is_refused_again_and_says_so(client, app, pending_order, runner):
    order_id, _ = pending_order()
    event = completed(order_id, amount_subtotal=1, amount_total=1)
    assert post_event(client, event).json == {"status": "refused"}
    result = app.test_cli_runner().invoke(args=["webhooks", "replay", event["id"]])
    assert result.exit_code == 1 and f"{event['id']}: refused" in result.output
    assert state(app, order_id) == ("placed", "pending", True)
