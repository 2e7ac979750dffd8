"""Payment fixtures: a shopper with an order that holds its stock and has a Checkout Session id."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import update

from shop.extensions import db
from shop.store import cart, checkout
from shop.store.addresses import ShippingAddress
from shop.store.models import CheckoutSession, Order
from tests.store.conftest import make_product, payment_status, post_form, stock_of, user_id  # noqa: F401  (fixtures)

FIRST_KEY = "payment-key-000001"  # the checkout key of a test's first pending_order (Stripe metadata carries it)
ADDRESS = ShippingAddress("Ada Lovelace", "12 Rue de la Paix", None, "75002", "Paris", "FR")


@pytest.fixture
def shopper(make_user, user_id):  # noqa: F811  (the imported fixture)
    make_user("user_payer", email="payer@example.com")
    return user_id("user_payer")


@pytest.fixture
def pending_order(app, shopper, make_product):  # noqa: F811  (the imported fixture)
    """Place an order of `quantity` units of product `product_id` (made if None), as checkout does before
    Stripe: holding stock, payment pending, with session id cs_test_<order id> (remembered as checkout
    does). A new product costs 1000 // quantity cents each, so that the order's total is what
    support.checkout_session's `amount_subtotal` says (1000) when quantity divides 1000. Returns
    (order id, product id)."""
    keys = itertools.count(1)

    def place(quantity: int = 1, *, product_id: int | None = None, stock: int = 10) -> tuple[int, int]:
        product_id = product_id or make_product(stock=stock, price_cents=1000 // quantity)
        with app.app_context():
            cart.add(shopper, product_id=product_id, quantity=quantity)
            order_id = checkout.place_order(shopper, f"payment-key-{next(keys):06d}", address=ADDRESS).order.id
            db.session.execute(
                update(Order).where(Order.id == order_id).values(stripe_checkout_session_id=f"cs_test_{order_id}")
            )
            db.session.add(CheckoutSession(id=f"cs_test_{order_id}", order_id=order_id))
            db.session.commit()
        return order_id, product_id

    return place
