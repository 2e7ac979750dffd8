"""Checkout through Stripe (the local stand-in, over real HTTP): address required and copied, stock held
while paying and given back once on expiry or failure, the last-unit race through payment, the return
page, cancel-and-refund."""

import re
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import requests
from sqlalchemy import func, select, update

from shop.extensions import db
from shop.mail.models import OutboxMail
from shop.models import Role, WebhookEvent
from shop.payments import client as stripe_client
from shop.store.models import Address, Order
from tests.store.conftest import (
    CHECKOUT_FIELDS,
    checkout_fields,
    csrf_token_from,
    latest_order_id,
    on_standin_page,
)
from tests.support import NEW_ADDRESS, wait_for


def text(response) -> str:
    return response.get_data(as_text=True)


def start(client, app, clerk_id, **fields):
    """POST the checkout form; the stand-in's payment URL and the order id."""
    response = client.post("/checkout", data=checkout_fields(client, **fields))
    assert response.status_code == 303, text(response)
    return response.headers["Location"], latest_order_id(app, clerk_id)


def count(app, model, *where):
    with app.app_context():
        value = db.session.scalar(select(func.count()).select_from(model).where(*where))
        db.session.rollback()
        return value


def test_a_shipping_address_is_required(app, client, sign_in, make_product, post_form, stock_of, stripe_standin):
    mug = make_product("mug", stock=2)
    sign_in("user_nowhere")
    post_form("/cart/add", {"slug": "mug", "quantity": "1"})
    fields = dict(CHECKOUT_FIELDS.findall(text(client.get("/checkout"))))
    response = client.post("/checkout", data={**fields, "address_id": "new", "new-name": "Ada"})
    assert response.status_code == 400
    assert "Choose a shipping address" in text(response) and "This field is required." in text(response)
    bad = client.post("/checkout", data={**fields, **NEW_ADDRESS, "new-country": "France"})
    assert bad.status_code == 400 and "two-letter country code" in text(bad)
    # A NUL anywhere in a form meets the app's own input rule (shop.inputs) first: 400 as well.
    assert client.post("/checkout", data={**fields, **NEW_ADDRESS, "new-city": "Pa\x00ris"}).status_code == 400
    someone_elses = client.post("/checkout", data={**fields, "address_id": "999999"})
    assert someone_elses.status_code == 400
    assert count(app, Order) == 0 and stock_of(mug) == 2


def test_the_order_keeps_a_copy_of_the_chosen_address(app, client, sign_in, make_product, post_form, stripe_standin):
    make_product("mug", stock=5)
    sign_in("user_home")
    post_form(
        "/account/addresses",
        {**{k.removeprefix("new-"): v for k, v in NEW_ADDRESS.items()}},
        form_page="/account/addresses",
    )
    with app.app_context():
        address_id = db.session.scalar(select(Address.id))
    post_form("/cart/add", {"slug": "mug", "quantity": "1"})
    page = text(client.get("/checkout"))
    assert f'name="address_id" value="{address_id}" checked' in page  # the default is preselected
    _, order_id = start(client, app, "user_home", address_id=str(address_id))
    edit = f"/account/addresses/{address_id}/edit"
    post_form(
        edit, {k.removeprefix("new-"): v for k, v in NEW_ADDRESS.items()} | {"line1": "1 New Street"}, form_page=edit
    )
    with app.app_context():
        order = db.session.get(Order, order_id)
        assert (order.ship_name, order.ship_line1, order.ship_city, order.ship_country) == (
            "Ada Lovelace",
            "12 Rue de la Paix",
            "Paris",
            "FR",
        )
        assert db.session.get(Address, address_id).line1 == "1 New Street"


def test_the_session_carries_the_price_snapshot_and_the_order(
    app, client, sign_in, make_product, post_form, stripe_standin
):
    make_product("mug", stock=5, price_cents=1450, name="Mug")
    make_product("pen", stock=5, price_cents=399, name="Pen")
    sign_in("user_snapshot", email="snapshot@example.com")
    post_form("/cart/add", {"slug": "mug", "quantity": "2"})
    post_form("/cart/add", {"slug": "pen", "quantity": "1"})
    _, order_id = start(client, app, "user_snapshot")
    with app.test_request_context(base_url=stripe_standin), app.app_context():
        order = db.session.get(Order, order_id)
        session = stripe_client().v1.checkout.sessions.retrieve(order.stripe_checkout_session_id)
    assert (session.mode, session.amount_total, session.currency) == ("payment", 2 * 1450 + 399, "eur")
    assert (session.client_reference_id, session.customer_email, session.status) == (
        str(order_id),
        "snapshot@example.com",
        "open",
    )
    assert 30 * 60 <= session.expires_at - session.created <= 31 * 60 + 5


