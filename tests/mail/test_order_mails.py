"""The order's e-mails, read from the outbox: they greet the account holder they are sent to (the ship-to
name is often someone else's: it is printed under "Shipping to"), and link to the order's page by its
absolute address: under SHOP_URL, else under the request that wrote them, else "Your orders" in words."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from sqlalchemy import select

from shop import config
from shop.config import ConfigError
from shop.extensions import db
from shop.mail.models import OutboxMail
from shop.models import User
from shop.store import cart, checkout, order_mail
from shop.store.addresses import ShippingAddress
from tests.payments.support import checkout_session, post_event, stripe_event
from tests.store.conftest import make_product  # noqa: F401  (a fixture)

KEY = "order-mail-key-0001"
# A present: the parcel goes to someone else than the account holder, Ada, who receives the e-mails.
GIFT = ShippingAddress("Grandma Lovelace", "12 Rue de la Paix", None, "75002", "Paris", "FR")


@pytest.fixture
def place(make_user, make_product):  # noqa: F811  (the imported fixture)
    """Place an order of two mugs by Ada Byron (or the names given), shipped to GIFT; returns its id."""

    def order(app, **names: str | None) -> int:
        make_user("user_ada", email="ada@example.com", **({"first_name": "Ada", "last_name": "Byron"} | names))
        product = make_product(name="Blue Mug", price_cents=1450)
        with app.app_context():
            user_id = db.session.scalar(select(User.id).where(User.clerk_id == "user_ada"))
            cart.add(user_id, product_id=product, quantity=2)
            return checkout.place_order(user_id, KEY, address=GIFT).order.id

    return order


def body(app, kind: str) -> str:
    with app.app_context():
        text = db.session.scalar(select(OutboxMail.body).where(OutboxMail.kind == kind))
        db.session.rollback()
    assert text is not None, f"no {kind} e-mail in the outbox"
    return text


def test_the_confirmation_greets_the_account_holder_and_links_to_the_order(make_app, tmp_path, place):
    app = make_app(MAIL_DIR=str(tmp_path), SHOP_URL="https://shop.example.com/")  # a final slash is fine
    order_id = place(app)
    session = checkout_session(order_id, f"cs_test_{order_id}", order_key=KEY, amount_subtotal=2900, amount_total=2900)
    assert post_event(app.test_client(), stripe_event("checkout.session.completed", session)).json == {
        "status": "processed"
    }
    lines = body(app, order_mail.ORDER_CONFIRMED).splitlines()
    assert lines[0] == "Hello Ada,"  # the account holder, not "Hello Grandma Lovelace,"
    assert "  Grandma Lovelace" in lines  # under "Shipping to:"
    # The shop's public address, not the webhook request's host (Stripe calls it from outside).
    assert f"https://shop.example.com/orders/{order_id}" in lines


def test_without_shop_url_the_link_is_the_requests_address_and_outside_a_request_words(make_app, tmp_path, place):
    app = make_app(MAIL_DIR=str(tmp_path))
    order_id = place(app, first_name=None, last_name=None)  # a shopper who signed in with an e-mail only
    with app.app_context():
        # `flask payments sweep` writes the confirmation of a payment it finds: no request, no host.
        assert order_mail.enqueue(db.session, order_id, order_mail.ORDER_CONFIRMED)
        db.session.commit()
    with app.test_request_context(base_url="http://127.0.0.1:5000"):
        assert order_mail.enqueue(db.session, order_id, order_mail.ORDER_SHIPPED)
        db.session.commit()
    confirmed = body(app, order_mail.ORDER_CONFIRMED)
    assert confirmed.startswith("Hello,\n")  # no name to greet: never the ship-to name instead
    assert confirmed.rstrip().endswith('You can follow it at any time under "Your orders".')
    assert "http" not in confirmed
    shipped = body(app, order_mail.ORDER_SHIPPED).splitlines()
    assert shipped[0] == "Hello,"
    assert f"Your order: http://127.0.0.1:5000/orders/{order_id}" in shipped
    assert not any(line.startswith("Tracking number") for line in shipped)  # none was given


@pytest.mark.parametrize(
    "url",
    ["shop.example.com", "ftp://shop.example.com", "https://shop.example.com/?a=1", "https://:443", "https://h:x"],
)
def test_a_shop_url_that_cannot_be_a_link_is_refused_at_start(url):
    with pytest.raises(ConfigError) as error:
        config.load({"SHOP_URL": url}, production=False, instance_path=Path(tempfile.mkdtemp()))
    assert error.value.problems == ["SHOP_URL must be the shop's public address, such as https://shop.example.com."]
