"""POST /api/webhooks/stripe: Stripe's signature scheme checked by the stripe library on the raw bytes;
every event recorded with its effect; duplicates, replays and any order of arrival have one effect."""

import json
import time
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from shop.extensions import db
from shop.mail.models import OutboxMail
from shop.models import WebhookEvent
from shop.store.models import Order
from tests.conftest import STRIPE_WEBHOOK_SECRET
from tests.payments.conftest import FIRST_KEY
from tests.payments.support import charge, checkout_session, post_event, refund, stripe_event, stripe_headers
from tests.support import live_server

OTHER_SECRET = "whsec_test_YW5vdGhlciBzdHJpcGUgc2VjcmV0"


def completed(order_id, **fields):
    return stripe_event("checkout.session.completed", checkout_session(order_id, f"cs_test_{order_id}", **fields))


def events(app):
    with app.app_context():
        rows = db.session.execute(
            select(WebhookEvent.source, WebhookEvent.svix_id, WebhookEvent.type, WebhookEvent.status).order_by(
                WebhookEvent.id
            )
        ).all()
        db.session.rollback()
        return [tuple(row) for row in rows]


def order_state(app, order_id):
    with app.app_context():
        order = db.session.get(Order, order_id)
        state = (order.status, order.payment_status, order.holds_stock)
        db.session.rollback()
        return state


def mails(app):
    with app.app_context():
        kinds = db.session.scalars(select(OutboxMail.kind).order_by(OutboxMail.id)).all()
        db.session.rollback()
        return kinds


# --- signatures ----------------------------------------------------------------------------------------


def test_missing_signature(client):
    response = client.post("/api/webhooks/stripe", data="{}", content_type="application/json")
    assert (response.status_code, response.json) == (400, {"error": "Missing Stripe-Signature header"})


@pytest.mark.parametrize(
    "header",
    ["garbage", "t=abc,v1=00", "t=1700000000", "v1=deadbeef", "t=1700000000,v0=" + "0" * 64, ",,,", "t=,v1="],
)
def test_garbled_signatures_are_400(client, app, header):
    body = json.dumps(stripe_event("checkout.session.completed", {}))
    response = client.post("/api/webhooks/stripe", data=body, headers={"Stripe-Signature": header})
    assert (response.status_code, response.json) == (400, {"error": "Invalid signature"})
    assert events(app) == []


def test_forged_signature_is_400(client, app, pending_order):
    order_id, _ = pending_order()
    response = post_event(client, completed(order_id), secret="whsec_forged_by_someone")
    assert (response.status_code, response.json) == (400, {"error": "Invalid signature"})
    assert order_state(app, order_id) == ("placed", "pending", True)


def test_a_signed_body_changed_in_transit_is_400(client, app, pending_order):
    order_id, _ = pending_order()
    body = json.dumps(completed(order_id))
    headers = stripe_headers(body)
    tampered = body.replace('"paid"', '"unpaid"', 1)
    assert client.post("/api/webhooks/stripe", data=tampered, headers=headers).status_code == 400


def test_stale_signature_is_400_and_recent_one_passes(client, app, pending_order):
    order_id, _ = pending_order()
    stale = post_event(client, completed(order_id), timestamp=int(time.time()) - 301)
    assert (stale.status_code, stale.json) == (400, {"error": "Invalid signature"})
    fresh = post_event(client, completed(order_id), timestamp=int(time.time()) - 250)
    assert fresh.json == {"status": "processed"}


def test_rotation_accepts_either_secret(make_app, pending_order):
    app = make_app(STRIPE_WEBHOOK_SECRET=f"{OTHER_SECRET} {STRIPE_WEBHOOK_SECRET}")
    client = app.test_client()
    assert post_event(client, stripe_event("customer.created", {"id": "cus_1"}), secret=OTHER_SECRET).status_code == 200
    assert post_event(client, stripe_event("customer.created", {"id": "cus_2"})).status_code == 200
    assert post_event(client, stripe_event("customer.created", {}), secret="whsec_retired").status_code == 400


def test_a_header_with_two_signatures_during_a_stripe_side_roll(client):
    """Stripe signs with the old and the new secret while one is rolled: either v1 may match."""
    body = json.dumps(stripe_event("customer.created", {"id": "cus_1"}))
    ours = stripe_headers(body)["Stripe-Signature"]
    theirs = stripe_headers(body, secret=OTHER_SECRET)["Stripe-Signature"].split(",")[1]
    response = client.post("/api/webhooks/stripe", data=body, headers={"Stripe-Signature": f"{theirs},{ours}"})
    assert response.json == {"status": "ignored"}