def test_paying_confirms_the_order_once_and_the_return_page_is_idempotent(
    app, client, sign_in, make_product, post_form, stock_of, stripe_standin, payment_status
):
    mug = make_product("mug", stock=3)
    sign_in("user_pays")
    post_form("/cart/add", {"slug": "mug", "quantity": "2"})
    payment_url, order_id = start(client, app, "user_pays")
    assert payment_status(order_id) == ("placed", "pending")
    back = on_standin_page(client, payment_url, "pay").headers["Location"]
    for _ in range(3):
        assert client.get(back).headers["Location"] == f"/orders/{order_id}"
    assert "Payment received" in text(client.get(f"/orders/{order_id}"))
    assert payment_status(order_id) == ("placed", "paid")
    # The stand-in's signed checkout.session.completed arrives too, and changes nothing more.
    wait_for(lambda: count(app, WebhookEvent, WebhookEvent.type == "checkout.session.completed"), what="the event")
    assert count(app, OutboxMail) == 1
    assert stock_of(mug) == 1
    assert "This checkout is complete" in text(client.get("/" + payment_url.split("://", 1)[1].split("/", 1)[1]))


def test_the_return_page_says_where_the_payment_stands_and_offers_pay_now_only_to_pay(
    app, client, sign_in, make_product, post_form, stripe_standin
):
    make_product("mug", stock=3)
    sign_in("user_waits")
    post_form("/cart/add", {"slug": "mug", "quantity": "1"})
    _, order_id = start(client, app, "user_waits")
    # The session is still open (nothing was paid): the page says so, and Pay now is the next step.
    page = text(client.get(client.get(f"/checkout/return/{order_id}").headers["Location"]))
    assert "The payment was not completed and nothing was charged" in page and ">Pay now</button>" in page
    assert "We are confirming" not in page
    # Stripe cannot be reached: the shop does not know, so it waits for the webhook and offers no Pay now.
    app.config["STRIPE_API_BASE"] = "http://127.0.0.1:9"
    app.extensions.pop("stripe_clients", None)
    back = client.get(f"/checkout/return/{order_id}")
    assert back.headers["Location"] == f"/orders/{order_id}?confirming=1"
    page = text(client.get(back.headers["Location"]))
    assert "We are confirming your payment with Stripe" in page and ">Pay now</button>" not in page
    assert client.get("/checkout/return/999999").status_code == 404


def test_expiry_on_the_standin_page_gives_the_stock_back_once(
    app, client, runner, sign_in, make_product, post_form, stock_of, stripe_standin, payment_status
):
    mug = make_product("mug", stock=3)
    sign_in("user_expires")
    post_form("/cart/add", {"slug": "mug", "quantity": "2"})
    payment_url, order_id = start(client, app, "user_expires")
    assert stock_of(mug) == 1
    assert on_standin_page(client, payment_url, "expire").status_code == 303
    wait_for(lambda: payment_status(order_id) == ("cancelled", "failed"), what="checkout.session.expired")
    assert stock_of(mug) == 3
    runner.invoke(args=["payments", "sweep"])  # nothing left to release
    with app.app_context():
        [event_id] = db.session.scalars(select(WebhookEvent.svix_id)).all()
        db.session.execute(update(WebhookEvent).values(status="failed"))  # force a replay of the same event
        db.session.commit()
    assert "processed" in runner.invoke(args=["webhooks", "replay", event_id]).output
    assert stock_of(mug) == 3


def test_a_failed_payment_gives_the_stock_back(
    app, client, sign_in, make_product, post_form, stock_of, stripe_standin, payment_status
):
    mug = make_product("mug", stock=3)
    sign_in("user_fails")
    post_form("/cart/add", {"slug": "mug", "quantity": "3"})
    payment_url, order_id = start(client, app, "user_fails")
    assert stock_of(mug) == 0
    on_standin_page(client, payment_url, "pay_then_fail")
    wait_for(lambda: payment_status(order_id) == ("cancelled", "failed"), what="async_payment_failed")
    assert stock_of(mug) == 3
    assert count(app, OutboxMail) == 0


