"""Shoppers racing for the last units, against the real PostgreSQL: never oversold, never negative."""

import threading

import pytest
from sqlalchemy import func, select

from shop.extensions import db
from shop.store import cart, checkout
from shop.store.models import Order, OrderItem

SHOPPERS = 20
UNITS = 5


def race(app, shoppers: list[int]) -> tuple[list[int], list[BaseException]]:
    """Every shopper checks out at the same instant, each on its own thread and connection."""
    barrier = threading.Barrier(len(shoppers))
    placed: list[int] = []
    refused: list[BaseException] = []
    lock = threading.Lock()

    def buy(user_id: int) -> None:
        with app.app_context():
            try:
                barrier.wait()
                result = checkout.place_order(user_id, f"race-key-{user_id:08d}")
                with lock:
                    placed.append(result.order.id)
            except BaseException as exc:
                with lock:
                    refused.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=buy, args=(user_id,)) for user_id in shoppers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return placed, refused


@pytest.fixture
def shoppers(app, make_user, user_id):
    ids = []
    for n in range(SHOPPERS):
        make_user(f"user_racer_{n:02d}")
        ids.append(user_id(f"user_racer_{n:02d}"))
    return ids


def test_twenty_shoppers_for_the_last_five_units(app, shoppers, make_product, stock_of):
    last = make_product("last-units", stock=UNITS, name="Last units")
    with app.app_context():
        for user_id in shoppers:
            cart.add(user_id, slug="last-units", quantity=1)

    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:  # reads the stock while the race runs
        while not done.is_set():
            seen.append(stock_of(last))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        placed, refused = race(app, shoppers)
    finally:
        done.set()
        watcher.join()

    assert seen and min(seen) >= 0
    assert len(placed) == UNITS
    assert len(refused) == SHOPPERS - UNITS
    assert all(isinstance(exc, checkout.OutOfStock) for exc in refused), refused
    assert stock_of(last) == 0
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Order)) == UNITS
        assert db.session.scalar(select(func.sum(OrderItem.quantity))) == UNITS
        # the losers keep their carts, to change them and try again
        assert sum(cart.count(user_id) for user_id in shoppers) == SHOPPERS - UNITS


def test_overlapping_carts_in_any_order_neither_oversell_nor_deadlock(app, shoppers, make_product, stock_of):
    """Each shopper wants one of A and one of B, added in opposite orders by half of them: the
    checkout takes stock in product-id order, so no two transactions wait on each other in a cycle."""
    a = make_product("thing-a", stock=UNITS)
    b = make_product("thing-b", stock=UNITS)
    with app.app_context():
        for n, user_id in enumerate(shoppers):
            for slug in ("thing-a", "thing-b") if n % 2 else ("thing-b", "thing-a"):
                cart.add(user_id, slug=slug, quantity=1)

    placed, refused = race(app, shoppers)

    assert len(placed) == UNITS
    assert all(isinstance(exc, checkout.OutOfStock) for exc in refused), refused
    assert (stock_of(a), stock_of(b)) == (0, 0)
