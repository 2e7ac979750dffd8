"""Cart rules, called as the views and the CLI call them: stock, the per-line limit, one cart per user."""

import pytest
from sqlalchemy import func, select

from shop import mirror
from shop.extensions import db
from shop.store import cart
from shop.store.models import Cart, CartItem


@pytest.fixture
def shopper(make_user, user_id):
    make_user("user_cart")
    return user_id("user_cart")


def test_add_creates_one_cart_and_merges_lines(app, shopper, make_product):
    mug = make_product("mug", stock=8)
    with app.app_context():
        cart.add(shopper, slug="mug", quantity=2)
        line = cart.add(shopper, product_id=mug, quantity=3)
        assert line.quantity == 5
        assert db.session.scalar(select(func.count()).select_from(Cart)) == 1
        [only] = cart.lines(shopper)
        assert (only.product.slug, only.quantity, only.line_total_cents) == ("mug", 5, 5000)
        assert cart.count(shopper) == 5


def test_count_sums_quantities_over_lines(app, shopper, make_product):
    make_product("a", price_cents=250)
    make_product("b", price_cents=100)
    with app.app_context():
        assert cart.count(shopper) == 0
        cart.add(shopper, slug="a", quantity=2)
        cart.add(shopper, slug="b", quantity=1)
        assert cart.count(shopper) == 3
        assert cart.totals(cart.lines(shopper)) == {"EUR": 600}


def test_more_than_stock_is_refused_with_what_is_left(app, shopper, make_product):
    make_product("lamp", stock=3, name="Lamp")
    with app.app_context():
        with pytest.raises(cart.CartError, match="Only 3 of Lamp left in stock"):
            cart.add(shopper, slug="lamp", quantity=4)
        cart.add(shopper, slug="lamp", quantity=2)
        with pytest.raises(cart.CartError, match="Only 3 of Lamp left in stock; you already have 2 in your cart"):
            cart.add(shopper, slug="lamp", quantity=2)
        assert cart.count(shopper) == 2  # the refused add changed nothing


def test_per_line_limit(app, shopper, make_product):
    make_product("pen", stock=100, name="Pen")
    with app.app_context():
        cart.add(shopper, slug="pen", quantity=cart.MAX_QUANTITY)
        with pytest.raises(cart.CartError, match=f"at most {cart.MAX_QUANTITY} of Pen"):
            cart.add(shopper, slug="pen", quantity=1)
        with pytest.raises(cart.CartError, match="at most"):
            cart.set_quantity(shopper, db.session.scalar(select(CartItem.product_id)), cart.MAX_QUANTITY + 1)


def test_out_of_stock_inactive_and_unknown_products_are_refused(app, shopper, make_product):
    make_product("gone", stock=0, name="Gone")
    make_product("hidden", active=False)
    with app.app_context():
        with pytest.raises(cart.CartError, match="Gone is out of stock"):
            cart.add(shopper, slug="gone", quantity=1)
        with pytest.raises(cart.CartError, match="no longer available"):
            cart.add(shopper, slug="hidden", quantity=1)
        with pytest.raises(cart.CartError, match="no longer available"):
            cart.add(shopper, slug="never-existed", quantity=1)
        with pytest.raises(cart.CartError, match="at least 1"):
            cart.add(shopper, slug="gone", quantity=0)
        assert cart.lines(shopper) == []


def test_set_quantity_and_remove(app, shopper, make_product):
    mug = make_product("mug", stock=5)
    with app.app_context():
        cart.add(shopper, slug="mug", quantity=1)
        assert cart.set_quantity(shopper, mug, 4).quantity == 4
        with pytest.raises(cart.CartError, match="Only 5"):
            cart.set_quantity(shopper, mug, 6)
        with pytest.raises(cart.CartError, match="0 \\(to remove\\) or more"):
            cart.set_quantity(shopper, mug, -1)
        assert cart.count(shopper) == 4
        assert cart.set_quantity(shopper, mug, 0) is None  # 0 removes the line
        assert cart.lines(shopper) == []
        assert cart.remove(shopper, mug) is False
        with pytest.raises(cart.CartError, match="not in your cart"):
            cart.set_quantity(shopper, mug, 2)


def test_lines_keep_their_order_and_show_unavailable_items(app, shopper, make_product):
    first = make_product("first", stock=5)
    make_product("second", stock=5)
    with app.app_context():
        cart.add(shopper, slug="second", quantity=1)
        cart.add(shopper, slug="first", quantity=2)
        db.session.execute(db.update(cart.Product).where(cart.Product.id == first).values(stock=1))
        db.session.commit()
        lines = cart.lines(shopper)
        assert [line.product.slug for line in lines] == ["second", "first"]
        assert [line.product.stock for line in lines] == [5, 1]  # the stock as it is now, not when added


def test_a_deleted_user_gets_no_cart(app, shopper, make_product):
    make_product("mug")
    with app.app_context():
        mirror.apply_deletion(db.session.connection(), "user_cart")
        db.session.commit()
        with pytest.raises(cart.CartError, match="deleted"):
            cart.add(shopper, slug="mug", quantity=1)
        assert db.session.scalar(select(func.count()).select_from(Cart)) == 0
