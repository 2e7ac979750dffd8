"""Order status: the explicit map of allowed moves (shop.store.lifecycle), cancellation returning stock,
history newest first."""

import itertools

import pytest
from sqlalchemy import update

from shop.extensions import db
from shop.store import cart, checkout, orders
from shop.store.models import Order, OrderStatus

ALLOWED = {
    ("placed", "shipped"),
    ("placed", "cancelled"),
    ("shipped", "delivered"),
}


@pytest.fixture
def shopper(make_user, user_id):
    make_user("user_orders")
    return user_id("user_orders")


@pytest.fixture
def place(app, shopper, make_product):
    """Place an order of `quantity` units of a fresh product; returns (order id, product id)."""
    keys = itertools.count(1)

    def order(quantity: int = 1, stock: int = 10) -> tuple[int, int]:
        product = make_product(stock=stock)
        with app.app_context():
            cart.add(shopper, product_id=product, quantity=quantity)
            order_id = checkout.place_order(shopper, f"orders-key-{next(keys):06d}").order.id
            # Paid, as Stripe's event would leave it: this file is about the fulfilment map.
            db.session.execute(update(Order).where(Order.id == order_id).values(payment_status="paid"))
            db.session.commit()
            return order_id, product

    return order


def test_the_map_is_exactly_the_documented_one():
    assert {(a.value, b.value) for a in OrderStatus for b in orders.next_statuses(a)} == ALLOWED


def unpaid(app, order_id):
    """As a cancel finds an order whose session it expired: still pending (a paid one is refunded
    through shop.payments, tests/payments)."""
    with app.app_context():
        db.session.execute(update(Order).where(Order.id == order_id).values(payment_status="pending"))
        db.session.commit()


@pytest.mark.parametrize(("start", "target"), [(a.value, b.value) for a in OrderStatus for b in OrderStatus if a != b])
def test_every_move_is_allowed_or_refused_by_the_map(app, place, start, target):
    order_id, _ = place()
    if target == "cancelled":
        unpaid(app, order_id)
    with app.app_context():
        db.session.execute(update(Order).where(Order.id == order_id).values(status=start))
        db.session.commit()
        if (start, target) in ALLOWED:
            assert orders.move(order_id, target, by="test").status == target
        else:
            with pytest.raises(orders.TransitionRefused, match=f"is {start} and cannot be {target}"):
                orders.move(order_id, target, by="test")
            assert db.session.get(Order, order_id, populate_existing=True).status == start


def test_the_happy_path_and_the_final_states(app, place):
    order_id, _ = place()
    with app.app_context():
        orders.move(order_id, "shipped", by="test")
        orders.move(order_id, OrderStatus.DELIVERED, by="test")
        with pytest.raises(orders.TransitionRefused, match="none: it is final"):
            orders.move(order_id, "cancelled", by="test")
        with pytest.raises(orders.TransitionRefused, match="not an order status"):
            orders.move(order_id, "lost", by="test")
        with pytest.raises(orders.OrderNotFound):
            orders.move(order_id + 1000, "shipped", by="test")


def test_cancelling_returns_the_stock_once(app, place, stock_of):
    order_id, product = place(quantity=3, stock=4)
    assert stock_of(product) == 1
    unpaid(app, order_id)
    with app.app_context():
        orders.move(order_id, "cancelled", by="test")
        assert stock_of(product) == 4
        with pytest.raises(orders.TransitionRefused):
            orders.move(order_id, "cancelled", by="test")
    assert stock_of(product) == 4


def test_shipping_keeps_the_stock_taken(app, place, stock_of):
    order_id, product = place(quantity=2, stock=5)
    with app.app_context():
        orders.move(order_id, "shipped", by="test")
    assert stock_of(product) == 3


def test_a_shopper_moves_only_their_own_order(app, place, make_user, user_id):
    order_id, _ = place()
    make_user("user_other")
    with app.app_context():
        with pytest.raises(orders.OrderNotFound):
            orders.move(order_id, "cancelled", by="test", user_id=user_id("user_other"))
        assert db.session.get(Order, order_id).status == "placed"


def test_history_is_newest_first_and_per_user(app, shopper, place, make_user, user_id):
    first, _ = place()
    second, _ = place()
    third, _ = place()
    make_user("user_nobody")
    with app.app_context():
        assert [o.id for o in orders.history(shopper)] == [third, second, first]
        assert orders.history(user_id("user_nobody")) == []
        assert orders.get_for_user(user_id("user_nobody"), first) is None
        assert orders.get_for_user(shopper, first).id == first
        assert orders.count_by_status() == {"placed": 3, "shipped": 0, "delivered": 0, "cancelled": 0}


def test_the_history_query_can_use_the_user_created_at_index(app, shopper, place):
    """With a handful of rows the planner may prefer a sequential scan; with that option taken
    away it must find the index (the 1,000,000-order plan is in bench/store.py's output). Twenty
    orders, analysed: with one, a scan of the primary key ties with the order_id index, and the
    statistics earlier tests left decided between them."""
    for _ in range(20):
        place()
    with app.app_context():
        db.session.execute(db.text("ANALYZE orders, order_items"))
        db.session.commit()
        compiled = orders.HISTORY.params(user_id=shopper).compile(db.engine, compile_kwargs={"literal_binds": True})
        db.session.execute(db.text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(db.session.execute(db.text(f"EXPLAIN {compiled}")).scalars())
        db.session.rollback()
    assert "ix_orders_user_id_created_at" in plan
    assert "ix_order_items_order_id" in plan