def test_the_sweep_expires_sessions_past_their_time(
    app, client, runner, sign_in, make_product, post_form, stock_of, stripe_standin, payment_status
):
    mug = make_product("mug", stock=4)
    sign_in("user_left")
    post_form("/cart/add", {"slug": "mug", "quantity": "4"})
    _, abandoned = start(client, app, "user_left")
    result = runner.invoke(args=["payments", "sweep"])
    assert "released 0" in result.output and stock_of(mug) == 0  # not due yet
    with app.app_context():
        db.session.execute(
            update(Order)
            .where(Order.id == abandoned)
            .values(payment_expires_at=func.now() - func.make_interval(0, 0, 0, 0, 0, 1))
        )
        db.session.commit()
    result = runner.invoke(args=["payments", "sweep"])
    assert result.exit_code == 0 and "released 1" in result.output, result.output
    assert payment_status(abandoned) == ("cancelled", "failed") and stock_of(mug) == 4
    assert "released 0" in runner.invoke(args=["payments", "sweep"]).output
    # the stand-in's own checkout.session.expired event arrives as well: no second release
    wait_for(lambda: count(app, WebhookEvent, WebhookEvent.type == "checkout.session.expired"), what="the event")
    assert stock_of(mug) == 4


def test_last_units_through_payment_twenty_buyers_five_units(
    app, make_user, make_product, tokens, stripe_standin, stock_of
):
    mug = make_product("mug", stock=5, name="Mug")
    url = stripe_standin
    buyers = []
    for n in range(20):
        make_user(f"user_racer{n}", email=f"racer{n}@example.com")
        browser = requests.Session()
        browser.cookies.set("__session", tokens.mint(f"user_racer{n}"), domain="127.0.0.1")
        token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get(f"{url}/", timeout=30).text).group(1)
        browser.post(f"{url}/cart/add", data={"csrf_token": token, "slug": "mug", "quantity": "1"}, timeout=30)
        page = browser.get(f"{url}/checkout", timeout=30).text
        buyers.append((browser, {**dict(CHECKOUT_FIELDS.findall(page)), **NEW_ADDRESS}))
    barrier = Barrier(len(buyers))

    def buy(buyer):
        browser, fields = buyer
        barrier.wait()
        answer = browser.post(f"{url}/checkout", data=fields, allow_redirects=False, timeout=60)
        if answer.status_code != 303:
            return None
        payment_url = answer.headers["Location"]
        token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get(payment_url, timeout=30).text).group(1)
        paid = browser.post(payment_url, data={"csrf_token": token, "action": "pay"}, allow_redirects=False, timeout=30)
        return paid.status_code

    with ThreadPoolExecutor(len(buyers)) as pool:
        results = list(pool.map(buy, buyers))
    assert sorted(results, key=str) == [303] * 5 + [None] * 15
    wait_for(lambda: count(app, Order, Order.payment_status == "paid") == 5, what="five paid orders")
    assert count(app, Order) == 5 and stock_of(mug) == 0


def test_the_shopper_cancels_a_paid_order_and_is_refunded(
    app, client, sign_in, make_product, post_form, stock_of, stripe_standin, payment_status
):
    mug = make_product("mug", stock=3)
    sign_in("user_regrets")
    post_form("/cart/add", {"slug": "mug", "quantity": "2"})
    payment_url, order_id = start(client, app, "user_regrets")
    client.get(on_standin_page(client, payment_url, "pay").headers["Location"])
    assert payment_status(order_id) == ("placed", "paid")
    order_path = f"/orders/{order_id}"
    token = csrf_token_from(client, f"{order_path}/cancel")  # the confirmation page asks first
    client.post(f"{order_path}/cancel", data={"csrf_token": token})
    page = text(client.get(order_path))
    assert "your payment is being refunded" in page, re.findall(r"flash[^>]*>([^<]*)", page)
    assert stock_of(mug) == 3
    wait_for(lambda: payment_status(order_id) == ("cancelled", "refunded"), what="charge.refunded")
    assert stock_of(mug) == 3  # given back once, at the cancel
    client.post(f"{order_path}/cancel", data={"csrf_token": token})  # a second click refunds nothing more
    assert "cannot be cancelled" in text(client.get(order_path))
    with app.app_context():
        kinds = db.session.scalars(select(WebhookEvent.type).order_by(WebhookEvent.id)).all()
    assert kinds.count("charge.refunded") == 1