def test_no_secret_configured_is_503(make_app):
    app = make_app(STRIPE_WEBHOOK_SECRET="", SHOP_DEV_STRIPE="0", STRIPE_SECRET_KEY="sk_test_x")
    response = post_event(app.test_client(), stripe_event("customer.created", {}))
    assert response.status_code == 503


def test_not_utf8_not_json_not_an_event(client, app):
    bad_bytes = b"\xff\xfe{}"
    response = client.post("/api/webhooks/stripe", data=bad_bytes, headers={"Stripe-Signature": "t=1,v1=00"})
    assert response.status_code == 400
    assert post_event(client, "not json {").json == {"error": "Body is not JSON"}
    assert post_event(client, '{"a": "\\u0000"}').status_code == 400
    not_event = post_event(client, {"id": "evt_test_x", "object": "charge"})
    assert not_event.status_code == 400 and "Not a Stripe event" in not_event.json["error"]
    assert events(app) == [("stripe", "evt_test_x", None, "failed")]
    assert post_event(client, [1, 2]).status_code == 400


def test_too_large_is_413(client):
    body = json.dumps(stripe_event("customer.created", {"pad": "x" * (1024 * 1024)}))
    assert post_event(client, body).status_code == 413


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payload=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=20,
    )
)
def test_any_signed_json_is_answered_without_a_500(client, payload):
    response = post_event(client, payload)
    assert response.status_code in (200, 400)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    obj=st.dictionaries(
        st.sampled_from(
            ["id", "client_reference_id", "payment_status", "status", "payment_intent", "metadata", "refunded"]
        ),
        st.none()
        | st.booleans()
        | st.integers()
        | st.text(max_size=30)
        | st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
    )
)
def test_handled_types_with_odd_objects_never_500(client, obj):
    for kind in ("checkout.session.completed", "checkout.session.expired", "checkout.session.async_payment_failed"):
        expected = 400 if _holds_a_nul(obj) else 200  # JSONB cannot store NUL: refused, not a 500
        assert post_event(client, stripe_event(kind, obj)).status_code == expected


def _holds_a_nul(value) -> bool:
    """A NUL character in any key or string of `value`. (Not `"\\u0000" in json.dumps(value)`: a string
    holding the six characters backslash, u, 0, 0, 0, 0 is dumped with that text in it too, and it is
    no NUL: JSONB stores it, and the webhook answers 200.)"""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_a_nul(key) or _holds_a_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_a_nul(item) for item in value)
    return False


# --- effects, duplicates and order of arrival ------------------------------------------------------------


def test_completed_marks_paid_once_and_queues_one_email(client, app, pending_order, stock_of):
    order_id, product = pending_order()
    event = completed(order_id)
    assert post_event(client, event).json == {"status": "processed"}
    assert post_event(client, event).json == {"status": "duplicate"}
    assert order_state(app, order_id) == ("placed", "paid", True)
    assert mails(app) == ["order_confirmed"]
    assert events(app) == [("stripe", event["id"], "checkout.session.completed", "processed")]
    assert stock_of(product) == 9


def test_completed_twice_with_two_event_ids_has_one_effect(client, app, pending_order):
    order_id, _ = pending_order()
    assert post_event(client, completed(order_id)).json == {"status": "processed"}
    assert post_event(client, completed(order_id)).json == {"status": "processed"}
    assert order_state(app, order_id) == ("placed", "paid", True)
    assert mails(app) == ["order_confirmed"]


def test_expired_after_completed_changes_nothing(client, app, pending_order, stock_of):
    order_id, product = pending_order()
    post_event(client, completed(order_id))
    expired = stripe_event(
        "checkout.session.expired",
        checkout_session(order_id, f"cs_test_{order_id}", status="expired", payment_status="unpaid"),
    )
    assert post_event(client, expired).json == {"status": "processed"}
    assert order_state(app, order_id) == ("placed", "paid", True)
    assert stock_of(product) == 9


def test_expired_releases_the_stock_once(client, app, pending_order, stock_of):
    order_id, product = pending_order(3)
    session = checkout_session(order_id, f"cs_test_{order_id}", status="expired", payment_status="unpaid")
    for _ in range(2):  # a second event id for the same expiry
        assert post_event(client, stripe_event("checkout.session.expired", session)).status_code == 200
    assert order_state(app, order_id) == ("cancelled", "failed", False)
    assert stock_of(product) == 10
    assert mails(app) == []


def test_async_payment_failed_after_an_unpaid_completion(client, app, pending_order, stock_of):
    order_id, product = pending_order(2)
    unpaid = checkout_session(order_id, f"cs_test_{order_id}", payment_status="unpaid")
    assert post_event(client, stripe_event("checkout.session.completed", unpaid)).status_code == 200
    assert order_state(app, order_id) == ("placed", "pending", True)
    assert post_event(client, stripe_event("checkout.session.async_payment_failed", unpaid)).status_code == 200
    assert order_state(app, order_id) == ("cancelled", "failed", False)
    assert stock_of(product) == 10


