"""*Put these items back in my cart* on a cancelled order (its payment failed or was abandoned): the
cart is refilled with what is still in stock, and says what could not be put back; twice (or twice at
once) puts nothing in twice; another shopper's order is not there (404); a paid or pending order keeps
its items."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

from sqlalchemy import update

from shop.extensions import db
from shop.store import cart, checkout, lifecycle
from shop.store.addresses import ShippingAddress
from shop.store.models import Product
from tests.conftest import TOKENS
from tests.store.conftest import csrf_token_from

ADDRESS = ShippingAddress("Ada Lovelace", "12 Rue de la Paix", None, "75002", "Paris", "FR")


def place(app, user_id: int, lines: dict[int, int], key: str, *, then: lifecycle.Move | None = None) -> int:
    """An order of `lines` (product id: quantity), placed as checkout places it; then moved by `then`."""
    with app.app_context():
        for product_id, quantity in lines.items():
            cart.add(user_id, product_id=product_id, quantity=quantity)
        order_id = checkout.place_order(user_id, key, address=ADDRESS).order.id
        if then is not None:
            lifecycle.take(lifecycle.lock(order_id), then, by="test")
            db.session.commit()
        return order_id


def cart_of(app, user_id: int) -> dict[str, int]:
    with app.app_context():
        lines = {line.product.name: line.quantity for line in cart.lines(user_id)}
        db.session.rollback()
        return lines


def put_back(client, order_id: int):
    return client.post(f"/orders/{order_id}/put-back", data={"csrf_token": csrf_token_from(client, "/")})


def test_a_failed_orders_items_go_back_once_as_stock_allows(app, client, sign_in, make_product, user_id):
    mug = make_product("mug", stock=5, name="Mug")
    pen = make_product("pen", stock=5, name="Pen")
    cap = make_product("cap", stock=5, name="Cap")
    sign_in("user_refill")
    shopper = user_id("user_refill")
    order_id = place(app, shopper, {mug: 2, pen: 3, cap: 1}, "refill-order-00001", then=lifecycle.Move.FAIL)
    assert cart_of(app, shopper) == {}
    page = client.get(f"/orders/{order_id}").get_data(as_text=True)
    assert "Put these items back in my cart" in page and ">Pay now</button>" not in page
    with app.app_context():  # meanwhile: pens sell down to 1, caps are withdrawn
        db.session.execute(update(Product).where(Product.id == pen).values(stock=1))
        db.session.execute(update(Product).where(Product.id == cap).values(active=False))
        db.session.commit()

    response = put_back(client, order_id)
    assert response.status_code == 302 and response.headers["Location"] == "/cart"
    assert cart_of(app, shopper) == {"Mug": 2, "Pen": 1}
    page = client.get("/cart").get_data(as_text=True)
    assert f"The items of order #{order_id} are in your cart again." in page
    assert "Not everything could be put back: Pen (1 of 3: only 1 left); Cap (no longer sold)." in page

    put_back(client, order_id)  # a second press puts nothing in twice
    assert cart_of(app, shopper) == {"Mug": 2, "Pen": 1}

    # Two presses at once (two tabs): the cart row's lock serialises them; still the order's quantities.
    with app.app_context():
        cart.remove(shopper, mug)
        cart.remove(shopper, pen)
    tabs = [app.test_client() for _ in range(2)]
    for tab in tabs:
        tab.set_cookie("__session", TOKENS.mint("user_refill"))
    tokens = [csrf_token_from(tab, "/") for tab in tabs]
    barrier = Barrier(len(tabs))

    def press(n: int):
        barrier.wait()
        return tabs[n].post(f"/orders/{order_id}/put-back", data={"csrf_token": tokens[n]}).status_code

    with ThreadPoolExecutor(len(tabs)) as pool:
        assert list(pool.map(press, range(len(tabs)))) == [302, 302]
    assert cart_of(app, shopper) == {"Mug": 2, "Pen": 1}


def test_only_the_shoppers_own_cancelled_order_can_be_put_back(app, client, sign_in, make_product, user_id):
    mug = make_product("mug", stock=20, name="Mug")
    sign_in("user_other", as_client=(other := app.test_client()))
    theirs = place(app, user_id("user_other"), {mug: 1}, "others-order-00001", then=lifecycle.Move.FAIL)
    sign_in("user_owner")
    shopper = user_id("user_owner")
    assert put_back(client, theirs).status_code == 404  # someone else's order is not there
    assert cart_of(app, shopper) == {} and cart_of(app, user_id("user_other")) == {}
    assert put_back(client, 2**62).status_code == 404

    paid = place(app, shopper, {mug: 2}, "owner-order-000001", then=lifecycle.Move.PAY)
    response = put_back(client, paid)
    assert response.headers["Location"] == f"/orders/{paid}"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"Order #{paid} is paid, so its items stay with it" in page
    pending = place(app, shopper, {mug: 1}, "owner-order-000002")
    put_back(client, pending)
    page = client.get(f"/orders/{pending}").get_data(as_text=True)
    assert f"Order #{pending} is still waiting for its payment; pay it, or cancel it" in page
    assert cart_of(app, shopper) == {}
    assert other.get(f"/orders/{theirs}").status_code == 200  # theirs is still theirs
