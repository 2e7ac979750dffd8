"""A way back from a failed or abandoned payment, through the pages, the `stripe` library and the local
Stripe stand-in (over real HTTP), and Stripe's signed events: *Pay now* opens a new attempt's session
and expires the open one; two at once open one; an earlier attempt's expiry leaves the order waiting;
a payment on its way offers nothing to pay; the return page says a failed payment failed; an order left
without a session is given up by the sweep; the orders list says where each order's money stands."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from threading import Barrier

import pytest
import stripe
from sqlalchemy import select

from shop import payments
from shop.extensions import db
from shop.models import WebhookEvent
from shop.payments import client as stripe_client
from shop.store import lifecycle
from shop.store.models import CheckoutSession, Order
from tests.conftest import TOKENS
from tests.payments.conftest import FIRST_KEY
from tests.payments.support import checkout_session, post_event, stripe_event
from tests.store.conftest import checkout_fields, csrf_token_from, latest_order_id, on_standin_page
from tests.support import wait_for

PAY_NOW = ">Pay now</button>"


def text(response) -> str:
    return response.get_data(as_text=True)


def check_out(app, client, clerk_id: str, post_form, quantity: int = 2) -> tuple[int, str]:
    """A signed-in shopper's checkout through the form: the order and its first session's URL."""
    post_form("/cart/add", {"slug": "mug", "quantity": str(quantity)})
    response = client.post("/checkout", data=checkout_fields(client))
    assert response.status_code == 303, text(response)
    return latest_order_id(app, clerk_id), response.headers["Location"]


def press_pay_now(client, order_id: int, *, attempt: int | None = None):
    """The order page's *Pay now* form, as the page drew it (or with the attempt a stale page had)."""
    page = text(client.get(f"/orders/{order_id}"))
    drawn = re.search(r'name="attempt" value="(\d+)"', page)
    assert drawn, "the order page offers no Pay now"
    token = csrf_token_from(client, f"/orders/{order_id}")
    return client.post(f"/orders/{order_id}/pay", data={"csrf_token": token, "attempt": str(attempt or drawn.group(1))})


def session_status(app, url: str, session_id: str) -> str:
    with app.test_request_context(base_url=url), app.app_context():
        return stripe_client().v1.checkout.sessions.retrieve(session_id).status


def order_row(app, order_id: int) -> Order:
    with app.app_context():
        order = db.session.get_one(Order, order_id)
        db.session.expunge(order)
        return order


def sessions_of(app, order_id: int) -> set[str]:
    with app.app_context():
        return set(db.session.scalars(select(CheckoutSession.id).where(CheckoutSession.order_id == order_id)))


def test_pay_now_expires_the_open_session_and_pays_with_a_new_one(
    app, client, sign_in, make_product, post_form, stock_of, stripe_standin, payment_status
):
    mug = make_product("mug", stock=5)
    sign_in("user_again")
    order_id, first_url = check_out(app, client, "user_again", post_form)
    first = first_url.rsplit("/", 1)[1]
    # Back from Stripe's page without paying: the order waits, and Pay now is the one next step.
    page = text(client.get(f"/orders/{order_id}"))
    assert "This order is waiting for its payment." in page and PAY_NOW in page
    assert "Awaiting payment" in page

    response = press_pay_now(client, order_id)
    assert response.status_code == 303
    second = response.headers["Location"].rsplit("/", 1)[1]
    assert second != first  # a new session: a key per attempt, not Stripe replaying the first one
    assert session_status(app, stripe_standin, first) == "expired"
    assert sessions_of(app, order_id) == {first, second}
    order = order_row(app, order_id)
    assert (order.payment_attempts, order.stripe_checkout_session_id) == (2, second)
    # The first session's signed checkout.session.expired arrives: it no longer speaks for the order.
    wait_for(
        lambda: db_count(app, WebhookEvent.type == "checkout.session.expired", WebhookEvent.status == "processed"),
        what="the first session's expiry event",
    )
    assert payment_status(order_id) == ("placed", "pending") and stock_of(mug) == 3

    # A stale page's second click joins the current attempt instead of opening a third session.
    again = press_pay_now(client, order_id, attempt=1)
    assert again.headers["Location"].rsplit("/", 1)[1] == second
    assert order_row(app, order_id).payment_attempts == 2

    back = on_standin_page(client, response.headers["Location"], "pay").headers["Location"]
    assert client.get(back).headers["Location"] == f"/orders/{order_id}"
    assert payment_status(order_id) == ("placed", "paid") and stock_of(mug) == 3
    page = text(client.get(f"/orders/{order_id}"))
    assert "Payment received" in page and PAY_NOW not in page
    # Nothing left to pay: a Pay now from an old tab says so, and opens nothing.
    token = csrf_token_from(client, "/")
    late = client.post(f"/orders/{order_id}/pay", data={"csrf_token": token, "attempt": "2"})
    assert late.headers["Location"] == f"/orders/{order_id}"
    assert f"Order #{order_id} is already paid." in text(client.get(late.headers["Location"]))
    assert sessions_of(app, order_id) == {first, second}