def test_async_payment_succeeded_before_the_completion(client, app, pending_order):
    order_id, _ = pending_order()
    session = checkout_session(order_id, f"cs_test_{order_id}")
    post_event(client, stripe_event("checkout.session.async_payment_succeeded", session))
    post_event(client, stripe_event("checkout.session.completed", {**session, "payment_status": "unpaid"}))
    assert order_state(app, order_id) == ("placed", "paid", True)
    assert mails(app) == ["order_confirmed"]


def test_refund_before_completion_ends_refunded(client, app, pending_order, stock_of):
    order_id, product = pending_order()
    assert post_event(client, stripe_event("charge.refunded", charge(order_id, order_key=FIRST_KEY))).status_code == 200
    assert post_event(client, completed(order_id)).status_code == 200
    assert order_state(app, order_id) == ("cancelled", "refunded", False)
    assert stock_of(product) == 10
    assert mails(app) == []


def test_a_refund_nobody_can_match_yet_is_500_then_replayed(client, app, runner, pending_order):
    order_id, _ = pending_order()
    early = stripe_event("charge.refunded", charge(order_id))  # no metadata: only the payment intent names it
    response = post_event(client, early)
    assert response.status_code == 500
    assert events(app)[-1][1:] == (early["id"], "charge.refunded", "failed")
    post_event(client, completed(order_id))  # now the order knows its payment intent
    result = runner.invoke(args=["webhooks", "replay", early["id"]])
    assert result.exit_code == 0 and "processed" in result.output
    assert order_state(app, order_id) == ("cancelled", "refunded", False)


def test_a_partial_refund_leaves_the_order_paid(client, app, pending_order):
    order_id, _ = pending_order()
    post_event(client, completed(order_id))
    post_event(client, stripe_event("charge.refunded", charge(order_id, refunded=False)))
    assert order_state(app, order_id) == ("placed", "paid", True)


def test_a_failed_refund_makes_the_cancelled_order_paid_again_once(client, app, pending_order, stock_of, caplog):
    order_id, product = pending_order()
    post_event(client, completed(order_id))
    post_event(client, stripe_event("charge.refunded", charge(order_id)))
    assert order_state(app, order_id) == ("cancelled", "refunded", False)
    failed = stripe_event("refund.failed", refund(order_id))
    assert post_event(client, failed).json == {"status": "processed"}
    assert post_event(client, failed).json == {"status": "duplicate"}
    # The money is still ours: paid, still cancelled, its stock given back once (at the refund).
    assert order_state(app, order_id) == ("cancelled", "paid", False)
    assert stock_of(product) == 10
    assert f"order {order_id}: Stripe could not refund the payment (expired_or_canceled_card)" in caplog.text
    post_event(client, stripe_event("refund.failed", refund(order_id)))  # another failed refund: nothing more
    assert order_state(app, order_id) == ("cancelled", "paid", False)


def test_a_failed_refund_of_an_order_waiting_for_its_refund(client, app, pending_order):
    """Cancelled with a refund asked (refund_pending), and refund.failed comes before any charge.refunded."""
    order_id, _ = pending_order()
    post_event(client, completed(order_id))
    with app.app_context():
        db.session.execute(text("UPDATE orders SET status = 'cancelled', payment_status = 'refund_pending'"))
        db.session.commit()
    post_event(client, stripe_event("refund.failed", refund(order_id, order_key=FIRST_KEY)))
    assert order_state(app, order_id)[:2] == ("cancelled", "paid")


def test_a_failed_refund_of_no_order_is_ignored(client, app, pending_order):
    order_id, _ = pending_order()
    response = post_event(client, stripe_event("refund.failed", refund(order_id + 1000, payment_intent="pi_other")))
    assert response.json == {"status": "processed"}
    assert order_state(app, order_id) == ("placed", "pending", True)


def test_unknown_types_and_foreign_sessions_are_recorded_and_ignored(client, app, pending_order):
    order_id, _ = pending_order()
    assert post_event(client, stripe_event("invoice.paid", {"id": "in_1"})).json == {"status": "ignored"}
    foreign = checkout_session(order_id, "cs_test_someone_else")  # not this order's session
    assert post_event(client, stripe_event("checkout.session.completed", foreign)).json == {"status": "processed"}
    link = checkout_session(order_id, "cs_test_link", client_reference_id=None)
    assert post_event(client, stripe_event("checkout.session.completed", link)).status_code == 200
    assert order_state(app, order_id) == ("placed", "pending", True)
    assert [e[3] for e in events(app)] == ["ignored", "processed", "processed"]


