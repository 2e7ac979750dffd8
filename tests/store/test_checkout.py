"""Checkout rules: stock taken, price and name copied, one order per key, nothing written on failure."""

import threading

import pytest
from sqlalchemy import func, select, update

from shop.extensions import db
from shop.store import cart, checkout
from shop.store.models import Order, OrderItem, OrderStatus, Product


@pytest.fixture
def shopper(make_user, user_id):
    make_user("user_buyer", email="buyer@example.com")
    return user_id("user_buyer")


def key(n: int = 1) -> str:
    return f"test-key-{n:08d}"


def test_order_copies_lines_takes_stock_and_empties_the_cart(app, shopper, make_product, stock_of):
    mug = make_product("mug", stock=5, price_cents=1450, name="Mug")
    pen = make_product("pen", stock=9, price_cents=399, name="Pen")
    with app.app_context():
        cart.add(shopper, slug="pen", quantity=3)
        cart.add(shopper, slug="mug", quantity=2)
        placed = checkout.place_order(shopper, key())
        assert placed.created
        order = db.session.get(Order, placed.order.id)
        assert order.status == OrderStatus.PLACED
        assert order.email == "buyer@example.com"
        assert (order.total_cents, order.currency) == (2 * 1450 + 3 * 399, "EUR")
        assert sorted((i.product_name, i.unit_price_cents, i.quantity) for i in order.items) == [
            ("Mug", 1450, 2),
            ("Pen", 399, 3),
        ]
        assert cart.lines(shopper) == []
    assert (stock_of(mug), stock_of(pen)) == (3, 6)


def test_price_and_name_are_a_snapshot(app, shopper, make_product):
    mug = make_product("mug", price_cents=1000, name="Mug")
    with app.app_context():
        cart.add(shopper, slug="mug", quantity=1)
        order_id = checkout.place_order(shopper, key()).order.id
        db.session.execute(update(Product).where(Product.id == mug).values(price_cents=9999, name="Renamed"))
        db.session.commit()
        order = db.session.get(Order, order_id)
        assert (order.items[0].product_name, order.items[0].unit_price_cents, order.total_cents) == ("Mug", 1000, 1000)


def test_the_same_key_places_one_order(app, shopper, make_product, stock_of):
    mug = make_product("mug", stock=5)
    with app.app_context():
        cart.add(shopper, slug="mug", quantity=1)
        first = checkout.place_order(shopper, key())
        cart.add(shopper, slug="mug", quantity=1)  # even with a new cart, the old form places nothing
        again = checkout.place_order(shopper, key())
        assert (first.created, again.created) == (True, False)
        assert again.order.id == first.order.id
        assert db.session.scalar(select(func.count()).select_from(Order)) == 1
        assert cart.count(shopper) == 1
    assert stock_of(mug) == 4


def test_a_double_submit_at_the_same_moment_places_one_order(app, shopper, make_product, stock_of):
    mug = make_product("mug", stock=5)
    with app.app_context():
        cart.add(shopper, slug="mug", quantity=2)
    barrier = threading.Barrier(4)
    results = []

    def submit():
        with app.app_context():
            barrier.wait()
            placed = checkout.place_order(shopper, key())
            results.append((placed.order.id, placed.created))
            db.session.remove()

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({order_id for order_id, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, False, False, True]
    assert stock_of(mug) == 3


def test_out_of_stock_rolls_back_every_line_and_keeps_the_cart(app, shopper, make_product, stock_of):
    plenty = make_product("plenty", stock=10, name="Plenty")
    scarce = make_product("scarce", stock=5, name="Scarce")
    with app.app_context():
        cart.add(shopper, slug="plenty", quantity=2)
        cart.add(shopper, slug="scarce", quantity=3)
        db.session.execute(update(Product).where(Product.id == scarce).values(stock=1))  # others bought it
        db.session.commit()
        with pytest.raises(checkout.OutOfStock, match=r"Scarce \(you want 3, 1 left\)"):
            checkout.place_order(shopper, key())
        assert db.session.scalar(select(func.count()).select_from(Order)) == 0
        assert cart.count(shopper) == 5
    assert (stock_of(plenty), stock_of(scarce)) == (10, 1)  # the first line's stock came back


def test_a_deactivated_product_cannot_be_ordered(app, shopper, make_product, stock_of):
    mug = make_product("mug", stock=5, name="Mug")
    with app.app_context():
        cart.add(shopper, slug="mug", quantity=1)
        db.session.execute(update(Product).where(Product.id == mug).values(active=False))
        db.session.commit()
        with pytest.raises(checkout.OutOfStock, match="Mug is no longer available"):
            checkout.place_order(shopper, key())
    assert stock_of(mug) == 5


def test_empty_cart_and_bad_keys(app, shopper, make_product):
    make_product("mug")
    with app.app_context():
        with pytest.raises(checkout.EmptyCart):
            checkout.place_order(shopper, key())
        cart.add(shopper, slug="mug", quantity=1)
        cart.remove(shopper, db.session.scalar(select(Product.id)))
        with pytest.raises(checkout.EmptyCart):
            checkout.place_order(shopper, key())
        for bad in ("", "short", "x" * 65, "has spaces in it!!"):
            with pytest.raises(checkout.CheckoutError, match="out of date"):
                checkout.place_order(shopper, bad)


def test_a_changed_total_is_refused_before_anything_is_written(app, shopper, make_product, stock_of):
    mug = make_product("mug", stock=5, price_cents=1000)
    with app.app_context():
        cart.add(shopper, slug="mug", quantity=2)
        db.session.execute(update(Product).where(Product.id == mug).values(price_cents=1200))
        db.session.commit()
        with pytest.raises(checkout.CartChanged):
            checkout.place_order(shopper, key(), expected_total_cents=2000)
        assert db.session.scalar(select(func.count()).select_from(OrderItem)) == 0
        assert stock_of(mug) == 5
        placed = checkout.place_order(shopper, key(), expected_total_cents=2400)
        assert placed.order.total_cents == 2400


def test_mixed_currencies_are_refused(app, shopper, make_product, stock_of):
    euro = make_product("euro", currency="EUR")
    make_product("dollar", currency="USD")
    with app.app_context():
        cart.add(shopper, slug="euro", quantity=1)
        cart.add(shopper, slug="dollar", quantity=1)
        with pytest.raises(checkout.CheckoutError, match="mixes currencies"):
            checkout.place_order(shopper, key())
    assert stock_of(euro) == 10