def db_count(app, *where) -> int:
    with app.app_context():
        value = len(db.session.scalars(select(WebhookEvent.svix_id).where(*where)).all())
        db.session.rollback()
        return value


def test_two_pay_now_at_once_open_one_new_session(app, client, sign_in, make_product, post_form, stripe_standin):
    make_product("mug", stock=5)
    sign_in("user_double")
    order_id, first_url = check_out(app, client, "user_double", post_form)
    tabs = [app.test_client() for _ in range(2)]
    tokens = []
    for tab in tabs:
        tab.set_cookie("__session", TOKENS.mint("user_double"))
        tokens.append(csrf_token_from(tab, f"/orders/{order_id}"))
    barrier = Barrier(len(tabs))

    def press(n: int):
        barrier.wait()
        return tabs[n].post(f"/orders/{order_id}/pay", data={"csrf_token": tokens[n], "attempt": "1"})

    with ThreadPoolExecutor(len(tabs)) as pool:
        answers = list(pool.map(press, range(len(tabs))))
    assert [answer.status_code for answer in answers] == [303, 303]
    urls = {answer.headers["Location"] for answer in answers}
    assert len(urls) == 1 and first_url not in urls  # one new session, both tabs sent to it
    assert len(sessions_of(app, order_id)) == 2
    assert order_row(app, order_id).payment_attempts == 2
    assert session_status(app, stripe_standin, first_url.rsplit("/", 1)[1]) == "expired"


def test_a_failed_payment_says_so_at_once_and_offers_the_items_back(
    app, client, sign_in, make_product, post_form, stock_of, stripe_standin, payment_status
):
    mug = make_product("mug", stock=5)
    sign_in("user_declined")
    order_id, url = check_out(app, client, "user_declined", post_form)
    back = on_standin_page(client, url, "pay_then_fail").headers["Location"]
    # Asked of Stripe on the return (the PaymentIntent says the debit failed), not left to the event's timing.
    landing = client.get(back)
    assert landing.headers["Location"] == f"/orders/{order_id}"
    assert payment_status(order_id) == ("cancelled", "failed") and stock_of(mug) == 5
    page = text(client.get(landing.headers["Location"]))
    assert f"The payment did not go through, so order #{order_id} was cancelled" in page
    assert "We are confirming" not in page and PAY_NOW not in page
    assert "Put these items back in my cart" in page and "Payment failed" in page
    token = csrf_token_from(client, f"/orders/{order_id}")
    refused = client.post(f"/orders/{order_id}/pay", data={"csrf_token": token, "attempt": "1"})
    assert refused.headers["Location"] == f"/orders/{order_id}"
    assert "was cancelled, so it can no longer be paid" in text(client.get(f"/orders/{order_id}"))
    assert len(sessions_of(app, order_id)) == 1