def test_twenty_identical_deliveries_at_once_have_one_effect(app, pending_order):
    order_id, _ = pending_order()
    body = json.dumps(completed(order_id))
    barrier = Barrier(20)

    def send(_):
        barrier.wait()
        return requests.post(f"{url}/api/webhooks/stripe", data=body, headers=stripe_headers(body), timeout=30)

    with live_server(app) as url, ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(send, range(20)))
    assert sorted(r.json()["status"] for r in responses) == ["duplicate"] * 19 + ["processed"]
    assert order_state(app, order_id) == ("placed", "paid", True)
    assert mails(app) == ["order_confirmed"]
    assert len(events(app)) == 1


class OrderFault:
    """A database-level fault on the orders table: every UPDATE raises, between arm() and fix()."""

    def __init__(self, app):
        self.app = app

    def arm(self):
        with self.app.app_context():
            db.session.execute(
                text(
                    "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'orders are read-only in this test'; END $$"
                )
            )
            db.session.execute(
                text("CREATE TRIGGER test_refuse BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION test_refuse()")
            )
            db.session.commit()

    def fix(self):
        with self.app.app_context():
            db.session.execute(text("DROP TRIGGER IF EXISTS test_refuse ON orders"))
            db.session.execute(text("DROP FUNCTION IF EXISTS test_refuse()"))
            db.session.commit()


@pytest.fixture
def order_fault(app):
    fault = OrderFault(app)
    yield fault
    fault.fix()


def test_a_failure_is_500_with_nothing_half_written_then_retried(client, app, pending_order, order_fault):
    order_id, _ = pending_order()
    event = completed(order_id)
    order_fault.arm()
    response = post_event(client, event)
    assert response.status_code == 500 and "retried" in response.json["error"]
    assert order_state(app, order_id) == ("placed", "pending", True)
    assert mails(app) == []  # the e-mail row went with the rolled-back transaction
    assert events(app) == [("stripe", event["id"], "checkout.session.completed", "failed")]
    order_fault.fix()
    assert post_event(client, event).json == {"status": "processed"}  # Stripe's retry
    assert order_state(app, order_id) == ("placed", "paid", True)
    assert mails(app) == ["order_confirmed"]


def test_database_down_mid_delivery_is_500(make_app):
    """A database that does not answer: 500 (Stripe retries), never a traceback to the sender."""
    app = make_app(DATABASE_URL="postgresql://postgres@127.0.0.1:1/nowhere")
    response = post_event(app.test_client(), completed(1))
    assert response.status_code == 500
    assert "Traceback" not in response.get_data(as_text=True)


def test_list_and_replay_show_both_sources(client, app, runner, deliver, pending_order):
    from tests.support import clerk_user, event

    deliver(event("user.created", clerk_user("user_listed", email="listed@example.com")), svix_id="msg_listed")
    order_id, _ = pending_order()
    paid = completed(order_id)
    post_event(client, paid)
    listing = runner.invoke(args=["webhooks", "list"]).output
    assert "msg_listed" in listing and paid["id"] in listing and "stripe" in listing and "clerk" in listing
    only_stripe = runner.invoke(args=["webhooks", "list", "--source", "stripe"]).output
    assert paid["id"] in only_stripe and "msg_listed" not in only_stripe
    again = runner.invoke(args=["webhooks", "replay", paid["id"]])
    assert again.exit_code == 0 and "duplicate" in again.output


def test_the_admin_webhook_page_shows_both_sources(app, client, sign_in, deliver, pending_order):
    from shop.models import Role
    from tests.support import clerk_user, event

    deliver(event("user.created", clerk_user("user_seen", email="seen@example.com")), svix_id="msg_seen")
    order_id, _ = pending_order()
    paid = completed(order_id)
    post_event(client, paid)
    staff = app.test_client()
    sign_in("user_staff", as_client=staff, role=Role.ADMIN)
    both = staff.get("/admin/webhooks").get_data(as_text=True)
    assert both.count('data-testid="webhook-source"') == 2 and "checkout.session.completed" in both
    stripe_only = staff.get("/admin/webhooks?source=stripe").get_data(as_text=True)
    assert "checkout.session.completed" in stripe_only and "user.created" not in stripe_only
    with app.app_context():
        event_id = db.session.scalar(select(WebhookEvent.id).where(WebhookEvent.source == "stripe"))
    detail = staff.get(f"/admin/webhooks/{event_id}").get_data(as_text=True)
    assert paid["id"] in detail and "Event id" in detail