def test_staff_ship_only_paid_orders_and_refund_on_cancel(
    app, client, sign_in, make_product, post_form, stock_of, stripe_standin, payment_status
):
    make_product("mug", stock=5)
    sign_in("user_customer")
    post_form("/cart/add", {"slug": "mug", "quantity": "1"})
    payment_url, order_id = start(client, app, "user_customer")
    staff = app.test_client()
    sign_in("user_staff", as_client=staff, role=Role.ADMIN)
    detail = f"/admin/orders/{order_id}"
    token = csrf_token_from(staff, detail)
    staff.post(f"{detail}/status", data={"csrf_token": token, "status": "shipped"})
    assert "cannot be shipped: its payment is pending" in text(staff.get(detail))
    client.get(on_standin_page(client, payment_url, "pay").headers["Location"])
    staff.post(f"{detail}/status", data={"csrf_token": token, "status": "cancelled"})
    page = text(staff.get(detail))
    assert "is being refunded" in page, re.findall(r"flash[^>]*>([^<]*)", page)
    wait_for(lambda: payment_status(order_id) == ("cancelled", "refunded"), what="charge.refunded")


def test_a_refund_the_bank_refuses_leaves_the_order_paid_and_staff_refund_it_again(
    app, client, sign_in, make_product, post_form, stripe_standin, payment_status
):
    """Stripe's test card 4000 0000 0000 5126: each refund is accepted, then fails (refund.failed)."""
    make_product("mug", stock=5)
    sign_in("user_card_expired")
    post_form("/cart/add", {"slug": "mug", "quantity": "1"})
    payment_url, order_id = start(client, app, "user_card_expired")
    client.get(on_standin_page(client, payment_url, "pay_refunds_fail").headers["Location"])
    staff = app.test_client()
    sign_in("user_staff", as_client=staff, role=Role.ADMIN)
    detail = f"/admin/orders/{order_id}"
    staff.post(f"{detail}/status", data={"csrf_token": csrf_token_from(staff, detail), "status": "cancelled"})

    def refunds(outcome: str) -> int:
        return count(app, WebhookEvent, WebhookEvent.type == outcome, WebhookEvent.status == "processed")

    wait_for(lambda: refunds("refund.failed") == 1, what="refund.failed")
    assert payment_status(order_id) == ("cancelled", "paid")
    page = text(staff.get(detail))
    assert "Refund the payment" in page and "Stripe could not refund it" in page

    staff.post(f"{detail}/refund", data={"csrf_token": csrf_token_from(staff, detail)})
    # A new refund (a new idempotency key), not Stripe's replay of the one that failed.
    wait_for(lambda: refunds("refund.failed") == 2, what="the second refund.failed")
    assert refunds("refund.created") == 0  # recorded as ignored: the shop acts on charge.refunded
    assert count(app, WebhookEvent, WebhookEvent.type == "refund.created") == 2
    assert payment_status(order_id) == ("cancelled", "paid")


def test_without_a_stripe_key_checkout_refuses_clearly(make_app, make_user, make_product, tokens):
    """As in production with STRIPE_SECRET_KEY unset (the stand-in is never on there): no order, one sentence."""
    app = make_app(SHOP_DEV_STRIPE="0")
    make_product("mug", stock=2)
    client = app.test_client()
    make_user("user_early")
    client.set_cookie("__session", tokens.mint("user_early"))
    token = csrf_token_from(client, "/")
    client.post("/cart/add", data={"csrf_token": token, "slug": "mug", "quantity": "1"})
    response = client.post("/checkout", data=checkout_fields(client), follow_redirects=True)
    assert "Payments are not set up on this shop yet" in text(response)
    assert count(app, Order) == 0


def test_an_unreachable_stripe_gives_the_stock_and_the_cart_back(
    make_app, make_user, make_product, tokens, stock_of, payment_status
):
    app = make_app(STRIPE_API_BASE="http://127.0.0.1:1")  # nothing listens there
    mug = make_product("mug", stock=3)
    client = app.test_client()
    make_user("user_offline")
    client.set_cookie("__session", tokens.mint("user_offline"))
    client.post("/cart/add", data={"csrf_token": csrf_token_from(client, "/"), "slug": "mug", "quantity": "2"})
    response = client.post("/checkout", data=checkout_fields(client), follow_redirects=True)
    assert "could not reach the payment service" in text(response) and "your cart was kept" in text(response)
    assert payment_status(latest_order_id(app, "user_offline")) == ("cancelled", "failed")
    assert stock_of(mug) == 3
    with app.app_context():
        from shop.models import User
        from shop.store import cart

        shopper = db.session.scalar(select(User.id).where(User.clerk_id == "user_offline"))
        assert [(line.product.id, line.quantity) for line in cart.lines(shopper)] == [(mug, 2)]