def test_a_payment_on_its_way_offers_nothing_to_pay_until_it_settles(client, app, pending_order, sign_in):
    """Stripe's signed events: a session completed with a bank debit, which then fails."""
    sign_in("user_payer")  # the fixture's shopper
    order_id, _ = pending_order()
    on_its_way = checkout_session(order_id, f"cs_test_{order_id}", order_key=FIRST_KEY, payment_status="unpaid")
    assert post_event(client, stripe_event("checkout.session.completed", on_its_way)).json == {"status": "processed"}
    page = text(client.get(f"/orders/{order_id}"))
    assert "We are confirming your payment with your bank" in page and PAY_NOW not in page
    assert 'data-testid="payment-state">Payment processing<' in text(client.get("/orders"))
    token = csrf_token_from(client, "/")
    pressed = client.post(f"/orders/{order_id}/pay", data={"csrf_token": token, "attempt": "1"})
    assert "is on its way from your bank, so it cannot be paid twice" in text(client.get(pressed.headers["Location"]))
    failed = checkout_session(order_id, f"cs_test_{order_id}", order_key=FIRST_KEY, payment_status="unpaid")
    post_event(client, stripe_event("checkout.session.async_payment_failed", failed))
    page = text(client.get(f"/orders/{order_id}"))
    assert "Put these items back in my cart" in page and "Payment failed" in page


def test_an_order_left_without_a_session_is_given_up_by_the_sweep(
    app, client, sign_in, make_product, post_form, stock_of, stripe_standin, payment_status, monkeypatch
):
    """Pay now expired the open session, then Stripe could not make the new one: the order keeps its
    stock until the new attempt's deadline, still offers Pay now, and the sweep gives it up after."""
    mug = make_product("mug", stock=5)
    sign_in("user_stranded")
    order_id, _ = check_out(app, client, "user_stranded", post_form)

    def unreachable(*args, **kwargs):
        raise stripe.APIConnectionError("Stripe cannot be reached")

    with app.test_request_context(base_url=stripe_standin), app.app_context():
        monkeypatch.setattr(type(stripe_client().v1.checkout.sessions), "create", unreachable)
        with pytest.raises(payments.PaymentsUnavailable):
            payments.checkout.pay_now(order_id, user_id=order_row(app, order_id).user_id, attempt=1)
    monkeypatch.undo()
    assert payment_status(order_id) == ("placed", "pending") and stock_of(mug) == 3
    assert PAY_NOW in text(client.get(f"/orders/{order_id}"))
    deadline = order_row(app, order_id).payment_expires_at
    with app.test_request_context(base_url=stripe_standin), app.app_context():
        assert payments.checkout.sweep(now=datetime.now(UTC))["released"] == 0  # not due yet
        assert payments.checkout.sweep(now=deadline + timedelta(seconds=1))["released"] == 1
    assert payment_status(order_id) == ("cancelled", "failed") and stock_of(mug) == 5


def test_the_orders_list_says_where_each_orders_money_stands(client, app, pending_order, sign_in):
    sign_in("user_payer")  # the fixture's shopper
    states = {}
    for payment in ("Awaiting payment", "Paid", "Payment failed", "Refund pending", "Refunded"):
        order_id, _ = pending_order()
        states[order_id] = payment
        moves = {
            "Paid": [lifecycle.Move.PAY],
            "Payment failed": [lifecycle.Move.FAIL],
            "Refund pending": [lifecycle.Move.PAY, lifecycle.Move.CANCEL_AND_REFUND],
            "Refunded": [lifecycle.Move.PAY, lifecycle.Move.REFUNDED],
        }.get(payment, [])
        with app.app_context():
            for move in moves:
                lifecycle.take(lifecycle.lock(order_id), move, by="test")
                db.session.commit()
    rows = re.findall(
        r'<tr data-testid="order-row">.*?>#(\d+)</a>.*?data-testid="payment-state">([^<]+)<',
        text(client.get("/orders")),
        re.S,
    )
    assert {int(order_id): words for order_id, words in rows} == states
